"""A study's life driven by the clock, in-process, with a recording stand-in for the hub API:
activation, warnings, closing, purge, revocation, extensions, dry runs, the CLI, idle bubbles.
(tests/lifecycle/test_hub.py runs the same life against a real hub.)"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import select

from bubble_manager.airlock.quarantine import study_quarantine
from bubble_manager.archive.keys import load_study_keys
from bubble_manager.archive.snapshot import verify_envelope
from bubble_manager.cli import main
from bubble_manager.lifecycle_store import DONE, LifecycleWarningRow, journal
from bubble_manager.operations import StudyOperations
from bubble_manager.runtime.spec import StudyPaths
from bubble_manager.store import ArchiveRow
from bubble_manager.studies import Actor, State

from .conftest import CAROL, END, SAM, START, TOM, approved_study, at, audit, steps_of, tick

ACTIONS_OF_A_LIFE = ["lifecycle.activate", "study.expiry_warning", "lifecycle.closure-started",
                     "lifecycle.stop-servers", "lifecycle.expire", "lifecycle.lock-workspaces", "lifecycle.snapshot",
                     "lifecycle.verify-snapshot", "lifecycle.archive", "lifecycle.destroy-live-key",
                     "lifecycle.remove-live-data", "lifecycle.purge"]


def archives(context, slug: str) -> list[ArchiveRow]:
    with context.store.transaction() as session:
        return list(session.scalars(select(ArchiveRow).where(ArchiveRow.slug == slug).order_by(ArchiveRow.number)))


def test_a_study_lives_its_life_on_the_clock(ctx, hub, frozen_clock):
    frozen_clock.set(at(dt.date(2026, 11, 23)))
    approved_study(ctx, "diab")
    assert tick(ctx, hub).steps == []                                    # approved, not started yet
    frozen_clock.set(at(START, 0))
    assert steps_of(tick(ctx, hub)) == [("diab", "activate")]
    paths = StudyPaths(ctx.home, "diab")
    assert StudyOperations(ctx).get("diab").state is State.active
    assert paths.extract.exists() and paths.shared.is_dir() and paths.workspace("alice").is_dir()
    (paths.workspace("alice") / "analysis.py").write_text("print('work')\n")
    quarantined = study_quarantine(ctx.home, "diab") / "1"
    quarantined.mkdir(parents=True)
    (quarantined / "table.csv").write_text("n\n12\n")                   # an output waiting in the airlock
    hub.run("alice", "diab")
    warned = []
    for moment in [at(END - dt.timedelta(days=14), 1), at(END - dt.timedelta(days=13)), at(END - dt.timedelta(days=2), 1),
                   at(END - dt.timedelta(days=2), 2), at(END, 1), at(END, 23)]:
        frozen_clock.set(moment)
        warned += [s["detail"]["days"] for s in tick(ctx, hub).steps if s["step"] == "warn"]
    assert warned == [14, 3, 1]
    assert [d["days"] for _, d in audit(ctx, "diab", "study.expiry_warning")] == [14, 3, 1]
    assert hub.stopped == []                                             # still running on its last day
    frozen_clock.set(at(END + dt.timedelta(days=1), 0))
    report = tick(ctx, hub)
    assert steps_of(report, DONE) == [("diab", s) for s in ("stop-servers", "expire", "lock-workspaces", "snapshot",
                                                            "verify-snapshot", "archive", "destroy-live-key",
                                                            "remove-live-data")]
    assert hub.stopped == [("alice", "diab")] and hub.running == []
    study = StudyOperations(ctx).get("diab")
    assert study.state is State.archived and study.retention_until == study.closed_on + dt.timedelta(days=3650)
    (kept,) = archives(ctx, "diab")
    assert verify_envelope(ctx.verifier(), Path(kept.path))["sha256"] == kept.sha256
    assert not paths.root.exists()                                      # live data removed
    assert not study_quarantine(ctx.home, "diab").exists()              # and the airlock's copies
    assert audit(ctx, "diab", "lifecycle.remove-live-data")[-1][1]["quarantine"] is True
    assert load_study_keys(ctx.home, "diab").live_key_destroyed
    assert tick(ctx, hub).steps == []                                    # idempotent: nothing left to do
    frozen_clock.set(at(study.retention_until, 23))
    assert tick(ctx, hub).steps == []                                    # kept through its last day
    frozen_clock.set(at(study.retention_until + dt.timedelta(days=1), 0))
    assert steps_of(tick(ctx, hub)) == [("diab", "purge")]
    assert StudyOperations(ctx).get("diab").state is State.purged
    assert (ctx.home / "archives" / "diab" / "deletion-certificate.json").exists()
    assert not (ctx.home / "archives" / "diab" / "diab-1.tar.zst.age").exists()
    actions = [action for action, _ in audit(ctx, "diab")]
    for expected in ACTIONS_OF_A_LIFE + ["study.activated", "study.expired", "archive.snapshot", "study.archived",
                                         "keys.live-destroyed", "study.purged", "archive.purged"]:
        assert expected in actions, expected
    for row in journal(ctx.store, "diab"):
        assert row.outcome == DONE and row.finished_at >= row.started_at
    assert ctx.audit.verify(ctx.verifier()).ok


def test_revocation_closes_at_once_without_waiting_for_the_end(ctx, hub, frozen_clock):
    frozen_clock.set(at(START))
    approved_study(ctx, "rev", starts=START)
    tick(ctx, hub)
    hub.run("bob", "rev")
    frozen_clock.advance(hours=2)
    StudyOperations(ctx).revoke(SAM, "rev", "consent withdrawn for the whole cohort")
    report = tick(ctx, hub)
    assert ("rev", "expire") not in steps_of(report)
    assert ("rev", "remove-live-data") in steps_of(report, DONE)
    assert hub.running == [] and StudyOperations(ctx).get("rev").state is State.archived
    assert audit(ctx, "rev", "lifecycle.closure-started")[0][1] == {"reason": "revoked"}


def test_a_study_revoked_before_activation_is_archived_without_a_snapshot(ctx, hub, frozen_clock):
    frozen_clock.set(at(dt.date(2026, 11, 23)))
    approved_study(ctx, "early")
    StudyOperations(ctx).revoke(SAM, "early", "the protocol changed")
    report = tick(ctx, hub)
    assert steps_of(report, "failed") == []
    assert StudyOperations(ctx).get("early").state is State.archived and archives(ctx, "early") == []
    snapshot_step = [s for s in report.steps if s["step"] == "snapshot"][0]
    assert snapshot_step["detail"]["archive"] is None


def extend(context, slug: str, until: dt.date) -> None:
    operations = StudyOperations(context)
    operations.extend(Actor("carol", frozenset({"researcher"})), slug, until)
    operations.approve(TOM, slug, "granted")


def test_an_extension_moves_the_date_and_rearms_the_warnings(ctx, hub, frozen_clock):
    frozen_clock.set(at(START))
    approved_study(ctx, "ext")
    tick(ctx, hub)
    frozen_clock.set(at(END - dt.timedelta(days=2)))
    assert [s["detail"]["days"] for s in tick(ctx, hub).steps] == [3]
    new_end = END + dt.timedelta(days=60)
    extend(ctx, "ext", new_end)
    frozen_clock.set(at(END + dt.timedelta(days=1)))
    assert tick(ctx, hub).steps == []                                    # not expired: the date moved
    frozen_clock.set(at(new_end - dt.timedelta(days=13)))
    (step,) = tick(ctx, hub).steps
    assert step["detail"] == {"days": 14, "ends": str(new_end), "thresholds": [14], "emailed": 0}
    with ctx.store.transaction() as session:
        rows = session.scalars(select(LifecycleWarningRow).where(LifecycleWarningRow.study == "ext")).all()
        assert sorted((r.ends, r.threshold_days) for r in rows) == [(END, 3), (END, 14), (new_end, 14)]


def test_hub_down_at_expiry_marks_nothing_done_then_an_extension_cancels_the_closing(ctx, hub, frozen_clock):
    frozen_clock.set(at(START))
    approved_study(ctx, "late")
    tick(ctx, hub)
    hub.run("alice", "late")
    hub.down = True
    frozen_clock.set(at(END + dt.timedelta(days=1)))
    for _ in range(2):
        report = tick(ctx, hub)
        assert steps_of(report, "failed") == [("late", "stop-servers")]
        assert "unreachable" in report.failed[0]["detail"]["error"]
    assert StudyOperations(ctx).get("late").state is State.active       # nothing marked done
    assert StudyPaths(ctx.home, "late").extract.exists() and archives(ctx, "late") == []
    alerts = audit(ctx, "late", "lifecycle.alert")
    assert len(alerts) == 1 and alerts[0][1]["step"] == "stop-servers"  # one alert, not one per tick
    extend(ctx, "late", END + dt.timedelta(days=30))
    hub.down = False
    report = tick(ctx, hub)
    assert steps_of(report) == [("late", "cancel-closure")]
    (cancelled,) = audit(ctx, "late", "lifecycle.closure-cancelled")
    assert cancelled[1]["reason"] == "extended" and cancelled[1]["attempts_cancelled"] == 2
    assert hub.running and StudyOperations(ctx).get("late").state is State.active
    frozen_clock.set(at(END + dt.timedelta(days=31)))
    report = tick(ctx, hub)
    assert ("late", "remove-live-data") in steps_of(report, DONE) and hub.running == []


def test_a_dry_run_lists_what_is_due_and_changes_nothing(ctx, hub, frozen_clock):
    frozen_clock.set(at(START))
    approved_study(ctx, "dry")
    entries, rows = ctx.audit.count(), journal(ctx.store)
    report = tick(ctx, hub, dry_run=True)
    assert report.dry_run and {"study": "dry", "action": "activate"} in report.planned
    assert ctx.audit.count() == entries and journal(ctx.store) == rows
    assert StudyOperations(ctx).get("dry").state is State.approved


def test_the_cli_runs_one_tick_and_reports_it(ctx, hub, frozen_clock, capsys, monkeypatch):
    monkeypatch.delenv("JUPYTERHUB_API_URL", raising=False)
    frozen_clock.set(at(START))
    approved_study(ctx, "cli")
    home = ["--home", str(ctx.home), "--json"]
    assert main([*home, "reconcile", "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["planned"][0] == {"study": "cli", "action": "activate"}
    assert main([*home, "reconcile", "--once"]) == 0
    assert [s["step"] for s in json.loads(capsys.readouterr().out)["steps"]] == ["activate"]
    frozen_clock.set(at(END + dt.timedelta(days=1)))
    assert main(["--home", str(ctx.home), "reconcile", "--once"]) == 1  # no hub API: the closing waits
    out = capsys.readouterr().out
    assert "failed stop-servers" in out and "--hub-api-url" in out
    monkeypatch.delenv("JUPYTERHUB_API_TOKEN", raising=False)
    assert main(["--home", str(ctx.home), "reconcile", "--once", "--hub-api-url", "http://127.0.0.1:9/hub/api"]) == 2
    assert "JUPYTERHUB_API_TOKEN" in capsys.readouterr().err


def test_idle_bubbles_are_stopped_and_busy_ones_kept(ctx, hub, frozen_clock):
    frozen_clock.set(at(START))
    approved_study(ctx, "idle")
    tick(ctx, hub)
    hub.run("alice", "idle", last_activity=at(START) - dt.timedelta(hours=5))
    hub.run("bob", "idle", last_activity=at(START) - dt.timedelta(minutes=10))
    report = tick(ctx, hub, idle_timeout_seconds=4 * 3600)
    assert steps_of(report) == [("idle", "idle-stop")] and hub.stopped == [("alice", "idle")]
    assert report.steps[0]["detail"] == {"user": "alice", "idle_minutes": 300, "limit_minutes": 240}
    assert [u for u, _ in (("bob", 0),)] == [s["user"] for s in hub.running]
    assert tick(ctx, hub, idle_timeout_seconds=0).steps == []


def test_bubbles_the_gate_would_now_refuse_are_stopped(ctx, hub, frozen_clock):
    frozen_clock.set(at(START))
    approved_study(ctx, "team")
    tick(ctx, hub)
    hub.run("alice", "team")
    hub.run("bob", "team")
    hub.run("alice", "no-such-study")
    report = tick(ctx, hub)
    assert steps_of(report, DONE) == [(None, "stop-stray")] and hub.stopped == [("alice", "no-such-study")]
    assert report.steps[0]["detail"] == {"user": "alice", "server": "no-such-study", "rule": "unknown-study",
                                         "state": None}
    operations = StudyOperations(ctx)
    operations.change_members(CAROL, "team", remove=("bob",))
    assert tick(ctx, hub).steps == []                                    # proposed, not approved: bob is a member
    operations.approve(TOM, "team", "bob left the project")
    assert {"study": "team", "action": "stop-stray", "user": "bob", "rule": "not-member"} in tick(
        ctx, hub, dry_run=True).planned
    report = tick(ctx, hub)
    assert steps_of(report, DONE) == [("team", "stop-stray")] and hub.stopped[-1] == ("bob", "team")
    assert [s["user"] for s in hub.running] == ["alice"]
    assert audit(ctx, "team", "lifecycle.stop-stray") == [
        ("lifecycle.stop-stray", {"user": "bob", "server": "team", "rule": "not-member", "state": "active"})]
    assert tick(ctx, hub).steps == []


def test_warnings_and_activation_are_emailed_to_members_and_approving_stewards(home, hub, frozen_clock):
    from bubble_manager.config import load_settings
    from bubble_manager.operations import Context

    from ..service.conftest import SmtpSink

    sink = SmtpSink()
    sink.start()
    try:
        with open(home / "bubble_manager_config.py", "a") as config:
            config.write(f"c.ServiceSettings.smtp_host = '127.0.0.1'\nc.ServiceSettings.smtp_port = {sink.port}\n"
                         "c.ServiceSettings.email_domain = 'chu.example'\n")
        context = Context.open(load_settings(home))
        frozen_clock.set(at(START))
        approved_study(context, "mail")
        assert tick(context, hub).steps[0]["detail"]["emailed"] == 3
        frozen_clock.set(at(END - dt.timedelta(days=2)))
        (step,) = tick(context, hub).steps
        assert step["detail"]["emailed"] == 4
        subject = "Study mail ends in 3 day(s)"
        mails = sink.wait_for(lambda m: m["Subject"] == subject and "sam@" in m["To"])
        participants = sink.wait_for(lambda m: m["Subject"] == subject and "sam@" not in m["To"])
        assert len(mails) == 1 and "you approved it" in mails[0].get_payload(decode=True).decode()
        assert set(participants[0]["To"].split(", ")) == {"carol@chu.example", "alice@chu.example",
                                                          "bob@chu.example"}
        assert sink.wait_for(lambda m: m["Subject"] == "Study mail is active: its bubble can be opened")
        context.close()
    finally:
        sink.stop()
