"""The real user path in a real browser: Debian's Chromium (Playwright), the hub with the panel, the
development OIDC provider's forms.
"""

from __future__ import annotations

import re
import time

import pytest

from bubble_manager.auth.devprovider import provider_missing_reason

from tests.browser import ARTIFACTS as BROWSER_ARTIFACTS, browser_missing_reason

from .oidchub import OIDCHub, audit_actions

ARTIFACTS = BROWSER_ARTIFACTS / "auth"
ALICE, BOB, OTTO = "alice@example.org", "bob@example.org", "otto@example.org"
pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.bwrap]


@pytest.fixture(scope="module")
def panel_hub():
    from tests.hubfixture import hub_for_module, hub_missing_reason

    yield from hub_for_module(browser_missing_reason() or provider_missing_reason() or hub_missing_reason(),
                              lambda: OIDCHub.create_with_provider(with_service=True), lambda hub: hub.start())


@pytest.fixture
def page(chromium, request):
    context = chromium.new_context()
    page = context.new_page()
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)      # the last page each test saw, to look at
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}.png"))
    context.close()


def sign_in(page, hub: OIDCHub, login: str) -> None:
    """Through the hub's login page and the provider's password and one-time-code forms."""
    user = hub.provider.user(login)
    page.goto(f"{hub.url}/hub/login")
    page.get_by_role("button", name=re.compile("Sign in with your hospital account")).or_(
        page.get_by_role("link", name=re.compile("Sign in with your hospital account"))).click()
    page.wait_for_url(re.compile(r".*/interaction/.*"))
    assert "Development identity provider" in page.content()
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", user["password"])
    page.click("#login-form button[type=submit]")
    if user["mfa"]:
        page.wait_for_selector("#otp-form")
        page.fill("input[name=otp]", user["otp"])
        page.click("#otp-form button[type=submit]")
    page.wait_for_load_state()


def open_panel(page, url: str):
    """Open a panel page; the first time, the hub asks the person to authorize the panel (its scopes)."""
    response = page.goto(url)
    if page.get_by_role("heading", name="Authorize access").count():
        with page.expect_navigation() as navigation:
            page.get_by_role("button", name="Authorize").click()
        response = navigation.value
        page.wait_for_load_state()
    return response


def test_a_researcher_signs_in_with_a_second_factor_opens_the_panel_and_logs_out(panel_hub: OIDCHub, page):
    sign_in(page, panel_hub, ALICE)
    landing = page.goto(f"{panel_hub.url}/hub/")   # the hub's default URL: the panel, on its own subdomain
    assert landing.status == 200 and page.url.startswith(panel_hub.panel_url), page.url
    page.goto(f"{panel_hub.url}/hub/home")
    assert ALICE in page.locator("#login_widget").inner_text()
    panel = open_panel(page, panel_hub.panel_url)
    assert panel.status == 200 and page.url.startswith(panel_hub.panel_url)
    assert ALICE in page.content()

    page.goto(f"{panel_hub.url}/hub/logout")
    page.wait_for_url(re.compile(re.escape(panel_hub.provider.issuer) + r"/session/end.*"))
    page.get_by_role("button", name="Yes, sign me out").click()
    page.wait_for_url(re.compile(re.escape(panel_hub.url) + r"/hub/login.*"))
    page.goto(f"{panel_hub.url}/hub/home")
    page.wait_for_url(re.compile(r".*/hub/login.*"))                  # no hub session any more
    assert ("auth.logout", {"idp_logout": True, "idp": panel_hub.provider.issuer}) in audit_actions(panel_hub, ALICE)


def test_a_sign_in_without_second_factor_shows_why_it_was_refused(panel_hub: OIDCHub, page):
    sign_in(page, panel_hub, OTTO)
    text = page.locator("div.error").inner_text()
    assert "Sign-in refused" in text and "did not use a second factor" in text
    assert "no-second-factor" in text
    link = page.get_by_role("link", name="Sign out of the identity provider")
    assert link.get_attribute("href").startswith(panel_hub.provider.issuer + "/session/end?")


def test_a_steward_removed_from_the_group_loses_the_review_page(panel_hub: OIDCHub, chromium, page):
    provider = panel_hub.provider
    provider.set_groups(BOB, ["eds-researchers", "eds-stewards"])
    sign_in(page, panel_hub, BOB)
    review = open_panel(page, panel_hub.panel_url + "review")
    assert review.status == 200 and page.url == panel_hub.panel_url + "review", page.content()[:500]

    provider.set_groups(BOB, ["eds-researchers"])
    deadline = time.monotonic() + 30                   # the sweeper re-reads memberships older than 3 s
    while panel_hub.user_model(BOB)["groups"] != ["researchers"]:
        assert time.monotonic() < deadline, "bob's steward group was not removed within 30 s"
        time.sleep(0.5)
    page.goto(f"{panel_hub.url}/hub/home")              # his hub session was ended with the steward rights
    page.wait_for_url(re.compile(r".*/hub/login.*"))
    assert [d["lost"] for a, d in audit_actions(panel_hub, BOB) if a == "auth.access_reduced"] == [["stewards"]]

    # Signing in again (a new browser) gives the panel a token with researcher rights only. The old
    # browser's panel cookie holds a revoked token, which the panel honours until its cache of the
    # hub's answers expires (HubOAuth.cache_max_age).
    context = chromium.new_context()
    fresh = context.new_page()
    try:
        sign_in(fresh, panel_hub, BOB)
        again = open_panel(fresh, panel_hub.panel_url + "review")
        assert again.status == 403 and fresh.url == panel_hub.panel_url + "review"
        assert "lacks the permission" in fresh.content()
        assert open_panel(fresh, panel_hub.panel_url).status == 200
    finally:
        context.close()


@pytest.mark.parametrize("login, role, allowed, refused", [
    (ALICE, "researcher", ["", "studies/new"], ["review", "admin"]),
    ("sam@example.org", "steward", ["", "review"], ["studies/new", "admin"]),
    ("ada@example.org", "admin", ["", "admin", "admin/access"], ["review", "studies/new"]),
])
def test_each_role_signs_in_and_lands_with_its_pages(panel_hub: OIDCHub, page, login, role, allowed, refused):
    sign_in(page, panel_hub, login)
    open_panel(page, panel_hub.panel_url)
    assert page.locator("#whoami").inner_text() == f"{login} ({role})"
    for path in allowed:
        response = open_panel(page, panel_hub.panel_url + path)
        assert response.status == 200 and page.url == panel_hub.panel_url + path, (path, page.content()[:300])
    for path in refused:
        response = open_panel(page, panel_hub.panel_url + path)
        assert response.status == 403 and "lacks the permission" in page.content(), path
    open_panel(page, panel_hub.panel_url)


def test_someone_in_no_allowed_group_is_refused(panel_hub: OIDCHub, page):
    sign_in(page, panel_hub, "nina@example.org")
    text = page.locator("div.error").inner_text()
    assert "Sign-in refused" in text and "none of the groups allowed here" in text
    page.goto(f"{panel_hub.url}/hub/home")
    page.wait_for_url(re.compile(r".*/hub/login.*"))
    assert panel_hub.api("GET", "/users/nina@example.org").status_code == 404


@pytest.fixture(scope="module")
def alice_in_lab(panel_hub: OIDCHub, chromium):
    """Alice signed in, her bubble of study alpha open in JupyterLab (one browser for the tests below)."""
    context = chromium.new_context()
    lab = context.new_page()
    lab.set_default_timeout(120_000)
    sign_in(lab, panel_hub, ALICE)
    lab.goto(f"{panel_hub.url}/hub/spawn/{ALICE}/alpha")
    lab.wait_for_url(re.compile(r".*/user/.+/alpha/lab.*"), timeout=180_000)
    lab.wait_for_selector(".jp-LauncherCard, #jp-main-dock-panel", timeout=120_000)
    yield lab
    context.close()


def test_an_admin_cannot_open_a_researchers_bubble(panel_hub: OIDCHub, page, alice_in_lab):
    lab_url = panel_hub.server_model(ALICE, "alpha")["url"] + "lab"
    sign_in(page, panel_hub, "ada@example.org")
    response = page.goto(lab_url)
    page.wait_for_load_state()
    assert response.status == 403 and page.url.startswith(f"{panel_hub.url}/hub/api/oauth2/authorize")
    assert page.locator(".jp-LauncherCard, #jp-main-dock-panel").count() == 0
    response = page.goto(f"{panel_hub.url}/hub/spawn/{ALICE}/gamma")
    assert response.status in (403, 404) and panel_hub.server_model(ALICE, "gamma") is None
    assert alice_in_lab.locator("#jp-main-dock-panel").count() == 1      # positive control: alice's lab is open


def test_a_researcher_removed_from_the_group_loses_access_and_the_bubble_stops(panel_hub: OIDCHub, alice_in_lab):
    """Last in the module: alice is no longer a researcher afterwards."""
    lab_url = panel_hub.server_model(ALICE, "alpha")["url"] + "lab"
    panel_hub.provider.set_groups(ALICE, ["hospital-staff"])
    deadline = time.monotonic() + 60
    while panel_hub.server_model(ALICE, "alpha") is not None:
        assert time.monotonic() < deadline, "alice's bubble did not stop within 60 s"
        time.sleep(0.5)
    alice_in_lab.goto(lab_url)
    alice_in_lab.wait_for_load_state()
    assert alice_in_lab.locator("#jp-main-dock-panel").count() == 0
    alice_in_lab.goto(f"{panel_hub.url}/hub/home")
    alice_in_lab.wait_for_url(re.compile(r".*/hub/login.*"))          # her hub session was ended
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    alice_in_lab.screenshot(path=str(ARTIFACTS / "researcher-removed-signed-out.png"))
    revoked = [d for a, d in audit_actions(panel_hub, ALICE) if a == "auth.access_revoked"]
    assert revoked and revoked[-1]["servers_stopped"] == ["alpha"] and revoked[-1]["lost"] == ["researchers"]
