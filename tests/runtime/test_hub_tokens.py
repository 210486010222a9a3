"""Users' API tokens: the panel's scopes only, and no bubble under an authenticator without that rule."""

from __future__ import annotations

import pytest
from jupyterhub.auth import DummyAuthenticator
from tornado import web

from bubble_manager.auth.authenticator import BubbleOIDCAuthenticator
from bubble_manager.runtime.hub_tokens import (PANEL_TOKEN_SCOPES, SERVICE_ACCESS, TOKEN_API_PATTERN,
                                               PanelScopedSharedPasswordAuthenticator, PanelScopedTokenAPIHandler,
                                               panel_token_scopes, require_panel_tokens)
from bubble_manager.runtime.local import LocalBubbleSpawner
from bubble_manager.service.authz import SCOPE_ADMIN, SCOPE_REVIEW, SCOPE_USE

RESEARCHER = {SERVICE_ACCESS, SCOPE_USE, "access:servers!user", "servers!user", "tokens!user"}


def test_no_scopes_asked_gives_the_panel_scopes_the_owner_holds_and_nothing_else():
    assert panel_token_scopes(None, RESEARCHER) == [SERVICE_ACCESS, SCOPE_USE]
    assert panel_token_scopes([], RESEARCHER | {SCOPE_REVIEW}) == [SERVICE_ACCESS, SCOPE_USE, SCOPE_REVIEW]


def test_asked_panel_scopes_pass_as_asked():
    assert panel_token_scopes([SERVICE_ACCESS, SCOPE_ADMIN], set()) == [SERVICE_ACCESS, SCOPE_ADMIN]


@pytest.mark.parametrize("asked", [["access:servers!user"], [SERVICE_ACCESS, "servers!user"], ["tokens!user"],
                                   ["read:users"], ["inherit"]])
def test_any_other_scope_is_refused_with_what_is_allowed(asked):
    with pytest.raises(web.HTTPError) as refused:
        panel_token_scopes(asked, RESEARCHER)
    assert refused.value.status_code == 403
    assert "refused:" in refused.value.log_message and SERVICE_ACCESS in refused.value.log_message


@pytest.mark.parametrize("asked", ["custom:bubbles:use", [1, 2], {"scope": SERVICE_ACCESS}])
def test_malformed_scopes_are_a_400(asked):
    with pytest.raises(web.HTTPError) as refused:
        panel_token_scopes(asked, RESEARCHER)
    assert refused.value.status_code == 400


def test_an_account_without_a_panel_role_gets_no_token():
    with pytest.raises(web.HTTPError) as refused:
        panel_token_scopes(None, {"access:servers!user", "tokens!user"})
    assert refused.value.status_code == 403 and "ask an administrator" in refused.value.log_message


def test_the_panel_scopes_are_the_service_access_and_the_custom_scopes():
    assert set(PANEL_TOKEN_SCOPES) == {SERVICE_ACCESS, SCOPE_USE, SCOPE_REVIEW, SCOPE_ADMIN}


@pytest.mark.parametrize("authenticator_class", [BubbleOIDCAuthenticator, PanelScopedSharedPasswordAuthenticator])
def test_bubble_authenticators_put_the_token_handler_before_the_hub_s(authenticator_class):
    class App:  # what get_handlers reads of the hub
        base_url = "/"
        hub_prefix = "/hub/"

    settings = {"group_map": {"eds-researchers": "researchers"}} if authenticator_class is BubbleOIDCAuthenticator else {}
    handlers = authenticator_class(**settings).get_handlers(App())
    assert handlers[0] == (TOKEN_API_PATTERN, PanelScopedTokenAPIHandler)


def test_bubbles_do_not_start_under_an_authenticator_that_lets_users_mint_any_token():
    with pytest.raises(web.HTTPError) as refused:
        require_panel_tokens(DummyAuthenticator())
    assert "DummyAuthenticator" in refused.value.log_message and "PanelTokensMixin" in refused.value.log_message
    require_panel_tokens(PanelScopedSharedPasswordAuthenticator())


def test_the_spawner_s_pre_spawn_step_applies_the_rule():
    hooked = []
    with pytest.raises(web.HTTPError):
        LocalBubbleSpawner(authenticator=DummyAuthenticator(), pre_spawn_hook=hooked.append).run_pre_spawn_hook()
    assert hooked == []
    spawner = LocalBubbleSpawner(authenticator=PanelScopedSharedPasswordAuthenticator(), pre_spawn_hook=hooked.append)
    spawner.run_pre_spawn_hook()
    assert hooked == [spawner], "the deployment's own pre-spawn hook still runs"


class _Server:
    def __init__(self, active: bool):
        self.active = active


def _spawner_of(name: str, others: dict[str, bool], member: bool = True) -> tuple[LocalBubbleSpawner, list]:
    from types import SimpleNamespace

    audited: list = []
    named = type("NamedBubbleSpawner", (LocalBubbleSpawner,), {"name": name})  # a server's name comes from the hub's db
    spawner = named(authenticator=PanelScopedSharedPasswordAuthenticator())
    spawner.user = SimpleNamespace(name="alice", spawners={**{n: _Server(a) for n, a in others.items()},
                                                           name: _Server(True)})
    spawner._audit = lambda action, study, detail: audited.append((action, study, detail))
    spawner.is_member = lambda: member
    return spawner, audited


def test_a_second_bubble_of_the_same_person_is_refused_while_one_runs():
    spawner, audited = _spawner_of("beta", {"alpha": True, "gamma": False})
    with pytest.raises(web.HTTPError) as refused:
        spawner.run_pre_spawn_hook()
    assert refused.value.status_code == 409
    assert "stop your bubble for study alpha" in refused.value.jupyterhub_message
    assert audited == [("bubble.refused", None, {"reason": "another-bubble-running", "server": "beta",
                                                 "running": ["alpha"]})]


def test_stopped_bubbles_do_not_count():
    spawner, audited = _spawner_of("beta", {"alpha": False})
    spawner.run_pre_spawn_hook()
    assert audited == []


def test_a_non_member_is_left_to_the_gate_and_its_reason():
    spawner, audited = _spawner_of("beta", {"alpha": True}, member=False)
    spawner.run_pre_spawn_hook()
    assert audited == []


def test_the_panel_lives_on_its_own_service_subdomain_when_the_hub_has_subdomains():
    from bubble_manager.runtime.hubapi import landing_url, panel_url

    assert panel_url("http://hub.localhost:8000") == "http://bubble-manager--service.hub.localhost:8000/services/bubble-manager/"
    assert panel_url("https://eds.chu.example") == "https://bubble-manager--service.eds.chu.example/services/bubble-manager/"
    assert panel_url() == "/services/bubble-manager/"
    service = [{"name": "bubble-manager"}]
    assert landing_url(service, "https://eds.chu.example").startswith("https://bubble-manager--service.")
    assert landing_url([], "https://eds.chu.example") == "/hub/home"
