"""`LocalBubbleSpawner`: JupyterHub runs each study's JupyterLab in a bwrap sandbox on this host.

    c.JupyterHub.spawner_class = "bubble_manager.runtime.local.LocalBubbleSpawner"

The spawner is the only gate: each study a member belongs to is a named server whose name is the
study slug; the study comes from the server name alone (`user_options` are never read), the
default server and unknown names are refused, and so is a study that is not active, has ended,
does not count the user as a member, or whose extract fails verification. The user sees the
refusal's message in the hub. Every spawn, stop and refusal is audited.

A started bubble is a detached launcher (`launcher.py`, its own session) supervising `bwrap`: the
hub can restart without killing it, and finds it again from `get_state` (launcher pid and start
time). The single-user server listens on a unix socket that the proxy reaches
(`http+unix://...`), and talks to the hub's API over the hub's socket, mounted read-only in the
bubble. Its API token carries only `users:activity!user` and `access:servers!server`.
"""

from __future__ import annotations

import asyncio
import html
import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

from jupyterhub.spawner import Spawner
from jupyterhub.utils import url_path_join
from tornado import web
from traitlets import default

from ..config import BubbleManager
from ..operations import Context
from ..store import load_study
from . import bubbles, cgroups, layout
from .launcher import process_alive, read_state
from .hubapi import SERVICE_NAME
from .hubapi import panel_url as service_panel_url
from .sandbox import HUB_SOCKET_TARGET
from .settings import LocalBubbles
from .spawner_base import SERVER_TOKEN_SCOPES, BubbleSpawnerBase, shared_context  # noqa: F401 - re-exported
from .spec import SpawnRefused

def unix_url(path: Path | str) -> str:
    return "http+unix://" + quote(str(path), safe="")


class LocalBubbleSpawner(BubbleSpawnerBase, Spawner):
    """Spawns study bubbles: `bwrap` sandboxes run as a per-member uid, limits by cgroups."""

    @default("notebook_dir")
    def _home(self) -> str:
        return "/home/jovyan"

    @default("port")
    def _jupyter_default_port(self) -> int:
        return 8888  # jupyter_server accepts --sock only with its default port, which it then ignores

    @default("hub_connect_url")
    def _hub_socket_in_bubble(self) -> str:
        return unix_url(HUB_SOCKET_TARGET / self.local_settings.hub_socket_name)

    @default("env_keep")
    def _keep_nothing(self) -> list[str]:
        return []

    # --- state -------------------------------------------------------------------------------

    launcher_pid: int | None = None
    launcher_start: int | None = None
    bubble_uid: int | None = None
    run_path: str | None = None
    socket_path: str | None = None
    _launcher: subprocess.Popen | None = None

    @property
    def panel_url(self) -> str:
        """Where refused users are sent: the bubble-manager panel, which lists their studies."""
        subdomain_host = (getattr(self.user, "settings", None) or {}).get("subdomain_host", "")
        if subdomain_host:
            return service_panel_url(subdomain_host)
        return url_path_join(self.hub.base_url[:-4] if self.hub else "/", "services", SERVICE_NAME) + "/"

    @property
    def local_settings(self) -> LocalBubbles:
        return LocalBubbles(config=self.config)

    @property
    def context(self) -> Context:
        return shared_context(BubbleManager(config=self.config))

    def load_state(self, state: dict) -> None:
        super().load_state(state)
        self.launcher_pid = state.get("launcher_pid")
        self.launcher_start = state.get("launcher_start")
        self.bubble_uid = state.get("uid")
        self.run_path = state.get("run_dir")
        self.socket_path = state.get("socket")

    def get_state(self) -> dict:
        state = super().get_state()
        if self.launcher_pid:
            state.update(launcher_pid=self.launcher_pid, launcher_start=self.launcher_start, uid=self.bubble_uid,
                         run_dir=self.run_path, socket=self.socket_path)
        return state

    def clear_state(self) -> None:
        super().clear_state()
        self.launcher_pid = self.launcher_start = self.bubble_uid = None
        self.run_path = self.socket_path = None
        self._launcher = None

    @property
    def server(self):  # noqa: ANN201 - JupyterHub's Server
        """The hub stores only ip and port; the unix socket URL must be set again on each new object."""
        server = Spawner.server.fget(self)
        if server is not None and self.socket_path and not server.connect_url:
            server.connect_url = unix_url(self.socket_path)
        return server

    @server.setter
    def server(self, server) -> None:  # noqa: ANN001
        Spawner.server.fset(self, server)

    # --- environment -------------------------------------------------------------------------

    def get_env(self) -> dict:
        env = super().get_env()
        env.pop("JPY_API_TOKEN", None)
        return env

    def _audit(self, action: str, study: str | None, detail: dict) -> None:
        try:
            self.context.audit.record(actor=self.user.name, action=action, study=study, detail=detail)
        except Exception:
            self.log.exception("could not write the audit entry %s for %s", action, self._log_name)
            raise

    def _study_exists(self, slug: str) -> bool:
        if not slug:
            return False
        with self.context.store.transaction() as session:
            return load_study(session, slug) is not None

    # --- lifecycle ---------------------------------------------------------------------------

    def _prepare(self) -> bubbles.PreparedBubble:
        env = self.get_env()  # the hub's variables for the single-user server, the API token among them
        return bubbles.prepare_bubble(self.context, self.local_settings, self.user.name, self.name,
                                      singleuser_args=tuple(self.get_args()), extra_env=env)

    async def start(self) -> str:
        try:
            prepared = await asyncio.to_thread(self._prepare)
        except SpawnRefused as refusal:
            study = self.name if await asyncio.to_thread(self._study_exists, self.name) else None
            await asyncio.to_thread(self._audit, "bubble.refused", study,
                                    {"reason": refusal.reason, "server": self.name})
            self.log.warning("bubble %s refused: %s", self._log_name, refusal)
            error = web.HTTPError(403, str(refusal), reason=refusal.reason)
            error.jupyterhub_message = str(refusal)  # shown as is on the hub's pages and in API errors
            error.jupyterhub_html_message = (f"{html.escape(str(refusal))}. <a href=\"{html.escape(self.panel_url)}\">"
                                             "Open the bubble-manager panel</a> to see your studies.")
            raise error from refusal
        except (bubbles.BubbleUnavailable, layout.LayoutError) as error:
            await asyncio.to_thread(self._audit, "bubble.failed", self.name or None,
                                    {"reason": "host", "server": self.name})
            raise RuntimeError(f"the bubble cannot start on this host: {error}") from error
        status = await asyncio.to_thread(self._launch, prepared)
        if status.get("status") != "running":
            await asyncio.to_thread(self._audit, "bubble.failed", prepared.spec.study,
                                    {"reason": "launch", "uid": prepared.ids.uid})
            raise RuntimeError(f"the bubble of study {prepared.spec.study} could not start: {status.get('error')}")
        self.launcher_pid = status["launcher_pid"]
        self.launcher_start = status["launcher_start"]
        self.bubble_uid = prepared.ids.uid
        self.run_path = str(prepared.run.path)
        self.socket_path = str(prepared.run.server_socket)
        self.log.info("bubble %s started as uid %s, limits in force: %s; stops at %s", self._log_name,
                      prepared.ids.uid, status.get("limits"), prepared.spec.expires_at.isoformat())
        await asyncio.to_thread(self._audit, "bubble.spawn", prepared.spec.study, {
            "uid": prepared.ids.uid, "server": self.name, "limits": status.get("limits"),
            "manifest_sha256": prepared.spec.manifest_sha256, "expires_at": prepared.spec.expires_at.isoformat()})
        url = unix_url(self.socket_path)
        if self.server is not None:
            self.server.connect_url = url
        return url

    def _launch(self, prepared: bubbles.PreparedBubble) -> dict:
        self._launcher, status = bubbles.start_launcher(self.local_settings, prepared)
        return status

    def _alive(self) -> bool:
        if self._launcher is not None:
            return self._launcher.poll() is None
        return bool(self.launcher_pid) and process_alive(self.launcher_pid, self.launcher_start)

    async def poll(self) -> int | None:
        if not self.launcher_pid:
            return 0
        if self._alive():
            return None
        state = read_state(Path(self.run_path) / "state.json") if self.run_path else {}
        return int(state.get("exit_code", 0) or 0)

    async def stop(self, now: bool = False) -> None:
        if not self.launcher_pid:
            return
        grace = self.local_settings.stop_grace_seconds
        if self._alive():
            os.kill(self.launcher_pid, signal.SIGTERM)
            deadline = time.monotonic() + grace + 10
            while self._alive() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            if self._alive():
                self.log.warning("launcher of %s did not stop in time: SIGKILL", self._log_name)
                os.kill(self.launcher_pid, signal.SIGKILL)
        state = read_state(Path(self.run_path) / "state.json") if self.run_path else {}
        if state.get("cgroup"):
            group = cgroups.BubbleCgroup.from_dict(state["cgroup"])
            await asyncio.to_thread(group.kill_all)
            try:
                group.remove()
            except cgroups.CgroupError as error:
                self.log.warning("%s", error)
        if self._launcher is not None:
            await asyncio.to_thread(self._launcher.wait)
        if self.run_path:
            layout.remove_run_dir(layout.BubbleRunDir(Path(self.run_path)))
        study = self.name or None
        await asyncio.to_thread(self._audit, "bubble.stop", study, {"uid": self.bubble_uid, "server": self.name,
                                                                    "exit_code": state.get("exit_code")})
        self.log.info("bubble %s stopped", self._log_name)

    async def delete_forever(self) -> None:
        """Deleting the named server forgets it in the hub; the workspaces stay (they belong to the study)."""
        await asyncio.to_thread(self._audit, "bubble.server-deleted", self.name if self.name else None,
                                {"server": self.name, "workspace": "kept"})
