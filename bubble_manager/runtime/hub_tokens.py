"""API tokens that users create carry the panel's scopes and nothing else.

Users keep `tokens!user` so the CLI can call the panel's API, but JupyterHub lets a token carry
any scope its owner holds, `access:servers!user` included: a token that reaches one's bubbles
from outside the browser, around the per-subdomain cookies. `PanelScopedTokenAPIHandler` stands
in front of JupyterHub's own token API (an authenticator's handlers are matched before the hub's;
`PanelTokensMixin` adds it) and lets only the panel's scopes through:

- no scopes asked: the token gets the panel scopes its owner holds (instead of all of them);
- a scope outside the panel's, or a role: refused (403/400) with the list of what is allowed.

Only tokens asked for by people are limited: a service the deployment granted `tokens` (none by
default) is trusted with them by that grant.

Bubble spawners refuse to start under an authenticator without the mixin (`require_panel_tokens`):
the restriction cannot be left out by configuring another authenticator.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.apihandlers.users import UserTokenListAPIHandler
from jupyterhub.auth import Authenticator
from jupyterhub.authenticators.shared import SharedPasswordAuthenticator
from jupyterhub.scopes import get_scopes_for
from jupyterhub.user import User
from tornado import web

from ..service.authz import SCOPE_ADMIN, SCOPE_REVIEW, SCOPE_USE

SERVICE_ACCESS = "access:services!service=bubble-manager"
PANEL_TOKEN_SCOPES = (SERVICE_ACCESS, SCOPE_USE, SCOPE_REVIEW, SCOPE_ADMIN)
TOKEN_API_PATTERN = r"/api/users/([^/]+)/tokens"


def panel_token_scopes(requested: Any, held: set[str]) -> list[str]:
    """The scopes of a new user token: `requested` checked against the panel's, or by default the
    panel's scopes the owner holds. Raises `web.HTTPError` with what to ask instead."""
    allowed = ", ".join(PANEL_TOKEN_SCOPES)
    if requested:
        if not isinstance(requested, list) or not all(isinstance(scope, str) for scope in requested):
            raise web.HTTPError(400, f"token scopes must be a list of strings, not {requested!r}")
        refused = sorted(set(requested) - set(PANEL_TOKEN_SCOPES))
        if refused:
            raise web.HTTPError(403, f"API tokens carry only the bubble-manager panel's scopes ({allowed}); "
                                     f"refused: {', '.join(refused)}. Open bubbles from the panel in a browser.")
        return list(requested)
    scopes = [scope for scope in PANEL_TOKEN_SCOPES if scope in held]
    if SERVICE_ACCESS not in scopes or len(scopes) < 2:
        raise web.HTTPError(403, "this account holds none of the bubble-manager panel's roles (researcher, "
                                 "steward or admin), so it gets no API token; ask an administrator")
    return scopes


class PanelScopedTokenAPIHandler(UserTokenListAPIHandler):
    """JupyterHub's token API (list, create) with new tokens limited to the panel's scopes."""

    _panel_body: dict[str, Any] | None = None

    def get_json_body(self) -> Any:
        if self._panel_body is not None:
            return self._panel_body
        return super().get_json_body()

    async def post(self, user_name: str) -> None:
        body = super().get_json_body() or {}
        requester = self.current_user
        if isinstance(body, dict) and (requester is None or isinstance(requester, User)):
            try:
                self._panel_body = self._limited(body, user_name)
            except web.HTTPError as error:
                self.log.warning("token for %s refused: %s", user_name, error.log_message)
                raise
        await super().post(user_name)

    def _limited(self, body: dict[str, Any], user_name: str) -> dict[str, Any]:
        if body.get("roles"):
            raise web.HTTPError(400, "token roles are not accepted: API tokens carry only the bubble-manager "
                                     f"panel's scopes ({', '.join(PANEL_TOKEN_SCOPES)}); ask for those as scopes")
        owner = self.find_user(user_name)
        held = set(get_scopes_for(owner)) if owner is not None else set()
        if owner is None and not body.get("scopes"):
            return body  # JupyterHub answers 403 for an unknown user
        return {**body, "scopes": panel_token_scopes(body.get("scopes"), held)}


class PanelTokensMixin:
    """Put before an Authenticator class: its handlers include the panel-scoped token API."""

    def get_handlers(self, app: Any) -> list[tuple[str, type]]:
        return [(TOKEN_API_PATTERN, PanelScopedTokenAPIHandler), *super().get_handlers(app)]  # type: ignore[misc]


class PanelScopedSharedPasswordAuthenticator(PanelTokensMixin, SharedPasswordAuthenticator):
    """The demo's shared-password login (`hub_config/demo_config.py`), with panel-scoped tokens."""


def require_panel_tokens(authenticator: Authenticator | None) -> None:
    """Refuse to run bubbles under an authenticator that lets users mint tokens reaching them."""
    if not isinstance(authenticator, PanelTokensMixin):
        name = type(authenticator).__name__
        raise web.HTTPError(500, f"bubbles do not start under the {name} authenticator: it lets users create API "
                                 "tokens that reach their bubbles; use BubbleOIDCAuthenticator or put "
                                 "bubble_manager.runtime.hub_tokens.PanelTokensMixin before its class")
