"""Faults: a reconciler killed at every point of the closing path, killed -9 mid-snapshot, a full
disk under the archives, a snapshot that does not verify. Nothing is lost, nothing is doubled."""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from bubble_manager.archive.keys import decrypt_share, recover_archive_identity, study_share_files
from bubble_manager.archive.restore import restore
from bubble_manager.archive.snapshot import verify_envelope
from bubble_manager.lifecycle import CLOSURE_STEPS, next_closure_step
from bubble_manager.lifecycle_closing import CLOSURE_ACTIONS
from bubble_manager.lifecycle_store import DONE, INTERRUPTED, RUNNING, LifecycleClosureRow, begin_step, journal
from bubble_manager.lifecycle_steps import runner_holding_lock
from bubble_manager.operations import StudyOperations
from bubble_manager.runtime.spec import StudyPaths
from bubble_manager.store import ArchiveRow
from bubble_manager.studies import State

from ..service.conftest import SmtpSink
from .conftest import END, START, approved_study, at, audit, settings_of, steps_of, tick
from .test_lock_and_journal import dead_holder

REPOSITORY = Path(__file__).resolve().parents[2]


def archives(context, slug: str) -> list[ArchiveRow]:
    with context.store.transaction() as session:
        return list(session.scalars(select(ArchiveRow).where(ArchiveRow.slug == slug).order_by(ArchiveRow.number)))


def archive_files(context, slug: str) -> list[str]:
    folder = context.home / "archives" / slug
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".age")) if folder.exists() else []


def active_study_with_work(context, hub, frozen_clock, slug: str, *, work_bytes: int = 4096,
                           starts: dt.date = START, ends: dt.date = END) -> Path:
    frozen_clock.set(at(starts))
    approved_study(context, slug, starts=starts, ends=ends)
    assert steps_of(tick(context, hub)) == [(slug, "activate")]
    work = StudyPaths(context.home, slug).workspace("alice") / "results.bin"
    with open(work, "wb") as out:
        for _ in range(0, work_bytes, 1 << 20):
            out.write(os.urandom(min(1 << 20, work_bytes)))
    hub.run("alice", slug)
    return work


def assert_closed_once(context, slug: str, members_expected: int | None = None) -> None:
    study = StudyOperations(context).get(slug)
    assert study.state is State.archived
    (kept,) = archives(context, slug)                  # exactly one final snapshot, recorded
    assert archive_files(context, slug) == [f"{slug}-{kept.number}.tar.zst.age"]
    verify_envelope(context.verifier(), Path(kept.path))
    assert not StudyPaths(context.home, slug).root.exists()
    with context.store.transaction() as session:
        closure = session.get(LifecycleClosureRow, slug)
        assert closure.finished_at is not None and closure.snapshot_number == kept.number
    assert context.audit.verify(context.verifier()).ok


@pytest.mark.parametrize("acted", ["before-acting", "after-acting"])
@pytest.mark.parametrize("step", CLOSURE_STEPS)
def test_killed_at_any_step_the_next_run_finishes_without_loss_or_double(ctx, hub, frozen_clock, step, acted):
    active_study_with_work(ctx, hub, frozen_clock, "kill")
    frozen_clock.set(at(END + dt.timedelta(days=1)))
    with runner_holding_lock(ctx, settings_of(ctx), hub) as runner:
        runner.start_closure("kill", "expired")
        while (current := next_closure_step(*runner.closure("kill")[::2])) != step:
            assert runner.step_study("kill") == current
        dead = dead_holder()
        begin_step(ctx.store, "kill", step, dead)     # the killed reconciler had journaled the start
        if acted == "after-acting":                   # ... and acted, but died before journaling the end
            CLOSURE_ACTIONS[step](runner, "kill", runner.closure("kill")[1])
    report = tick(ctx, hub)
    assert report.interrupted == [{"study": "kill", "step": step, "holder": dead}]
    assert report.failed == []
    assert_closed_once(ctx, "kill")
    outcomes = [(r.step, r.outcome) for r in journal(ctx.store, "kill") if r.step in CLOSURE_STEPS]
    assert (step, INTERRUPTED) in outcomes and not [o for o in outcomes if o[1] == RUNNING]
    assert audit(ctx, "kill", "lifecycle.interrupted")[0][1]["step"] == step


def test_an_archive_renamed_but_not_recorded_is_adopted_not_doubled(ctx, hub, frozen_clock):
    active_study_with_work(ctx, hub, frozen_clock, "orphan")
    frozen_clock.set(at(END + dt.timedelta(days=1)))
    with runner_holding_lock(ctx, settings_of(ctx), hub) as runner:
        runner.start_closure("orphan", "expired")
        while runner.step_study("orphan") != "snapshot":
            pass
    with ctx.store.transaction() as session:            # as if killed between the rename and the commit
        session.execute(delete(ArchiveRow).where(ArchiveRow.slug == "orphan"))
        session.get(LifecycleClosureRow, "orphan").snapshot_number = None
    leftover = ctx.home / "archives" / "orphan" / ".orphan-2.tar.zst.age.0123456789ab.tmp"
    leftover.write_bytes(b"half an archive")           # and a temporary file of a second, killed snapshot
    tick(ctx, hub)
    assert not leftover.exists()
    assert_closed_once(ctx, "orphan")
    assert [d["number"] for _, d in audit(ctx, "orphan", "archive.adopted")] == [1]


def test_a_snapshot_that_does_not_verify_keeps_live_data_and_is_taken_again(ctx, hub, frozen_clock):
    work = active_study_with_work(ctx, hub, frozen_clock, "tamper")
    frozen_clock.set(at(END + dt.timedelta(days=1)))
    with runner_holding_lock(ctx, settings_of(ctx), hub) as runner:
        runner.start_closure("tamper", "expired")
        while runner.step_study("tamper") != "snapshot":
            pass
        (first,) = archives(ctx, "tamper")
        with open(first.path, "r+b") as archive:       # bit rot, or someone altered it
            archive.seek(200)
            byte = archive.read(1)
            archive.seek(200)
            archive.write(bytes([byte[0] ^ 1]))
        assert runner.step_study("tamper") is False
    assert work.exists()
    (alert,) = audit(ctx, "tamper", "lifecycle.alert")
    assert alert[1]["step"] == "verify-snapshot" and "does not verify" in alert[1]["error"]
    report = tick(ctx, hub)
    assert ("tamper", "snapshot") in steps_of(report, DONE) and report.failed == []
    assert [a.number for a in archives(ctx, "tamper")] == [1, 2]
    with ctx.store.transaction() as session:
        closure = session.get(LifecycleClosureRow, "tamper")
        assert closure.snapshot_number == 2 and closure.rejected_archives == [1]
    assert not StudyPaths(ctx.home, "tamper").root.exists()


@contextlib.contextmanager
def small_tmpfs(folder: Path, size: str = "1m"):
    folder.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700", "tmpfs", str(folder)],
                            capture_output=True, text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill the disk (needs root in a mount namespace that allows "
                    f"it): {result.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def test_a_full_disk_keeps_live_data_alerts_once_and_is_retried(ctx, hub, frozen_clock, home):
    sink = SmtpSink()
    sink.start()
    try:
        (home / "bubble_manager_config.py").write_text(
            (home / "bubble_manager_config.py").read_text()
            + f"c.ServiceSettings.smtp_host = '127.0.0.1'\nc.ServiceSettings.smtp_port = {sink.port}\n"
            "c.ServiceSettings.email_domain = 'chu.example'\nc.Reconciler.alert_addresses = ['ops@chu.example']\n")
        from bubble_manager.config import load_settings
        from bubble_manager.operations import Context

        context = Context.open(load_settings(home))
        work = active_study_with_work(context, hub, frozen_clock, "full", work_bytes=3 << 20)
        digest = hashlib.sha256(work.read_bytes()).hexdigest()
        frozen_clock.set(at(END + dt.timedelta(days=1)))
        with small_tmpfs(home / "archives"):
            for _ in range(2):
                report = tick(context, hub)
                assert steps_of(report, "failed") == [("full", "snapshot")]
                assert "No space left" in report.failed[0]["detail"]["error"]
            assert StudyOperations(context).get("full").state is State.expired
            assert hashlib.sha256(work.read_bytes()).hexdigest() == digest      # live data kept
            assert archives(context, "full") == [] and archive_files(context, "full") == []
            (alert,) = audit(context, "full", "lifecycle.alert")               # one alert, not one per tick
            assert alert[1]["step"] == "snapshot"
            mails = sink.wait_for(lambda m: m["Subject"] == "bubble-manager: step snapshot failed for study full")
            assert len(mails) == 1 and set(mails[0]["To"].split(", ")) == {"ops@chu.example", "admin@chu.example"}
        report = tick(context, hub)                                            # space again: retried
        assert report.failed == [] and ("full", "remove-live-data") in steps_of(report, DONE)
        assert_closed_once(context, "full")
        context.close()
    finally:
        sink.stop()


@pytest.mark.slow
def test_killed_by_sigkill_mid_snapshot_then_rerun_loses_nothing(ctx, hub, frozen_clock, home):
    """A real `bubble-manager reconcile --once` process, killed -9 while its snapshot is being written
    (seen in the journal), then run again: one archive, which restores to the same workspace bytes."""
    today = dt.datetime.now(dt.timezone.utc).date()
    work = active_study_with_work(ctx, hub, frozen_clock, "sigkill", work_bytes=160 << 20,
                                  starts=today - dt.timedelta(days=30), ends=today - dt.timedelta(days=1))
    digest = hashlib.sha256(work.read_bytes()).hexdigest()
    frozen_clock.set(dt.datetime.now(dt.timezone.utc))
    with runner_holding_lock(ctx, settings_of(ctx), hub) as runner:   # the hub is needed only for this step
        runner.start_closure("sigkill", "expired")
        assert runner.step_study("sigkill") == "stop-servers"
    command = [sys.executable, "-m", "bubble_manager.cli", "--home", str(home), "reconcile", "--once"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "BUBBLE_"))}
    process = subprocess.Popen(command, cwd=REPOSITORY, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    killed_during = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and process.poll() is None:
        running = [r.step for r in journal(ctx.store, "sigkill") if r.outcome == RUNNING]
        if running == ["snapshot"]:
            time.sleep(0.3)                                                  # well into the stream
            process.send_signal(signal.SIGKILL)
            killed_during = "snapshot"
            break
        time.sleep(0.01)
    process.wait(30)
    output = process.stdout.read().decode(errors="replace")
    process.stdout.close()
    assert killed_during == "snapshot", f"the snapshot was never seen running:\n{output}"
    assert StudyPaths(ctx.home, "sigkill").root.exists() and archives(ctx, "sigkill") == []
    rerun = subprocess.run(command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "resumed after an interrupted snapshot of sigkill" in rerun.stdout
    frozen_clock.set(dt.datetime.now(dt.timezone.utc))
    assert_closed_once(ctx, "sigkill")
    (kept,) = archives(ctx, "sigkill")
    custodians = home.parent / f"{home.name}-custodians"
    texts = [decrypt_share(Path(share["path"]), custodians / f"{share['custodian']}.key").to_text()
             for share in study_share_files(ctx.home, "sigkill")[:2]]
    identity = recover_archive_identity(ctx, "sigkill", texts, reason="test: the archive holds the work")
    restored = home.parent / "restored"
    restore(ctx, Path(kept.path), restored, [identity], reason="test")
    member_dir = StudyPaths(ctx.home, "sigkill").workspace("alice").name
    assert hashlib.sha256((restored / "workspaces" / member_dir / "results.bin").read_bytes()
                          ).hexdigest() == digest
