"""The launcher on its own (no hub): it enforces the study's end, stops gracefully on SIGTERM,
takes the sandbox down when it dies, and reports a failed start with its reason."""

from __future__ import annotations

import datetime as dt
import os
import signal
import time
from pathlib import Path

import pytest

from bubble_manager import clock
from bubble_manager.runtime import bubbles, cgroups
from bubble_manager.runtime.launcher import process_alive, read_state
from bubble_manager.runtime.settings import LocalBubbles
from bubble_manager.runtime.spec import StudyPaths
from tests.hubfixture import ALICE, BOB, HubFixture

pytestmark = pytest.mark.bwrap

TRAP_TERM = ("/bin/sh", "-c", "trap 'echo stopped gracefully > /home/jovyan/work/goodbye; exit 0' TERM; "
                              "while true; do sleep 0.1; done")


def prepare(hub: HubFixture, member: str, command: tuple[str, ...], **plan_changes):
    local = LocalBubbles(config=hub.context.settings.config)
    prepared = bubbles.prepare_bubble(hub.context, local, member, "alpha", command=command,
                                      run_suffix=bubbles.exec_run_suffix())
    prepared.plan.update(plan_changes)
    return local, prepared


def wait_until(predicate, timeout: float = 30) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def sandbox_pids(state: dict) -> set[int]:
    return cgroups.BubbleCgroup.from_dict(state["cgroup"]).pids()


def test_the_launcher_stops_the_bubble_at_the_study_s_end(hub_home: HubFixture):
    expires = clock.utcnow() + dt.timedelta(seconds=3)
    local, prepared = prepare(hub_home, ALICE, ("sleep", "600"), expires_at=expires.isoformat())
    process, status = bubbles.start_launcher(local, prepared)
    assert status["status"] == "running", status
    assert "cgroup v1" in status["limits"] or "cgroup v2" in status["limits"]
    assert sandbox_pids(status), "the sandbox runs inside its cgroup"
    assert process.wait(timeout=30) == 0
    state = read_state(prepared.run.state)
    assert (state["status"], state["reason"]) == ("ended", "expired")
    assert dt.datetime.fromisoformat(state["ended_at"]) >= expires
    assert not Path(status["cgroup"]["paths"][0]).exists(), "the cgroup is removed"
    assert not process_alive(status["bwrap_pid"], None)
    assert "limits in force" in prepared.run.log.read_text()
    expired = hub_home.context.audit.entries(action="bubble.expired", study="alpha")
    assert expired and expired[-1].detail["member"] == ALICE and expired[-1].detail["by"] == "launcher"


def test_sigterm_stops_the_bubble_gracefully(hub_home: HubFixture):
    goodbye = StudyPaths(hub_home.home, "alpha").workspace(BOB) / "goodbye"
    goodbye.unlink(missing_ok=True)
    local, prepared = prepare(hub_home, BOB, TRAP_TERM)
    process, status = bubbles.start_launcher(local, prepared)
    assert status["status"] == "running", status
    assert wait_until(lambda: len(sandbox_pids(status)) >= 3)
    os.kill(process.pid, signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert goodbye.read_text() == "stopped gracefully\n"
    assert read_state(prepared.run.state)["reason"] == "stopped"
    assert not Path(status["cgroup"]["paths"][0]).exists()


def test_a_killed_launcher_takes_its_sandbox_down(hub_home: HubFixture):
    local, prepared = prepare(hub_home, ALICE, ("sleep", "600"))
    process, status = bubbles.start_launcher(local, prepared)
    group = cgroups.BubbleCgroup.from_dict(status["cgroup"])
    assert wait_until(lambda: len(group.pids()) >= 3)
    process.kill()
    process.wait()
    try:
        assert wait_until(lambda: not group.pids(), timeout=10), f"sandbox outlived its launcher: {group.pids()}"
    finally:
        group.kill_all()
        group.remove()


def test_a_start_that_cannot_set_limits_fails_with_its_reason(hub_home: HubFixture):
    local, prepared = prepare(hub_home, ALICE, ("true",))
    prepared.plan["cgroup"] = {**prepared.plan["cgroup"], "root": "/nonexistent/cgroup"}
    process, status = bubbles.start_launcher(local, prepared)
    assert process.wait(timeout=30) == 1
    assert status["status"] == "failed" and "/nonexistent/cgroup" in status["error"]
