"""End to end: a real JupyterHub (local bubbles) signing people in through the real development
OIDC provider (npm oidc-provider, dev/oidc), over HTTP as a browser does (forms, redirects, cookies).

One hub per module; the sweeper runs every second and re-reads memberships older than 3 s.
"""

from __future__ import annotations

import time

import pytest
import requests

from bubble_manager.service.authz import SCOPE_ADMIN, SCOPE_REVIEW, SCOPE_USE

from .oidchub import OIDCHub, audit_actions

ALICE, BOB, EVE, SAM, ADA = ("alice@example.org", "bob@example.org", "eve@example.org", "sam@example.org",
                             "ada@example.org")
NINA, OTTO = "nina@example.org", "otto@example.org"
pytestmark = [pytest.mark.slow, pytest.mark.bwrap]


def wait_until(check, timeout: float = 30, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.25)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def scopes_of(hub: OIDCHub, name: str) -> set[str]:
    response = hub.whoami(hub.user_token(name))
    assert response.status_code == 200, response.text
    return set(response.json()["scopes"])


@pytest.mark.parametrize("name, group, scope", [(ALICE, "researchers", SCOPE_USE), (SAM, "stewards", SCOPE_REVIEW),
                                                (ADA, "admins", SCOPE_ADMIN)])
def test_each_role_signs_in_with_mfa_and_lands_with_its_group_and_scopes(oidc_hub: OIDCHub, name, group, scope):
    session, page = oidc_hub.oidc_login(name)
    assert page.status_code == 200 and page.url.endswith("/hub/home"), (page.status_code, page.url)
    assert oidc_hub.signed_in_as(session) == name
    model = oidc_hub.user_model(name)
    assert model["groups"] == [group]
    assert model["admin"] is False                        # never JupyterHub's own admin role
    record = model["auth_state"]["bubble_manager"]
    assert record["amr"] == ["pwd", "otp"] and record["idp_groups"] == [f"eds-{group}"]
    assert model["auth_state"]["refresh_token"]            # kept, encrypted, for the access review
    scopes = scopes_of(oidc_hub, name)
    assert scope in scopes and "access:services!service=bubble-manager" in scopes
    assert not ({SCOPE_USE, SCOPE_REVIEW, SCOPE_ADMIN} - {scope}) & scopes
    assert "admin:users" not in scopes and "tokens" not in scopes and "access:servers" not in scopes
    assert ("auth.login", {"acr": "urn:bubble-manager:dev:mfa", "amr": ["pwd", "otp"], "groups": [group],
                           "idp": oidc_hub.provider.issuer}) in audit_actions(oidc_hub, name)


def test_someone_in_no_allowed_group_is_refused_and_audited(oidc_hub: OIDCHub):
    session, page = oidc_hub.oidc_login(NINA)
    assert page.status_code == 403
    assert "none of the groups allowed here" in page.text and "not-in-allowed-group" in page.text
    assert oidc_hub.signed_in_as(session) is None
    assert oidc_hub.api("GET", f"/users/{NINA}").status_code == 404      # never created in the hub
    actions = audit_actions(oidc_hub, NINA)
    assert actions == [("auth.refused", {"reason": "not-in-allowed-group", "idp_groups": ["hospital-staff"],
                                         "idp": oidc_hub.provider.issuer})]


def test_a_sign_in_without_second_factor_is_refused_with_the_reason(oidc_hub: OIDCHub):
    session, page = oidc_hub.oidc_login(OTTO)          # a researcher, but no second factor
    assert page.status_code == 403
    assert "did not use a second factor" in page.text and "methods pwd" in page.text
    assert "Sign out of the identity provider" in page.text and "/session/end?" in page.text
    assert oidc_hub.signed_in_as(session) is None
    assert oidc_hub.api("GET", f"/users/{OTTO}").status_code == 404
    assert audit_actions(oidc_hub, OTTO) == [("auth.refused", {"reason": "no-second-factor", "amr": ["pwd"],
                                                               "acr": "urn:bubble-manager:dev:pwd",
                                                               "idp": oidc_hub.provider.issuer})]


def test_wrong_second_factor_never_reaches_the_hub(oidc_hub: OIDCHub):
    session, page = oidc_hub.oidc_login(EVE, otp="000000" if oidc_hub.provider.user(EVE)["otp"] != "000000"
                                        else "111111")
    assert page.status_code == 401 and "Wrong code" in page.text
    assert oidc_hub.signed_in_as(session) is None


def test_an_admin_cannot_open_a_researchers_bubble_nor_act_as_them(oidc_hub: OIDCHub):
    browser, _ = oidc_hub.oidc_login(ALICE)
    response = oidc_hub.spawn(browser, ALICE, "alpha")
    assert response.status_code in (201, 202), response.text
    model = oidc_hub.wait_ready(ALICE, "alpha")
    lab = browser.get(model["url"] + "lab", timeout=60)                   # positive control: alice can
    assert lab.status_code == 200 and "JupyterLab" in lab.text

    admin_browser, _ = oidc_hub.oidc_login(ADA)
    admin_token = oidc_hub.user_token(ADA)
    as_token = requests.get(model["url"] + "api/status", headers={"Authorization": f"token {admin_token}"},
                            timeout=60)
    assert as_token.status_code == 403
    through_browser = admin_browser.get(model["url"] + "lab", timeout=60)   # the OAuth dance stops at the hub
    assert through_browser.status_code == 403 and "JupyterLab" not in through_browser.text
    assert through_browser.url.startswith(f"{oidc_hub.url}/hub/api/oauth2/authorize")
    token_for_alice = requests.post(f"{oidc_hub.url}/hub/api/users/{ALICE}/tokens", json={"note": "impersonate"},
                                    headers={"Authorization": f"token {admin_token}"}, timeout=30)
    assert token_for_alice.status_code == 403
    start_for_alice = requests.post(f"{oidc_hub.url}/hub/api/users/{ALICE}/servers/gamma", json={},
                                    headers={"Authorization": f"token {admin_token}"}, timeout=30)
    assert start_for_alice.status_code in (403, 404) and oidc_hub.server_model(ALICE, "gamma") is None
    make_admin = requests.patch(f"{oidc_hub.url}/hub/api/users/{ADA}", json={"admin": True},
                                headers={"Authorization": f"token {admin_token}"}, timeout=30)
    assert make_admin.status_code == 403
    # what the admin role is for: seeing bubbles and stopping one in an incident (checked in the revoke test)
    listing = requests.get(f"{oidc_hub.url}/hub/api/users", headers={"Authorization": f"token {admin_token}"},
                           timeout=30)
    assert listing.status_code == 200 and ALICE in {u["name"] for u in listing.json()}


def test_a_steward_removed_from_the_steward_group_loses_steward_rights_after_refresh(oidc_hub: OIDCHub):
    provider = oidc_hub.provider
    provider.set_groups(BOB, ["eds-researchers", "eds-stewards"])
    browser, _ = oidc_hub.oidc_login(BOB)
    assert oidc_hub.user_model(BOB)["groups"] == ["researchers", "stewards"]
    token = oidc_hub.user_token(BOB)
    assert SCOPE_REVIEW in oidc_hub.whoami(token).json()["scopes"]

    provider.set_groups(BOB, ["eds-researchers"])
    wait_until(lambda: oidc_hub.user_model(BOB)["groups"] == ["researchers"], what="bob's steward group to go")
    assert oidc_hub.whoami(token).status_code == 403                      # his tokens were revoked
    assert oidc_hub.signed_in_as(browser) is None                          # and his session ended
    reduced = [d for a, d in audit_actions(oidc_hub, BOB) if a == "auth.access_reduced"]
    assert reduced and reduced[-1]["lost"] == ["stewards"] and reduced[-1]["groups"] == ["researchers"]
    assert reduced[-1]["servers_stopped"] == []                             # still a researcher: bubbles kept

    browser, page = oidc_hub.oidc_login(BOB, session=browser)               # signs in again: researcher only
    assert page.url.endswith("/hub/home")
    scopes = scopes_of(oidc_hub, BOB)
    assert SCOPE_USE in scopes and SCOPE_REVIEW not in scopes


def test_a_researcher_removed_from_the_group_loses_access_and_their_bubble_stops(oidc_hub: OIDCHub):
    if not (oidc_hub.server_model(ALICE, "alpha") or {}).get("ready"):
        browser, _ = oidc_hub.oidc_login(ALICE)
        oidc_hub.spawn(browser, ALICE, "alpha")
    model = oidc_hub.wait_ready(ALICE, "alpha")
    browser, _ = oidc_hub.oidc_login(ALICE)
    token = oidc_hub.user_token(ALICE)
    assert oidc_hub.whoami(token).status_code == 200

    oidc_hub.provider.set_groups(ALICE, ["hospital-staff"])
    wait_until(lambda: oidc_hub.server_model(ALICE, "alpha") is None, timeout=60, what="alice's bubble to stop")
    user = oidc_hub.user_model(ALICE)
    assert user["groups"] == [] and user["auth_state"] is None            # refresh token forgotten
    assert oidc_hub.whoami(token).status_code == 403
    assert oidc_hub.signed_in_as(browser) is None
    gone = requests.get(model["url"] + "api/status", timeout=30, allow_redirects=False)
    assert gone.status_code in (302, 303, 403, 404, 424, 503) and "last_activity" not in gone.text
    revoked = [d for a, d in audit_actions(oidc_hub, ALICE) if a == "auth.access_revoked"]
    assert revoked and revoked[-1]["servers_stopped"] == ["alpha"] and revoked[-1]["lost"] == ["researchers"]
    assert revoked[-1]["reason"] == "no longer in any allowed group" and revoked[-1]["tokens_revoked"] >= 1

    _, page = oidc_hub.oidc_login(ALICE)                                   # and cannot come back
    assert page.status_code == 403 and "none of the groups allowed here" in page.text


def test_someone_the_provider_no_longer_knows_loses_access(oidc_hub: OIDCHub):
    browser, _ = oidc_hub.oidc_login(EVE)
    assert oidc_hub.user_model(EVE)["groups"] == ["researchers"]
    oidc_hub.provider.remove_user(EVE)
    wait_until(lambda: oidc_hub.user_model(EVE)["groups"] == [], what="eve's access to go")
    assert oidc_hub.signed_in_as(browser) is None
    revoked = [d for a, d in audit_actions(oidc_hub, EVE) if a == "auth.access_revoked"]
    assert revoked and revoked[-1]["reason"] == "provider-refused-refresh"


def test_logout_ends_the_hub_session_and_the_providers(oidc_hub: OIDCHub):
    browser, _ = oidc_hub.oidc_login(SAM)
    assert oidc_hub.signed_in_as(browser) == SAM
    confirm = browser.get(f"{oidc_hub.url}/hub/logout", timeout=30)
    assert confirm.url.startswith(oidc_hub.provider.issuer + "/session/end")   # the provider asks to confirm
    assert oidc_hub.signed_in_as(browser) is None                               # the hub session is over already
    done = OIDCHub._submit(browser, confirm, {"logout": "yes"})
    assert done.url.startswith(f"{oidc_hub.url}/hub/login")
    assert ("auth.logout", {"idp_logout": True, "idp": oidc_hub.provider.issuer}) in audit_actions(oidc_hub, SAM)
    _, page = oidc_hub.oidc_login(SAM, session=browser)                        # the provider asks again
    assert page.url.endswith("/hub/home")
    assert any(a == "auth.login" for a, _ in audit_actions(oidc_hub, SAM)[-2:])


def test_the_access_report_shows_roles_and_confirmations(oidc_hub: OIDCHub):
    from bubble_manager.auth.report import access_report

    report = access_report(oidc_hub.context)
    people = {p["name"]: p for p in report["people"]}
    assert people[SAM]["roles"] == ["steward"] and people[SAM]["status"] == "active"
    assert people[ADA]["roles"] == ["admin"] and people[ADA]["last_confirmed"]
    assert people[ALICE]["status"] == "revoked" and people[ALICE]["roles"] == []
    assert people[BOB]["roles"] == ["researcher"] and people[BOB]["last_change"]["lost"] == ["stewards"]
    assert people[NINA]["status"] == "never-admitted" and people[NINA]["last_refusal"]["reason"] == "not-in-allowed-group"
    assert SAM in report["roles"]["steward"] and ALICE not in report["roles"]["researcher"]


def test_while_the_provider_is_unreachable_access_is_kept_for_a_while_then_revoked(oidc_hub: OIDCHub):
    """Last in the module: it stops the provider."""
    oidc_hub.oidc_login(ADA)
    assert oidc_hub.user_model(ADA)["groups"] == ["admins"]
    oidc_hub.provider.stop()
    stopped = time.monotonic()
    time.sleep(8)                                    # several sweeps past the 3 s review age
    assert oidc_hub.user_model(ADA)["groups"] == ["admins"], "revoked before max_unconfirmed_seconds"
    wait_until(lambda: oidc_hub.user_model(ADA)["groups"] == [], timeout=60, what="ada's access to go")
    assert time.monotonic() - stopped >= 15
    revoked = [d for a, d in audit_actions(oidc_hub, ADA) if a == "auth.access_revoked"]
    assert revoked and revoked[-1]["reason"] == "provider-unreachable" and revoked[-1]["lost"] == ["admins"]
