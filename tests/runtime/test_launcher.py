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


def test_an_extension_approved_since_the_start_moves_the_launcher_s_deadline(hub_home: HubFixture):
    # The bubble started when its study was to end in 2 s; the store now says the study ends months
    # later, as it does after an approved extension: the bubble keeps running, and says why.
    soon = clock.utcnow() + dt.timedelta(seconds=2)
    local, prepared = prepare(hub_home, ALICE, ("sleep", "600"), expires_at=soon.isoformat(),
                              study_expires_at=soon.isoformat())
    process, status = bubbles.start_launcher(local, prepared)
    assert status["status"] == "running", status
    try:
        assert wait_until(lambda: "the study was extended" in prepared.run.log.read_text(), timeout=30)
        time.sleep(0.5)
        assert process.poll() is None and sandbox_pids(status), "the bubble still runs after the old end"
        new_end = prepared.spec.expires_at.isoformat()
        assert read_state(prepared.run.state)["expires_at"] == new_end
        extended = hub_home.context.audit.entries(action="bubble.extended", study="alpha")
        assert extended and extended[-1].detail == {"member": ALICE, "uid": prepared.ids.uid, "by": "launcher",
                                                    "from": soon.isoformat(), "expires_at": new_end}
    finally:
        os.kill(process.pid, signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    assert read_state(prepared.run.state)["reason"] == "stopped"


def test_a_store_the_launcher_cannot_read_at_the_deadline_ends_the_bubble(hub_home: HubFixture, tmp_path: Path):
    soon = clock.utcnow() + dt.timedelta(seconds=2)
    local, prepared = prepare(hub_home, ALICE, ("sleep", "600"), expires_at=soon.isoformat(),
                              study_expires_at=soon.isoformat())
    prepared.plan["audit"] = {**prepared.plan["audit"], "db_url": f"sqlite:///{tmp_path / 'missing' / 'store.db'}"}
    process, status = bubbles.start_launcher(local, prepared)
    assert status["status"] == "running", status
    assert process.wait(timeout=30) == 0
    assert read_state(prepared.run.state)["reason"] == "expired"
    assert "could not look for an extension" in prepared.run.log.read_text()


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
