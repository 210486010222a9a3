"""The reconciler's lock and journal, on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys

from bubble_manager.lifecycle import reconcile
from bubble_manager.lifecycle_store import (DONE, INTERRUPTED, RUNNING, acquire_lock, begin_step, finish_step,
                                            holder_is_dead, journal, lock_holder, new_holder, release_lock,
                                            renew_lock)
from bubble_manager.lifecycle_steps import LockLost, runner_holding_lock
from bubble_manager.lifecycle import Reconciler

import pytest


def dead_holder() -> str:
    """The holder string of a process of this host that has exited."""
    code = "from bubble_manager.lifecycle_store import new_holder; print(new_holder())"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()


def test_one_holder_at_a_time_until_expiry(context, frozen_clock):
    first, second = new_holder(), new_holder()
    assert acquire_lock(context.store, first, 60).acquired
    refused = acquire_lock(context.store, second, 60)
    assert not refused.acquired and refused.holder == first
    assert acquire_lock(context.store, first, 60).acquired            # re-entrant for its holder
    frozen_clock.advance(seconds=59)
    assert renew_lock(context.store, first, 60)
    frozen_clock.advance(seconds=59)
    assert not acquire_lock(context.store, second, 60).acquired       # renewed: still held
    frozen_clock.advance(seconds=2)
    taken = acquire_lock(context.store, second, 60)
    assert taken.acquired and taken.took_over == first
    assert not renew_lock(context.store, first, 60)                   # the first one learns it lost it
    release_lock(context.store, first)                                # not its lock: nothing happens
    assert lock_holder(context.store)[0] == second
    release_lock(context.store, second)
    assert lock_holder(context.store) is None


def test_a_dead_holder_on_this_host_is_replaced_at_once(context, frozen_clock):
    dead = dead_holder()
    assert holder_is_dead(dead) and not holder_is_dead(new_holder())
    assert not holder_is_dead("other-host/1/1/abcd")
    assert acquire_lock(context.store, dead, 3600).acquired
    mine = new_holder()
    status = acquire_lock(context.store, mine, 60)
    assert status.acquired and status.took_over == dead


def test_a_second_reconciler_does_nothing_while_the_lock_is_held(context, frozen_clock):
    other = new_holder()
    acquire_lock(context.store, other, 600)
    entries = context.audit.count()
    report = reconcile(context, hub=None, settings=Reconciler())
    assert not report.acquired and report.lock_holder == other and "holds the lock" in report.notes[0]
    assert context.audit.count() == entries and journal(context.store) == []
    with pytest.raises(LockLost):
        with runner_holding_lock(context, Reconciler(), None):
            pass


def test_steps_are_journaled_before_and_after_and_killed_ones_become_interrupted(context, frozen_clock):
    dead = dead_holder()
    started = begin_step(context.store, None, "opt-outs", dead)
    row = journal(context.store)[0]
    assert (row.outcome, row.finished_at) == (RUNNING, None)
    frozen_clock.advance(minutes=1)
    report = reconcile(context, hub=None, settings=Reconciler(idle_timeout_seconds=0))
    assert report.interrupted == [{"study": None, "step": "opt-outs", "holder": dead}]
    row = journal(context.store)[0]
    assert row.id == started and row.outcome == INTERRUPTED and row.finished_at > row.started_at
    assert [e.action for e in context.audit.entries(action="lifecycle.interrupted")] == ["lifecycle.interrupted"]
    done = begin_step(context.store, None, "opt-outs", report.holder)
    with context.store.transaction() as session:
        finish_step(session, done, DONE, {"checked": 0})
    assert journal(context.store, step="opt-outs")[-1].detail == {"checked": 0}
    assert dt.timedelta(0) <= journal(context.store)[-1].finished_at - journal(context.store)[-1].started_at
