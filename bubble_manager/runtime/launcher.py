"""The launcher: a small root supervisor outside the sandbox, one per running bubble.

    python -m bubble_manager.runtime.launcher   < plan.json

It reads its launch plan (JSON, on standard input: the plan holds the hub API token, which must
never appear on a command line), creates the bubble's cgroup with its limits, starts `bwrap` as
the bubble's unprivileged uid inside that cgroup, reports one JSON status line on standard
output, and then supervises:

- at the study's end it stops the bubble (SIGTERM, then SIGKILL after the grace period) even if
  the hub is down, and audits `bubble.expired`; only if the store then shows that an approved
  extension moved the active study's end (and the user is still a member) does it keep the
  bubble running until the new end (`bubble.extended`); a store it cannot read stops the bubble;
- on SIGTERM (the spawner's stop) it stops the bubble the same way;
- when the bubble exits by itself it audits `bubble.exited`;
- it always removes the cgroup and records the outcome in its state file.

It runs in a session of its own, so a hub restart does not touch it; `bwrap --die-with-parent`
takes the sandbox down if the launcher itself dies. Imports stay light (standard library and
`cgroups.py`) so a bubble starts fast; the store is opened only to audit an end.
"""

from __future__ import annotations

import ctypes
import datetime as dt
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from .. import clock
from . import cgroups

PR_SET_NO_NEW_PRIVS = 38
WATCHED_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGCHLD}
LONGEST_WAIT = 3600.0


def process_start_ticks(pid: int) -> int | None:
    """Start time of `pid` in clock ticks since boot (field 22 of /proc/PID/stat), None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = text[text.rindex(")") + 2:].split()
    return int(fields[19])


def process_alive(pid: int, start_ticks: int | None) -> bool:
    """True while `pid` runs and is still the process that started at `start_ticks` (not a zombie)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    fields = text[text.rindex(")") + 2:].split()
    if fields[0] == "Z":
        return False
    return start_ticks is None or int(fields[19]) == start_ticks


def write_state(path: Path, state: dict[str, Any]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(state, handle)
    os.replace(temporary, path)


def read_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(Path(path).read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        return {}


def _now() -> str:
    return clock.utcnow().isoformat()


def _log(log, message: str) -> None:  # noqa: ANN001
    log.write(f"[bubble-launcher {_now()}] {message}\n".encode())
    log.flush()


def _child_setup(uid: int, gid: int, umask: int, cgroup: cgroups.BubbleCgroup | None):  # noqa: ANN202
    """Runs in the child between fork and exec, still as root: cgroup, then drop to the bubble uid."""
    libc = ctypes.CDLL(None, use_errno=True)

    def setup() -> None:
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        if cgroup is not None:
            cgroup.join(os.getpid())
        os.umask(umask)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
        if os.getuid() != uid or os.geteuid() != uid or uid == 0:
            os._exit(126)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)

    return setup


def _args_through_fd(argv: list[str]) -> tuple[list[str], int]:
    """bwrap reads its options from a file descriptor (`--args FD`), so the sandbox's own
    /proc/1/cmdline shows `bwrap --args N`, not the host paths of its mounts."""
    separator = argv.index("--")
    fd = os.memfd_create("bwrap-args", 0)
    os.write(fd, b"".join(arg.encode() + b"\0" for arg in argv[1:separator]))
    os.lseek(fd, 0, os.SEEK_SET)
    return [argv[0], "--args", str(fd), *argv[separator:]], fd


class Launch:
    """One supervised bubble, from a plan (see `bubble_manager.runtime.local.launch_plan`)."""

    def __init__(self, plan: dict[str, Any]):
        self.plan = plan
        self.state_path = Path(plan["state_file"])
        self.expires_at = dt.datetime.fromisoformat(plan["expires_at"])
        # the study's end when the bubble started: a later end in the store is an extension
        self.study_end = dt.datetime.fromisoformat(plan.get("study_expires_at") or plan["expires_at"])
        self.grace = float(plan.get("stop_grace_seconds", 5.0))
        self.cgroup: cgroups.BubbleCgroup | None = None
        self.limits_text = "none"
        self.process: subprocess.Popen | None = None
        self.state: dict[str, Any] = {}

    # --- start ---

    def make_cgroup(self, log) -> None:  # noqa: ANN001
        spec = self.plan.get("cgroup")
        if not spec:
            if self.plan.get("require_limits", True):
                raise cgroups.CgroupError("no cgroup controllers available for memory, cpu and pids limits")
            _log(log, "WARNING: no limits in force (cgroups disabled)")
            return
        limits = cgroups.Limits(memory_bytes=int(spec["memory_bytes"]), cpu=float(spec["cpu"]), pids=int(spec["pids"]))
        self.cgroup = cgroups.create(Path(spec["root"]), spec["version"], spec["parent"], spec["name"], limits)
        in_force = cgroups.read_limits(self.cgroup)
        self.limits_text = f"cgroup {self.cgroup.version}: {limits.describe()} (kernel: {in_force})"
        _log(log, f"limits in force, {self.limits_text}")

    def start(self, log, *, foreground: bool = False) -> dict[str, Any]:  # noqa: ANN001
        """Start bwrap; in the foreground its standard streams are the caller's (`sandbox exec`)."""
        plan = self.plan
        self.make_cgroup(log)
        signal.pthread_sigmask(signal.SIG_BLOCK, WATCHED_SIGNALS)
        streams = {} if foreground else {"stdin": subprocess.DEVNULL, "stdout": log, "stderr": log}
        argv, args_fd = _args_through_fd(plan["argv"])
        try:
            self.process = subprocess.Popen(
                argv, env=plan["env"], close_fds=True, pass_fds=(args_fd,), **streams,
                preexec_fn=_child_setup(int(plan["uid"]), int(plan["gid"]), int(plan.get("umask", 0o007)), self.cgroup))
        finally:
            os.close(args_fd)
        self.state = {
            "status": "running", "launcher_pid": os.getpid(), "launcher_start": process_start_ticks(os.getpid()),
            "bwrap_pid": self.process.pid, "uid": plan["uid"], "gid": plan["gid"], "started_at": _now(),
            "expires_at": plan["expires_at"], "limits": self.limits_text,
            "cgroup": self.cgroup.as_dict() if self.cgroup else None,
        }
        write_state(self.state_path, self.state)
        _log(log, f"bubble started: bwrap pid {self.process.pid} as uid {plan['uid']} gid {plan['gid']}, "
                  f"stops at {plan['expires_at']}")
        return self.state

    # --- supervise ---

    def supervise(self, log) -> tuple[str, int]:  # noqa: ANN001
        """Wait for the bubble's end; returns (reason, exit code)."""
        assert self.process is not None
        while True:
            code = self.process.poll()
            if code is not None:
                return "exited", code
            left = (self.expires_at - clock.utcnow()).total_seconds()
            if left <= 0:
                if self.extend(log):
                    continue
                _log(log, "the study's end time is reached: stopping the bubble")
                return "expired", self.stop(log)
            info = signal.sigtimedwait(WATCHED_SIGNALS, min(left, LONGEST_WAIT))
            if info is not None and info.si_signo != signal.SIGCHLD:
                _log(log, f"stop requested (signal {signal.Signals(info.si_signo).name})")
                return "stopped", self.stop(log)

    def extend(self, log) -> bool:  # noqa: ANN001
        """At the deadline: True (and a new deadline) when an extension of the study was approved
        since the bubble started. Anything else, a store that cannot be read included, ends it."""
        audit = self.plan.get("audit")
        if not audit:
            return False
        try:
            from ..store import load_study
            from ..studies import State

            context = _open_context(audit)
            try:
                with context.store.transaction() as session:
                    study = load_study(session, audit["study"])
                now = clock.utcnow()
                if (study is None or study.state is not State.active or audit["member"] not in study.members
                        or study.expires_at <= max(self.study_end, now)):
                    return False
                context.audit.record(actor="bubble-manager", action="bubble.extended", study=study.slug,
                                     detail={"member": audit["member"], "uid": self.plan["uid"], "by": "launcher",
                                             "from": self.study_end.isoformat(),
                                             "expires_at": study.expires_at.isoformat()})
            finally:
                context.close()
        except Exception as error:
            _log(log, f"WARNING: could not look for an extension of the study ({error!r}): the deadline stands")
            return False
        _log(log, f"the study was extended: the bubble now stops at {study.expires_at.isoformat()}")
        self.study_end = self.expires_at = study.expires_at
        self.state["expires_at"] = study.expires_at.isoformat()
        write_state(self.state_path, self.state)
        return True

    def stop(self, log) -> int:  # noqa: ANN001
        """SIGTERM every process of the bubble but bwrap itself, then SIGKILL what is left."""
        assert self.process is not None
        if self.cgroup is not None:
            for pid in self.cgroup.pids() - {self.process.pid}:
                try:
                    os.kill(pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        else:
            self.process.terminate()
        try:
            return self.process.wait(timeout=self.grace)
        except subprocess.TimeoutExpired:
            _log(log, f"bubble still running {self.grace:g} s after SIGTERM: SIGKILL")
        if self.cgroup is not None:
            self.cgroup.kill_all()
        self.process.kill()
        return self.process.wait()

    def cleanup(self, log, reason: str, code: int) -> None:  # noqa: ANN001
        if self.cgroup is not None:
            try:
                if not self.cgroup.kill_all(timeout=10):
                    _log(log, "WARNING: processes left in the bubble's cgroup after SIGKILL")
                self.cgroup.remove()
            except cgroups.CgroupError as error:
                _log(log, f"WARNING: {error}")
        self.state.update(status="ended", reason=reason, exit_code=code, ended_at=_now())
        write_state(self.state_path, self.state)
        _log(log, f"bubble ended ({reason}, exit code {code})")

    def audit_end(self, log, reason: str, code: int) -> None:  # noqa: ANN001
        """Record an end the hub did not ask for: the study's end, or the bubble exiting by itself."""
        audit = self.plan.get("audit")
        if not audit or reason == "stopped":
            return
        try:
            context = _open_context(audit)
            try:
                action = "bubble.expired" if reason == "expired" else "bubble.exited"
                context.audit.record(actor="bubble-manager", action=action, study=audit["study"],
                                     detail={"member": audit["member"], "uid": self.plan["uid"], "exit_code": code,
                                             "by": "launcher"})
            finally:
                context.close()
        except Exception as error:  # the bubble is already down; the audit failure is logged for the admins
            _log(log, f"WARNING: could not audit the bubble's end: {error!r}")


def _open_context(audit: dict[str, Any]):  # noqa: ANN202 - operations.Context
    """The store and audit log, opened only when needed (the imports are heavy for a start)."""
    from ..config import BubbleManager
    from ..operations import Context

    settings = BubbleManager(home=audit["home"], db_url=audit["db_url"], audit_sink=audit["audit_sink"],
                             audit_checkpoint_path=audit["audit_checkpoint_path"])
    return Context.open(settings, migrate=False)


def run_foreground(plan: dict[str, Any]) -> int:
    """Run the plan's command in the sandbox, attached to the caller's terminal; its exit code."""
    launch = Launch(plan)
    log_fd = os.open(plan["log_file"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(log_fd, "ab", buffering=0) as log:
        try:
            launch.start(log, foreground=True)
        except BaseException:
            if launch.cgroup is not None:
                launch.cgroup.remove()
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED_SIGNALS)
            raise
        try:
            reason, code = launch.supervise(log)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, WATCHED_SIGNALS)
        launch.cleanup(log, reason, code)
    return code


def main() -> int:
    plan = json.loads(sys.stdin.read())
    launch = Launch(plan)
    log_fd = os.open(plan["log_file"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    with os.fdopen(log_fd, "ab", buffering=0) as log:
        try:
            state = launch.start(log)
        except Exception as error:
            message = str(error) or repr(error)
            _log(log, f"failed to start: {message}")
            if launch.cgroup is not None:
                launch.cgroup.remove()
            print(json.dumps({"status": "failed", "error": message}), flush=True)
            return 1
        print(json.dumps(state), flush=True)
        # The spawner reads one line; afterwards nothing may depend on the hub reading our output.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.dup2(log.fileno(), sys.stderr.fileno())
        reason, code = launch.supervise(log)
        launch.cleanup(log, reason, code)
        launch.audit_end(log, reason, code)
    return 0 if reason in ("stopped", "expired") else (code if code > 0 else 1)


if __name__ == "__main__":
    sys.exit(main())
