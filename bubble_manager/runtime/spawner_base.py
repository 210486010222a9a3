"""What every bubble spawner shares, local or Kubernetes: the gate's defaults and the store handle.

A bubble's hub token carries only what a single-user server needs, users cannot configure their
server, and whatever a client sends as user options is never read: the study and everything else
come from the store through `spec.build_spec`.
"""

from __future__ import annotations

from typing import Any

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
        return super().run_pre_spawn_hook()  # type: ignore[misc]

    async def load_user_options(self) -> None:
        """Whatever the client sent is never read: the study and everything else come from the store."""
        self.user_options = {}
