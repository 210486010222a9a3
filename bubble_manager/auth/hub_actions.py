"""What the access review does to a person inside the running hub: a thin adapter over JupyterHub.

The authenticator runs in the hub process, so it acts on the hub's own objects (the same calls
the hub's REST handlers make) rather than through its API: with `manage_groups` the group API is
closed, and revoking someone's tokens through the API would need the `tokens` scope, which lets
its holder act as anyone.
"""

from __future__ import annotations

import asyncio
from typing import Any, Iterable

from jupyterhub import orm
from jupyterhub.utils import new_token


class HubActions:
    """Group sync, server stops, token and session revocation for one JupyterHub application."""

    def __init__(self, app: Any):
        self.app = app

    @property
    def db(self) -> Any:
        return self.app.db

    def user_names(self) -> list[str]:
        return [name for (name,) in self.db.query(orm.User.name)]

    def user(self, name: str) -> Any | None:
        orm_user = orm.User.find(self.db, name)
        return self.app.users[orm_user] if orm_user is not None else None

    def groups_of(self, user: Any) -> list[str]:
        return sorted(group.name for group in user.orm_user.groups)

    def set_groups(self, user: Any, groups: Iterable[str]) -> None:
        user.sync_groups(sorted(groups))

    def has_access_artifacts(self, user: Any) -> bool:
        """Groups, tokens or running servers: something the review must confirm or take away."""
        return bool(user.orm_user.groups or user.orm_user.api_tokens
                    or any(spawner.active for spawner in user.spawners.values()))

    async def stop_servers(self, user: Any, timeout: float = 60) -> list[str]:
        """Stop every running server of `user` (proxy route first, as the hub's API does); names stopped."""
        stopped = []
        for name, spawner in list(user.spawners.items()):
            if not spawner.active:
                continue
            for _ in range(int(timeout * 5)):
                if not spawner.pending:
                    break
                await asyncio.sleep(0.2)  # a start or stop in flight: let it settle, then stop
            if not spawner.active or spawner.pending == "stop":
                continue
            spawner._stop_pending = True
            try:
                await self.app.proxy.delete_user(user, name)
                await user.stop(name)
            finally:
                spawner._stop_pending = False
            stopped.append(name or "(default)")
        return stopped

    def revoke_tokens(self, user: Any) -> int:
        """Delete every API and OAuth token the user holds (CLI tokens, panel and bubble sessions)."""
        tokens = list(user.orm_user.api_tokens)
        for token in tokens:
            self.db.delete(token)
        self.db.commit()
        return len(tokens)

    def end_sessions(self, user: Any) -> None:
        """Invalidate every browser session: hub cookies hold the cookie id, which changes here."""
        user.orm_user.cookie_id = new_token()
        self.db.commit()
