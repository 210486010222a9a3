"""The `bubble-manager` command: study lifecycle, refusals, audit commands, exit codes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from bubble_manager.cli import main

from .test_study_request import LOCAL_EXAMPLE


@pytest.fixture
def cli(activatable_home, capsys, frozen_clock):
    bm_home = activatable_home

    def run(*args, expect=0):
        code = main(["--home", str(bm_home), *args])
        out, err = capsys.readouterr()
        assert code == expect, f"exit {code}, expected {expect}\nstdout: {out}\nstderr: {err}"
        return out, err
    return run


@pytest.fixture
def request_file(tmp_path):
    path = tmp_path / "request.yaml"
    path.write_text(LOCAL_EXAMPLE.read_text())
    return path


def test_whole_lifecycle_from_the_cli(cli, request_file, frozen_clock):
    out, _ = cli("studies", "request", "--file", str(request_file), "--actor", "carol")
    assert "created as a draft by carol" in out
    cli("studies", "submit", "t2d-statins", "--actor", "carol")
    out, _ = cli("studies", "approve", "t2d-statins", "--actor", "sam", "--comment", "sound protocol")
    assert "now approved" in out
    import datetime as dt
    frozen_clock.set(dt.datetime(2026, 12, 1, 8, 0, tzinfo=dt.timezone.utc))
    cli("studies", "activate", "t2d-statins", "--actor", "admin")
    out, _ = cli("--json", "studies", "show", "t2d-statins")
    shown = json.loads(out)
    assert shown["state"] == "active" and shown["requester"] == "carol" and shown["days_left"] == 181
    cli("studies", "extend", "t2d-statins", "--until", "2027-07-31", "--actor", "alice")
    cli("studies", "approve", "t2d-statins", "--actor", "sam")
    out, _ = cli("--json", "studies", "list")
    assert json.loads(out)[0]["ends"] == "2027-07-31"
    cli("studies", "members", "t2d-statins", "--add", "dave", "--actor", "carol")
    cli("studies", "approve", "t2d-statins", "--actor", "tom")
    cli("studies", "revoke", "t2d-statins", "--actor", "sam", "--reason", "protocol breach")
    out, _ = cli("studies", "show", "t2d-statins")
    assert "revoked" in out and "dave" in out
    out, _ = cli("audit", "verify")
    assert "intact" in out


def test_refusals_exit_2_with_the_rule_and_are_audited(cli, request_file, bm_home):
    cli("studies", "request", "--file", str(request_file), "--actor", "carol")
    cli("studies", "submit", "t2d-statins", "--actor", "carol")
    _, err = cli("studies", "approve", "t2d-statins", "--actor", "carol", expect=2)
    assert "carol requested study t2d-statins and may not approve it" in err
    _, err = cli("studies", "approve", "t2d-statins", "--actor", "alice", expect=2)
    assert "member" in err
    _, err = cli("studies", "reject", "t2d-statins", "--actor", "sam", "--comment", "", expect=2)
    assert "comment is required" in err
    _, err = cli("studies", "show", "no-such", expect=2)
    assert "no study 'no-such'" in err
    out, _ = cli("audit", "export")
    refusals = [json.loads(line) for line in out.splitlines() if '"study.refused"' in line]
    assert [(r["actor"], r["detail"]["rule"]) for r in refusals] == [
        ("carol", "self-review"), ("alice", "member-review"), ("sam", "comment-required")]
    assert all(r["detail"]["via"] == {"channel": "cli", "asserted_actor": True, "os_user": r["detail"]["via"]["os_user"]}
               for r in refusals)


def test_bad_request_file_names_fields_and_leaves_no_study(cli, tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(LOCAL_EXAMPLE.read_text().replace("slug: t2d-statins", "slug: T2D").replace("starts: 2026-12-01", "starts: soon"))
    _, err = cli("studies", "request", "--file", str(path), "--actor", "carol", expect=2)
    assert "slug:" in err and "starts:" in err
    out, _ = cli("--json", "studies", "list")
    assert json.loads(out) == []


def test_requester_field_must_be_the_actor(cli, tmp_path):
    path = tmp_path / "claimed.yaml"
    path.write_text(LOCAL_EXAMPLE.read_text() + "\nrequester: mallory\n")
    _, err = cli("studies", "request", "--file", str(path), "--actor", "carol", expect=2)
    assert "not 'mallory'" in err


def test_audit_verify_exit_1_names_the_broken_entry(cli, request_file, bm_home):
    cli("studies", "request", "--file", str(request_file), "--actor", "carol")
    cli("studies", "submit", "t2d-statins", "--actor", "carol")
    from sqlalchemy import create_engine

    engine = create_engine(f"sqlite:///{(bm_home / 'bubble-manager.sqlite').resolve()}")
    with engine.begin() as connection:
        connection.execute(text("UPDATE audit_entries SET actor = 'mallory' WHERE seq = 1"))
    engine.dispose()
    out, _ = cli("audit", "verify", expect=1)
    assert "BROKEN at entry 1" in out


def test_keys_init_refuses_to_replace(cli):
    _, err = cli("keys", "init", expect=2)
    assert "already exists" in err


def test_study_commands_need_the_signing_key(tmp_path, capsys):
    code = main(["--home", str(tmp_path / "fresh"), "studies", "list"])
    assert code == 2
    assert "keys init" in capsys.readouterr().err


def test_console_script_help_on_every_subcommand():
    executable = Path(sys.executable).parent / "bubble-manager"
    for args in ([], ["studies"], ["studies", "approve"], ["audit", "verify"], ["keys", "init"], ["demo-warehouse"]):
        result = subprocess.run([str(executable), *args, "--help"], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and "usage: bubble-manager" in result.stdout


def test_a_cohort_query_the_extract_would_refuse_is_refused_at_submission(cli, tmp_path):
    path = tmp_path / "bad-cohort.yaml"
    path.write_text(LOCAL_EXAMPLE.read_text().replace(
        "SELECT DISTINCT person_id", "SELECT DISTINCT person_id FROM identity UNION SELECT person_id", 1))
    cli("studies", "request", "--file", str(path), "--actor", "carol")
    _, err = cli("studies", "submit", "t2d-statins", "--actor", "carol", expect=2)
    assert "cohort query is refused" in err
    out, _ = cli("--json", "studies", "show", "t2d-statins")
    assert json.loads(out)["state"] == "draft"


def test_an_unreachable_database_is_an_error_not_a_broken_chain(bm_home, capsys):
    # `audit verify` exits 1 only for a broken chain: a database it cannot open is exit 2, no traceback.
    url = "postgresql+psycopg://auditor:s3cret@/bm?host=/nonexistent-socket-dir"
    for command in (["audit", "verify"], ["studies", "list"]):
        code = main(["--home", str(bm_home), "--db", url, *command])
        err = capsys.readouterr().err
        assert code == 2, err
        assert err.startswith("error: cannot open the database postgresql+psycopg://auditor:***@")
        assert "s3cret" not in err and "Traceback" not in err


def test_a_folder_or_binary_file_given_as_a_file_is_a_clear_error(cli, tmp_path):
    binary = tmp_path / "request.bin"
    binary.write_bytes(b"\x00\xff\xfe binary")
    _, err = cli("studies", "request", "--file", str(tmp_path), "--actor", "carol", expect=2)
    assert f"request file {tmp_path} is a folder" in err
    _, err = cli("studies", "request", "--file", str(binary), "--actor", "carol", expect=2)
    assert "is not UTF-8 text" in err and str(binary) in err
    _, err = cli("keys", "decrypt-share", "--identity", str(tmp_path), str(binary), expect=2)
    assert err.startswith("error: Is a directory:") and "Traceback" not in err


def test_the_config_file_comes_from_bubble_manager_config_as_for_the_service(tmp_path, monkeypatch, capsys):
    """A command run beside the service (same environment) opens the service's store, not its own."""
    home = tmp_path / "home"
    home.mkdir()
    elsewhere = tmp_path / "service.sqlite"
    config = tmp_path / "service_config.py"
    config.write_text(f"c.BubbleManager.db_url = 'sqlite:///{elsewhere}'\n")
    monkeypatch.setenv("BUBBLE_MANAGER_CONFIG", str(config))
    assert main(["--home", str(home), "db", "upgrade"]) == 0
    assert elsewhere.exists() and not (home / "bubble-manager.sqlite").exists()
    monkeypatch.setenv("BUBBLE_MANAGER_CONFIG", str(tmp_path / "missing.py"))
    assert main(["--home", str(home), "db", "upgrade"]) == 2
    assert "missing.py" in capsys.readouterr().err
