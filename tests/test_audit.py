"""The audit chain: appends, tampering of every kind detected, checkpoints, concurrency."""

from __future__ import annotations

import json
import threading

import pytest
from sqlalchemy import text

from bubble_manager.audit import FileCheckpointSink, GENESIS, entry_hash
from bubble_manager.config import load_settings
from bubble_manager.operations import Context


def fill(context, count=10):
    for i in range(count):
        context.audit.record(actor=f"user{i % 3}", action="test.event", study="s1", detail={"i": i})


def verify(context):
    return context.audit.verify(context.verifier())


def execute(context, sql, **params):
    with context.store.engine.begin() as connection:
        connection.execute(text(sql), params)


def test_intact_chain_verifies(context):
    fill(context)
    report = verify(context)
    assert report.ok, report.problems
    assert report.entries == 10 and report.checkpoints == 10 and report.last_checkpoint_seq == 10
    first = context.audit.entries(limit=1)[0]
    assert first.prev_hash == GENESIS
    assert first.hash == entry_hash(1, first.at, first.actor, first.action, first.study, first.detail, GENESIS)


def test_one_byte_changed_in_one_entry(context):
    fill(context)
    execute(context, "UPDATE audit_entries SET detail = :d WHERE seq = 4", d=json.dumps({"i": 9}))
    report = verify(context)
    assert not report.ok and report.first_broken_seq == 4
    assert "entry 4 was altered" in report.problems[0]


def test_actor_changed(context):
    fill(context)
    execute(context, "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 7")
    assert verify(context).first_broken_seq == 7


def test_entry_deleted(context):
    fill(context)
    execute(context, "DELETE FROM audit_entries WHERE seq = 5")
    report = verify(context)
    assert not report.ok and report.first_broken_seq == 5
    assert "entry 5 is missing" in report.problems[0]


def test_two_entries_swapped(context):
    fill(context)
    execute(context, "UPDATE audit_entries SET seq = -3 WHERE seq = 3")
    execute(context, "UPDATE audit_entries SET seq = 3 WHERE seq = 6")
    execute(context, "UPDATE audit_entries SET seq = 6 WHERE seq = -3")
    report = verify(context)
    assert not report.ok and report.first_broken_seq == 3


def test_rehash_after_an_edit_is_caught_by_the_checkpoints(context):
    fill(context)
    with context.store.engine.begin() as connection:
        rows = connection.execute(text("SELECT seq, at, actor, action, study, detail FROM audit_entries ORDER BY seq")).all()
        prev = GENESIS
        for row in rows:
            detail = json.loads(row.detail)
            if row.seq == 6:
                detail = {"i": 999}
            digest = entry_hash(row.seq, row.at, row.actor, row.action, row.study, detail, prev)
            connection.execute(text("UPDATE audit_entries SET detail = :d, prev_hash = :p, hash = :h WHERE seq = :s"),
                               {"d": json.dumps(detail, separators=(",", ":")), "p": "x" * 63 + str(row.seq % 10),
                                "h": "y" * 63 + str(row.seq % 10), "s": row.seq})
            connection.execute(text("UPDATE audit_entries SET prev_hash = :p, hash = :h WHERE seq = :s"),
                               {"p": prev, "h": digest, "s": row.seq})
            prev = digest
    report = verify(context)
    assert not report.ok
    assert report.first_broken_seq == 6
    assert "rewritten" in report.problems[0]


def test_tail_cut_before_last_checkpoint(context):
    fill(context)
    execute(context, "DELETE FROM audit_entries WHERE seq > 7")
    report = verify(context)
    assert not report.ok and report.first_broken_seq == 8
    assert "tail cut" in report.problems[0]


def test_tail_cut_after_last_checkpoint_is_not_visible_and_documented(bm_home, db_url):
    settings = load_settings(bm_home, db_url=db_url, audit_checkpoint_interval=3600.0)
    context = Context.open(settings)
    try:
        context.audit.record(actor="a", action="first")  # checkpointed: the first batch always is
        context.audit.record(actor="a", action="second")  # within the interval: not yet checkpointed
        report = verify(context)
        assert report.ok and report.last_checkpoint_seq == 1
        assert "after the last checkpoint" in report.notes[0]
        execute(context, "DELETE FROM audit_entries WHERE seq = 2")
        assert verify(context).ok, "a cut after the last checkpoint cannot be seen (documented limit)"
    finally:
        context.close()


def test_forged_checkpoint_refused(context, tmp_path):
    fill(context, 3)
    records = FileCheckpointSink(context.settings.audit_checkpoint_path).read()
    records[-1]["hash"] = "0" * 64
    report = context.audit.verify(context.verifier(), records)
    assert not report.ok and "no valid hub signature" in report.problems[0]


def test_missing_checkpoints_fail(context, tmp_path):
    fill(context, 2)
    report = context.audit.verify(context.verifier(), [])
    assert not report.ok and "no signed checkpoint" in report.problems[0]


def test_concurrent_writers_never_fork_the_chain(context):
    errors = []

    def writer(n):
        try:
            for i in range(15):
                context.audit.record(actor=f"w{n}", action="concurrent", detail={"i": i})
        except Exception as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    report = verify(context)
    assert report.ok, report.problems
    assert report.entries == 60
    assert report.last_checkpoint_seq == 60, "every committed batch is checkpointed, whichever thread wrote it"


def test_a_deferred_batch_is_checkpointed_when_the_interval_is_up_without_another_append(bm_home, db_url):
    import time

    context = Context.open(load_settings(bm_home, db_url=db_url, audit_checkpoint_interval=0.5))
    try:
        context.audit.record(actor="a", action="first")
        context.audit.record(actor="a", action="second")
        context.audit.record(actor="a", action="third")
        sink = FileCheckpointSink(context.settings.audit_checkpoint_path)
        assert [r["seq"] for r in sink.read()] == [1], "within the interval: deferred"
        deadline = time.monotonic() + 10
        while len(sink.read()) < 2 and time.monotonic() < deadline:  # the sink only: no store transaction
            time.sleep(0.05)
        assert [r["seq"] for r in sink.read()] == [1, 3]
        report = verify(context)
        assert report.ok and report.last_checkpoint_seq == 3 and report.checkpoints == 2
    finally:
        context.close()


def test_closing_writes_the_checkpoint_a_deferred_batch_waits_for(bm_home, db_url):
    settings = load_settings(bm_home, db_url=db_url, audit_checkpoint_interval=3600.0)
    context = Context.open(settings)
    context.audit.record(actor="a", action="first")
    context.audit.record(actor="a", action="second")
    context.close()
    reopened = Context.open(settings)
    try:
        report = verify(reopened)
        assert report.ok and report.last_checkpoint_seq == 2 and not report.notes
        execute(reopened, "DELETE FROM audit_entries WHERE seq = 2")
        assert verify(reopened).first_broken_seq == 2, "the cut is now visible"
    finally:
        reopened.close()


def test_a_process_leaving_without_close_leaves_no_batch_unchecked(bm_home):
    import subprocess
    import sys

    # As a CLI command does: open a context, commit batches within the interval, exit.
    script = ("import sys\nfrom bubble_manager.config import load_settings\n"
              "from bubble_manager.operations import Context\n"
              "context = Context.open(load_settings(sys.argv[1], audit_checkpoint_interval=3600.0))\n"
              "for action in ('first', 'second', 'third'):\n"
              "    context.audit.record(actor='a', action=action)\n")
    result = subprocess.run([sys.executable, "-c", script, str(bm_home)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    records = FileCheckpointSink(bm_home / "audit" / "checkpoints.jsonl").read()
    assert [r["seq"] for r in records] == [1, 3]



def test_export_jsonl(context, tmp_path):
    fill(context, 4)
    out = tmp_path / "audit.jsonl"
    with out.open("w") as handle:
        assert context.audit.export_jsonl(handle) == 4
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["seq"] for line in lines] == [1, 2, 3, 4]
    assert set(lines[0]) == {"seq", "at", "actor", "action", "study", "detail", "prev_hash", "hash"}


def test_checkpoints_sent_to_syslog_verify_from_the_collected_lines(bm_home, capsys):
    from bubble_manager.audit import SyslogCheckpointSink
    from bubble_manager.cli import main

    class CollectedSyslog(SyslogCheckpointSink):
        """What syslog writes to a log file for our ident (journald's short format adds [pid])."""

        lines: list[str] = []

        def write(self, record):
            pid = "[4242]" if len(self.lines) % 2 else ""
            self.lines.append(f"Nov 23 09:00:00 hub bubble-manager-audit{pid}: checkpoint {json.dumps(record)}")

    (bm_home / "bubble_manager_config.py").write_text('c.BubbleManager.audit_sink = "syslog"\n')
    context = Context.open(load_settings(bm_home))
    sink = context.audit.sink = CollectedSyslog()
    try:
        fill(context, 4)
    finally:
        context.close()
    assert main(["--home", str(bm_home), "audit", "verify"]) == 2, "no checkpoints to read: an error, not a broken chain"
    assert "--checkpoints FILE" in capsys.readouterr().err
    collected = bm_home / "auth.log"
    collected.write_text("\n".join(["Nov 23 08:59:59 hub sshd[1]: unrelated line", *sink.lines]) + "\n")
    assert main(["--home", str(bm_home), "audit", "verify", "--checkpoints", str(collected)]) == 0
    assert "4 entries, 4 signed checkpoints" in capsys.readouterr().out
    damaged = sink.lines[2].replace("checkpoint {", "checkpoint {{")  # no longer JSON
    collected.write_text("\n".join([*sink.lines[:2], damaged, sink.lines[3]]) + "\n")
    assert main(["--home", str(bm_home), "audit", "verify", "--checkpoints", str(collected)]) == 1
    assert "checkpoint #3 is unreadable" in capsys.readouterr().out


def test_appends_rolled_back_then_an_explicit_checkpoint(context):
    fill(context, 2)
    with pytest.raises(RuntimeError):
        with context.store.transaction() as session:
            context.audit.append(session, actor="a", action="never-committed")
            raise RuntimeError("rolled back")
    assert context.audit.checkpoint() is None, "nothing new committed: no checkpoint, and no deadlock"
    context.audit.record(actor="a", action="third")
    report = verify(context)
    assert report.ok and report.entries == 3 and report.last_checkpoint_seq == 3
