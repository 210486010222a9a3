"""The access report: pure over audit entries, then from a real audit log and through the CLI."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bubble_manager import cli
from bubble_manager.audit import AuditEntry
from bubble_manager.auth.report import access_report, build_report, format_report

NOW = dt.datetime(2026, 11, 23, 12, 0, tzinfo=dt.timezone.utc)


def entry(seq: int, hours_ago: float, actor: str, action: str, **detail) -> AuditEntry:
    at = (NOW - dt.timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return AuditEntry(seq, at, actor, action, None, detail, "0" * 64, "0" * 64)


ENTRIES = [
    entry(1, 50, "alice", "auth.login", groups=["researchers"]),
    entry(2, 40, "sam", "auth.login", groups=["stewards"]),
    entry(3, 30, "bob", "auth.login", groups=["researchers", "stewards"]),
    entry(4, 20, "nina", "auth.refused", reason="not-in-allowed-group"),
    entry(5, 10, "bob", "auth.access_reduced", reason="removed from stewards", lost=["stewards"],
          groups=["researchers"]),
    entry(6, 5, "alice", "auth.confirmed", groups=["researchers"], via="sweep"),
    entry(7, 2, "eve", "auth.login", groups=["researchers"]),
    entry(8, 1, "eve", "auth.access_revoked", reason="provider-refused-refresh", lost=["researchers"], groups=[]),
    entry(9, 1, "unknown", "auth.refused", reason="username-claim-missing"),
    entry(10, 1, "carol", "study.created"),
]


def test_report_rows_roles_and_staleness():
    report = build_report(ENTRIES, now=NOW, stale_after=dt.timedelta(hours=24))
    people = {p["name"]: p for p in report["people"]}
    assert sorted(people) == ["alice", "bob", "eve", "nina", "sam"]       # no "unknown", no non-auth actions
    assert people["alice"]["roles"] == ["researcher"] and people["alice"]["last_login"].startswith("2026-11-21")
    assert people["alice"]["last_confirmed"].startswith("2026-11-23T07") and not people["alice"]["stale"]
    assert people["sam"]["stale"] is True                                  # confirmed 40 h ago
    assert people["bob"]["roles"] == ["researcher"] and people["bob"]["last_change"]["lost"] == ["stewards"]
    assert people["eve"]["status"] == "revoked" and people["eve"]["roles"] == []
    assert people["nina"]["status"] == "never-admitted" and people["nina"]["last_refusal"]["reason"] == "not-in-allowed-group"
    assert report["roles"] == {"researcher": ["alice", "bob"], "steward": ["sam"], "admin": []}
    assert report["stale"] == ["sam"]
    text = format_report(report)
    assert "STALE" in text and "revoked: provider-refused-refresh" in text and "refused: not-in-allowed-group" in text


def test_empty_report():
    report = build_report([], now=NOW)
    assert report["people"] == [] and report["stale"] == []
    assert "nobody has signed in" in format_report(report)


def record_entries(context) -> None:
    context.audit.record(actor="alice@example.org", action="auth.login", detail={"groups": ["researchers"]})
    context.audit.record(actor="sam@example.org", action="auth.login", detail={"groups": ["stewards", "researchers"]})
    context.audit.record(actor="carol", action="study.created", detail={})


def test_report_from_a_real_audit_log(context):
    record_entries(context)
    report = access_report(context)
    assert [p["name"] for p in report["people"]] == ["alice@example.org", "sam@example.org"]
    assert report["roles"]["steward"] == ["sam@example.org"]
    assert report["roles"]["researcher"] == ["alice@example.org", "sam@example.org"]
    json.dumps(report)                                    # JSON-ready for the panel


@pytest.fixture
def with_access_commands(monkeypatch):
    assert "bubble_manager.auth.commands" in cli.SUBSYSTEM_COMMANDS  # registered by the CLI itself


def test_cli_access_report(sqlite_context, bm_home, with_access_commands, capsys):
    record_entries(sqlite_context)
    assert cli.main(["--home", str(bm_home), "--json", "access", "report"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["roles"]["steward"] == ["sam@example.org"]
    assert cli.main(["--home", str(bm_home), "access", "report"]) == 0
    assert "alice@example.org" in capsys.readouterr().out


def test_cli_access_report_exits_1_when_someone_is_stale(sqlite_context, bm_home, with_access_commands, capsys,
                                                         frozen_clock):
    record_entries(sqlite_context)
    frozen_clock.advance(hours=30)
    assert cli.main(["--home", str(bm_home), "access", "report", "--stale-hours", "24"]) == 1
    assert "STALE" in capsys.readouterr().out


def test_cli_access_report_refuses_a_bad_threshold(bm_home, with_access_commands, capsys):
    assert cli.main(["--home", str(bm_home), "access", "report", "--stale-hours", "0"]) == 2
    assert "--stale-hours must be a positive number" in capsys.readouterr().err
