"""Everything a local bubble needs before its launcher starts, shared by the spawner and
`bubble-manager sandbox exec` so both get exactly the same sandbox.

`prepare_bubble` runs the gate (`build_spec`), verifies the extract, allocates the member's uid
and the study's gid, lays out the host folders, and returns the launch plan the launcher reads
on its standard input. It raises `SpawnRefused` (message for the user) before touching anything
when the gate or the extract check refuses.
"""

from __future__ import annotations

import json
import os
import secrets
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import clock
from ..operations import Context
from ..store import load_study
from . import cgroups, extract_gate, layout, uids
from .sandbox import (HOST_ETC_READ_ONLY, SERVER_SOCKET_NAME, SERVER_SOCKET_TARGET, USR_SYMLINKS, SandboxHost,
                      base_environment, bwrap_argv)
from .settings import LocalBubbles
from .spec import BubbleSpec, StudyPaths, build_spec


class BubbleUnavailable(RuntimeError):
    """The host cannot run bubbles as configured (bubble environment, bwrap, cgroups)."""


@dataclass(frozen=True)
class PreparedBubble:
    spec: BubbleSpec
    ids: uids.BubbleIds
    run: layout.BubbleRunDir
    manifest: dict[str, Any]
    plan: dict[str, Any]

    @property
    def limits(self) -> cgroups.Limits:
        r = self.spec.resources
        return cgroups.Limits(memory_bytes=r.memory_bytes, cpu=r.cpu, pids=r.pids)


def host_paths_present() -> frozenset[str]:
    candidates = [f"/{source}" for source, _ in USR_SYMLINKS] + list(HOST_ETC_READ_ONLY)
    return frozenset(path for path in candidates if os.path.lexists(path))


def singleuser_command(local: LocalBubbles, args: list[str] | tuple[str, ...] = ()) -> tuple[str, ...]:
    """jupyterhub-singleuser from the bubble environment, listening on the bubble's socket only."""
    return (f"{local.bubble_env}/bin/jupyterhub-singleuser", *args,
            f"--ServerApp.sock={SERVER_SOCKET_TARGET / SERVER_SOCKET_NAME}", "--ServerApp.sock_mode=0600")


def cgroup_plan(local: LocalBubbles, name: str, spec: BubbleSpec) -> dict[str, Any] | None:
    version = cgroups.detect(Path(local.cgroup_root)) if local.cgroups == "auto" else (
        None if local.cgroups == "none" else local.cgroups)
    if version is None:
        if local.require_limits:
            raise BubbleUnavailable("no cgroup controllers for memory, cpu and pids limits on this host "
                                    f"(looked under {local.cgroup_root}); mount them, or set "
                                    "c.LocalBubbles.require_limits = False to run bubbles without limits")
        return None
    r = spec.resources
    return {"version": version, "root": local.cgroup_root, "parent": local.cgroup_parent, "name": name,
            "memory_bytes": r.memory_bytes, "cpu": r.cpu, "pids": r.pids}


def check_host(local: LocalBubbles) -> None:
    """The bubble environment and bwrap must be there before anything is allocated."""
    singleuser = Path(local.bubble_env) / "bin" / "jupyterhub-singleuser"
    if not singleuser.exists():
        raise BubbleUnavailable(f"the bubble environment {local.bubble_env} is missing or incomplete (no "
                                f"{singleuser}); build it with `make bubble-env`")
    if not os.path.exists("/usr/bin/bwrap"):
        raise BubbleUnavailable("bubblewrap is not installed (/usr/bin/bwrap); `apt-get install bubblewrap`")
    if os.geteuid() != 0:
        raise BubbleUnavailable("local bubbles are started by root (to switch to each bubble's uid); "
                                "run the hub as root")


def prepare_bubble(context: Context, local: LocalBubbles, member: str, server_name: str, *, run_suffix: str = "",
                   command: tuple[str, ...] | None = None, singleuser_args: tuple[str, ...] = (),
                   extra_env: dict[str, str] | None = None, hub_socket: bool = True) -> PreparedBubble:
    """Gate, verify, allocate, lay out and plan one bubble (see the module docstring)."""
    now = clock.utcnow()
    with context.store.transaction() as session:
        study = load_study(session, server_name) if server_name else None
    # The gate first, with no uid yet: a refused spawn allocates nothing.
    build_spec(study, member, server_name, home=context.home, now=now, uid=None, manifest_sha256="", command=())
    assert study is not None
    paths = StudyPaths(context.home, study.slug)
    manifest = extract_gate.verify_for_spawn(paths, context.verifier(), study)
    check_host(local)
    ids = uids.allocate(context.store, context.audit, study.slug, member, local.uid_min, local.uid_max)
    environment = {"BUBBLE_STUDY_MEMBERS": str(len(study.members))}
    spec = build_spec(study, member, server_name, home=context.home, now=now, uid=ids.uid,
                      manifest_sha256=extract_gate.manifest_sha256(paths),
                      command=command or singleuser_command(local, singleuser_args), environment=environment,
                      pids=local.pids_limit)
    layout.prepare_study(paths, ids.gid)
    layout.prepare_workspace(paths, member, ids.uid, ids.gid)
    name = layout.run_dir_name(ids.uid, run_suffix)
    run = layout.prepare_run_dir(local, name, ids.uid, ids.gid, study.slug, hostname=study.slug)
    for needed in (paths.extract, paths.workspace(member), paths.shared, Path(local.bubble_env), run.sock, run.etc):
        layout.check_reachable(needed, ids.uid, ids.gid)
    host = SandboxHost(uid=ids.uid, gid=ids.gid, bubble_env=Path(local.bubble_env), etc_dir=run.etc, socket_dir=run.sock,
                       hub_socket_dir=local.hub_socket_dir if hub_socket and local.hub_socket_dir.is_dir() else None,
                       manifest=paths.manifest, hostname=study.slug)
    argv = bwrap_argv(spec, host, host_paths_present=host_paths_present())
    env = {**base_environment(spec, Path(local.bubble_env)), **(extra_env or {})}
    settings = context.settings
    plan = {
        "name": name, "argv": argv, "env": env, "uid": ids.uid, "gid": ids.gid, "umask": 0o007,
        "cgroup": cgroup_plan(local, name, spec), "require_limits": local.require_limits,
        "expires_at": spec.expires_at.isoformat(), "study_expires_at": spec.expires_at.isoformat(),
        "stop_grace_seconds": local.stop_grace_seconds,
        "state_file": str(run.state), "log_file": str(run.log),
        "audit": {"home": str(settings.home_path.resolve()), "db_url": settings.db_url,
                  "audit_sink": settings.audit_sink, "audit_checkpoint_path": str(Path(settings.audit_checkpoint_path).resolve()),
                  "study": study.slug, "member": member},
    }
    return PreparedBubble(spec=spec, ids=ids, run=run, manifest=manifest, plan=plan)


def launcher_command(local: LocalBubbles) -> list[str]:
    return [local.python or sys.executable, "-m", "bubble_manager.runtime.launcher"]


def start_launcher(local: LocalBubbles, prepared: PreparedBubble) -> tuple[subprocess.Popen, dict[str, Any]]:
    """Start the bubble's launcher in a session of its own, hand it the plan on its standard input
    (the plan holds the hub token: never on a command line), and read its one status line."""
    log_fd = os.open(prepared.run.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        process = subprocess.Popen(launcher_command(local), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=log_fd, start_new_session=True, close_fds=True,
                                   env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
    finally:
        os.close(log_fd)
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps(prepared.plan).encode())
    process.stdin.close()
    line = process.stdout.readline()
    process.stdout.close()
    try:
        return process, json.loads(line)
    except json.JSONDecodeError:
        process.wait()
        return process, {"status": "failed", "error": f"the launcher exited with status {process.returncode}; "
                                                      f"see {prepared.run.log}"}


def exec_run_suffix() -> str:
    """Run folders of `sandbox exec` never collide with the bubble's own (lowercase hex)."""
    return f"-x{secrets.token_hex(4)}"
