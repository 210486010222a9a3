"""The reconciler's pure rules: the closing path, expiry warnings, idle bubbles, its settings."""

from __future__ import annotations

import datetime as dt

import pytest
from traitlets import TraitError
from traitlets.config import Config

from bubble_manager import clock
from bubble_manager.lifecycle import CLOSURE_STEPS, ClosureView, Reconciler, next_closure_step, warning_due
from bubble_manager.lifecycle_hub import StrayServer, idle_servers, stray_servers
from bubble_manager.studies import State

UTC = dt.timezone.utc
ENDS = dt.date(2027, 1, 31)
EXPIRES = dt.datetime(2027, 2, 1, tzinfo=UTC)


def test_the_closing_path_runs_its_steps_in_order():
    view, state, seen = ClosureView(), State.active, []
    marks = {"stop-servers": {"servers_stopped": True}, "lock-workspaces": {"workspaces_locked": True},
             "snapshot": {"snapshot_number": 3}, "verify-snapshot": {"verified": True},
             "destroy-live-key": {"key_destroyed": True}, "remove-live-data": {"live_removed": True}}
    while (step := next_closure_step(view, state)) is not None:
        seen.append(step)
        if step == "expire":
            state = State.expired
        elif step == "archive":
            state = State.archived
        else:
            view = ClosureView(**{**view.__dict__, **marks[step]})
    assert tuple(seen) == CLOSURE_STEPS


def test_a_revoked_study_skips_expire_and_a_purged_one_has_nothing_left():
    assert next_closure_step(ClosureView(servers_stopped=True), State.revoked) == "lock-workspaces"
    assert next_closure_step(ClosureView(), State.purged) is None


@pytest.mark.parametrize("view", [ClosureView(servers_stopped=True, workspaces_locked=True),
                                  ClosureView(servers_stopped=True, workspaces_locked=True, snapshot_number=2)])
def test_live_data_is_never_next_before_a_verified_snapshot(view):
    for state in (State.expired, State.revoked, State.archived):
        assert next_closure_step(view, state) in ("snapshot", "verify-snapshot")


@pytest.mark.parametrize("now, sent, expected", [
    (EXPIRES - dt.timedelta(days=14, seconds=1), set(), None),
    (EXPIRES - dt.timedelta(days=14), set(), (14, (14,))),
    (EXPIRES - dt.timedelta(days=13, hours=20), {14}, None),
    (EXPIRES - dt.timedelta(days=2, hours=23), {14}, (3, (3,))),
    (EXPIRES - dt.timedelta(hours=5), {14, 3}, (1, (1,))),
    (EXPIRES - dt.timedelta(hours=5), set(), (1, (14, 3, 1))),      # the reconciler was down: one warning
    (EXPIRES - dt.timedelta(days=10), {3}, None),                   # never a larger threshold late
    (EXPIRES, set(), None),
])
def test_each_threshold_is_warned_once(now, sent, expected):
    due = warning_due("s", ENDS, now, [14, 3, 1], sent)
    assert (None if due is None else (due.days, due.thresholds)) == expected


def test_settings_refuse_nonsense_with_the_setting_named():
    config = Config()
    config.Reconciler.warning_days = [3, 0]
    with pytest.raises(TraitError, match="warning_days"):
        Reconciler(config=config)
    with pytest.raises(TraitError, match="lock_ttl_seconds"):
        Reconciler(lock_ttl_seconds=0)
    assert Reconciler(warning_days=[1, 14, 3, 3]).warning_days == [14, 3, 1]
    for name, trait in Reconciler.class_traits(config=True).items():
        assert trait.help, f"Reconciler.{name} has no help"


def server(last_activity: dt.datetime | None, **extra):
    return {"user": "alice", "study": "s", "ready": True, "pending": None, "started": clock.isoformat(EXPIRES),
            "last_activity": clock.isoformat(last_activity) if last_activity else None, **extra}


def test_idle_servers_follow_the_culler_rule():
    now = EXPIRES + dt.timedelta(hours=10)
    servers = [server(now - dt.timedelta(hours=5)), server(now - dt.timedelta(hours=1)),
               server(now - dt.timedelta(hours=9), pending="stop"), server(None),
               server(now - dt.timedelta(hours=6), ready=False)]
    idle = idle_servers(servers, now, 4 * 3600)
    assert [(i.user, i.idle_seconds) for i in idle] == [("alice", 5 * 3600), ("alice", 10 * 3600)]


def test_stray_servers_are_those_the_gate_would_refuse_now():
    def running(user: str, study: str, pending: str | None = None) -> dict:
        return {"user": user, "study": study, "pending": pending, "ready": pending is None}

    studies = {"live": ("active", frozenset({"alice", "bob"})), "over": ("archived", frozenset()),
               "later": ("approved", frozenset())}
    servers = [running("alice", "live"), running("carol", "live"), running("bob", "over"), running("bob", "later"),
               running("alice", "gone"), running("dave", "live", pending="spawn")]
    assert stray_servers(servers, studies) == [StrayServer("carol", "live", "not-member", "active"),
                                               StrayServer("bob", "over", "not-active", "archived"),
                                               StrayServer("bob", "later", "not-active", "approved"),
                                               StrayServer("alice", "gone", "unknown-study", None)]
