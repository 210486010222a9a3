"""The reconciler's view of the hub: a synchronous face on the service's `HubClient`, and idle bubbles.

The reconciler's steps are plain blocking code (snapshots, extract builds, store transactions),
so it runs in a worker thread; its hub calls go to an event loop: the service's own loop (the
tick runs in a thread beside it) or, for `bubble-manager reconcile`, a loop of its own in a
background thread. Any failure to reach the hub or a 5xx answer is `HubUnavailable`: the step
that needed the hub fails, nothing is marked done, and the next tick tries again.

Idle bubbles are found with jupyterhub-idle-culler's own rule (`default_cull_arbiter` over the
time since the server's last activity, pending servers never culled), applied to the study
servers the reconciler lists through the hub API. The culler's HTTP loop itself is not used here:
it speaks only TCP, and the local profile's hub API is a unix socket. With a TCP hub API (the
Kubernetes profile) the culler can also run as a hub-managed service (docs/lifecycle-operations.md).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import datetime as dt
import threading
import time
from dataclasses import dataclass
from typing import Any, Coroutine, Protocol
from urllib.parse import quote

from .service.hub_client import HubApiError, HubClient


class HubUnavailable(RuntimeError):
    """The hub API could not be reached or failed; the step is retried on the next tick."""


class HubPort(Protocol):
    """What the reconciler asks of the hub."""

    def servers(self) -> list[dict[str, Any]]: ...
    def stop_server(self, user: str, name: str) -> None: ...
    def start_server(self, user: str, name: str) -> None: ...
    def group_members(self, group: str) -> list[str]: ...


class SyncHub:
    """Blocking calls to the hub API through `HubClient`, on `loop` or on a loop of its own."""

    def __init__(self, client: HubClient, loop: asyncio.AbstractEventLoop | None = None, *, timeout: float = 60.0):
        self.client = client
        self.timeout = timeout
        self._own_thread: threading.Thread | None = None
        if loop is None:
            loop = asyncio.new_event_loop()
            self._own_thread = threading.Thread(target=loop.run_forever, name="reconciler-hub", daemon=True)
            self._own_thread.start()
        self.loop = loop

    @classmethod
    def connect(cls, api_url: str, token: str, *, timeout: float = 60.0) -> "SyncHub":
        if not api_url or not token:
            raise ValueError("the hub API needs its URL and a token: pass --hub-api-url and set "
                             "$JUPYTERHUB_API_TOKEN to a token with list:users, read:servers, delete:servers, "
                             "servers and read:groups")
        return cls(HubClient(api_url, token), timeout=timeout)

    def _call(self, coroutine: Coroutine) -> Any:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(self.timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise HubUnavailable(f"the hub API did not answer within {self.timeout:.0f} s") from None
        except HubApiError as error:
            if error.status >= 500 or error.status in (408, 429):
                raise HubUnavailable(str(error)) from None
            raise
        except (OSError, asyncio.TimeoutError) as error:
            raise HubUnavailable(f"the hub API is unreachable at {self.client.api_url}: {error}") from None
        except Exception as error:  # aiohttp's client errors
            if type(error).__module__.startswith("aiohttp"):
                raise HubUnavailable(f"the hub API failed: {type(error).__name__}: {error}") from None
            raise

    def servers(self) -> list[dict[str, Any]]:
        return self._call(self.client.servers())

    def stop_server(self, user: str, name: str) -> None:
        try:
            self._call(self.client.stop_server(user, name))
        except HubApiError as error:
            if error.status != 404:  # already gone
                raise

    def start_server(self, user: str, name: str) -> None:
        self._call(self.client.request("POST", f"users/{quote(user, safe='')}/servers/{quote(name, safe='')}"))

    def group_members(self, group: str) -> list[str]:
        return self._call(self.client.group_members(group))

    def close(self) -> None:
        if self._own_thread is None:
            return
        from jupyterhub.httpclient import JupyterHubHTTPClient

        async def close_session() -> None:
            await JupyterHubHTTPClient.loop_instance().close()

        try:
            asyncio.run_coroutine_threadsafe(close_session(), self.loop).result(10)
        except Exception:  # closing is best effort
            pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._own_thread.join(10)
        self.loop.close()
        self._own_thread = None


def study_servers(servers: list[dict[str, Any]], slug: str) -> list[dict[str, Any]]:
    return [server for server in servers if server["study"] == slug]


def stop_and_wait(hub: HubPort, servers: list[dict[str, Any]], slug: str, timeout: float) -> tuple[int, int]:
    """Stop every server of `slug`; wait until the hub lists none. Returns (asked, still running)."""
    mine = study_servers(servers, slug)
    for server in mine:
        hub.stop_server(server["user"], slug)
    left = mine
    deadline = time.monotonic() + timeout
    while left and time.monotonic() < deadline:
        time.sleep(0.25)
        left = study_servers(hub.servers(), slug)
    return len(mine), len(left)


# --- idle bubbles --------------------------------------------------------------------------------

@dataclass(frozen=True)
class IdleServer:
    user: str
    study: str
    idle_seconds: int


def idle_servers(servers: list[dict[str, Any]], now: dt.datetime, timeout_seconds: int) -> list[IdleServer]:
    """The servers jupyterhub-idle-culler would cull at `now`: ready, not pending, inactive too long."""
    from jupyterhub_idle_culler import default_cull_arbiter, parse_date

    idle = []
    for server in servers:
        if server.get("pending") or not server.get("ready"):
            continue
        seen = server.get("last_activity") or server.get("started")
        if not seen:
            continue
        inactive = now - parse_date(seen)
        if default_cull_arbiter(inactive=inactive, inactive_limit=timeout_seconds, server=server):
            idle.append(IdleServer(server["user"], server["study"], int(inactive.total_seconds())))
    return idle


# --- servers nobody may run anymore ----------------------------------------------------------------

@dataclass(frozen=True)
class StrayServer:
    user: str
    study: str
    rule: str          # "unknown-study", "not-active" or "not-member"
    state: str | None


def stray_servers(servers: list[dict[str, Any]], studies: dict[str, tuple[str, frozenset[str]]]) -> list[StrayServer]:
    """The servers the spawner's gate would refuse now: the study (state, members) is unknown, not
    active, or does not count the user as a member (e.g. removed by an approved amendment).
    Pending servers are left for the next tick (a stop cannot interrupt a spawn). Pure."""
    stray = []
    for server in servers:
        if server.get("pending"):
            continue
        state, members = studies.get(server["study"], (None, frozenset()))
        if state is None:
            rule = "unknown-study"
        elif state != "active":
            rule = "not-active"
        elif server["user"] not in members:
            rule = "not-member"
        else:
            continue
        stray.append(StrayServer(server["user"], server["study"], rule, state))
    return stray
