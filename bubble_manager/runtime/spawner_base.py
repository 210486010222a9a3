"""What every bubble spawner shares, local or Kubernetes: the gate's defaults and the store handle.

A bubble's hub token carries only what a single-user server needs, users cannot configure their
server, and whatever a client sends as user options is never read: the study and everything else
come from the store through `spec.build_spec`.
"""

from __future__ import annotations

from typing import Any

from tornado import web
from traitlets import default
from traitlets.config import LoggingConfigurable

from ..config import BubbleManager
from ..operations import Context
from .hub_tokens import require_panel_tokens

SERVER_TOKEN_SCOPES = ["users:activity!user", "access:servers!server"]
_contexts: dict[tuple[str, str], Context] = {}


def shared_context(settings: BubbleManager) -> Context:
    """One store connection per hub process (the spawners of all users share it)."""
    key = (str(settings.home_path.resolve()), settings.db_url)
    if key not in _contexts:
        _contexts[key] = Context.open(settings, migrate=False)
    return _contexts[key]


def close_shared_contexts() -> None:
    for context in _contexts.values():
        context.close()
    _contexts.clear()


class BubbleSpawnerBase(LoggingConfigurable):
    """Defaults of a study bubble, mixed in before a JupyterHub Spawner class (it overrides that
    spawner's defaults); subclasses render `BubbleSpec` for their platform."""

    @default("server_token_scopes")
    def _minimal_server_token_scopes(self) -> list[str]:
        return list(SERVER_TOKEN_SCOPES)

    @default("oauth_client_allowed_scopes")
    def _no_extra_oauth_scopes(self) -> list[str]:
        return []

    @default("disable_user_config")
    def _no_user_config(self) -> bool:
        return True

    @default("default_url")
    def _lab(self) -> str:
        return "/lab"

    @default("options_form")
    def _no_options_form(self) -> str:
        return ""

    def options_from_form(self, formdata: dict[str, Any]) -> dict[str, Any]:
        return {}

    def run_pre_spawn_hook(self) -> Any:
        require_panel_tokens(getattr(self, "authenticator", None))
        self.require_no_other_bubble()
        return super().run_pre_spawn_hook()  # type: ignore[misc]

    def require_no_other_bubble(self) -> None:
        """One bubble at a time per person. JupyterHub gives each user one subdomain, not one per
        server: all of a person's bubbles share a browser origin and the person's cookies, so a
        page of one study could read the bubble of another. Refused (409) while another runs."""
        spawners = getattr(getattr(self, "user", None), "spawners", None) or {}
        running = sorted(name for name, spawner in spawners.items() if name != self.name and spawner.active)
        if not running or not self.is_member():
            return  # not a member: the gate in start() refuses with that reason
        self._audit("bubble.refused", None, {"reason": "another-bubble-running", "server": self.name,
                                             "running": running})
        message = (f"stop your bubble for study {running[0]} before opening another: a person's bubbles share one "
                   "browser origin, so only one runs at a time")
        error = web.HTTPError(409, message, reason="another-bubble-running")
        error.jupyterhub_message = message  # type: ignore[attr-defined]
        raise error

    def is_member(self) -> bool:
        """Whether the user is a member of the study this server is named after (the gate decides the rest)."""
        from ..store import load_study

        with self.context.store.transaction() as session:  # type: ignore[attr-defined]
            study = load_study(session, self.name)
        return study is not None and self.user.name in study.members  # type: ignore[attr-defined]

    async def load_user_options(self) -> None:
        """Whatever the client sent is never read: the study and everything else come from the store."""
        self.user_options = {}
