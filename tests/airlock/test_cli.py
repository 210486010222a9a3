"""`bubble-manager airlock ...`: list, show, review (asserted actor, audited), ledger, check."""

from __future__ import annotations

import json

from bubble_manager.airlock.operations import AirlockOperations
from bubble_manager.cli import main

from .flows import ALICE, active_study, write_outbox


def run(capsys, home, *argv) -> tuple[int, str, str]:
    code = main(["--home", str(home), *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_an_operator_reviews_from_the_command_line(sqlite_context, bm_home, capsys):
    active_study(sqlite_context, "alpha")
    write_outbox(sqlite_context, "alpha", "alice", "t", {"t.csv": b"g,n\na,40\nb,3\n"}, counts={"t.csv": ["n"]})
    request = AirlockOperations(sqlite_context).submit_output(ALICE, "alpha", "t")
    file_id = request["files"][0]["id"]
    code, out, _ = run(capsys, bm_home, "airlock", "list", "--study", "alpha")
    assert code == 0 and f"#{request['id']} alpha output by alice: review, 1 files, checks flagged" in out
    code, out, _ = run(capsys, bm_home, "airlock", "show", str(request["id"]))
    assert f"[{file_id}] t.csv" in out and "small-cell x1" in out
    code, _, err = run(capsys, bm_home, "airlock", "review", str(request["id"]), "--file", str(file_id), "--approve",
                       "--comment", "mine", "--actor", "stella")
    assert code == 2 and "member of study alpha" in err
    code, out, _ = run(capsys, bm_home, "airlock", "review", str(request["id"]), "--file", str(file_id), "--reject",
                       "--comment", "a cell of 3", "--actor", "sam")
    assert code == 0 and "-> rejected (sam reject)" in out
    entry = sqlite_context.audit.entries(action="airlock.reviewed")[-1]
    assert entry.actor == "sam" and entry.detail["via"]["asserted_actor"] is True
    code, out, _ = run(capsys, bm_home, "--json", "airlock", "ledger", "--study", "alpha")
    ledger = json.loads(out)
    assert code == 0 and ledger["entries"][0]["decision"] == "rejected" and ledger["released"] == 0
    code, _, err = run(capsys, bm_home, "airlock", "show", "999")
    assert code == 2 and "no airlock request 999" in err


def test_check_runs_on_local_files(bm_home, tmp_path, capsys, pseudonym):
    (tmp_path / "t.csv").write_text(f"g,n\na,40\n{pseudonym},30\n")
    (tmp_path / "ok.csv").write_text("g,n\na,40\nb,30\n")
    code, out, _ = run(capsys, bm_home, "airlock", "check", str(tmp_path / "t.csv"), "--counts", "t.csv:n")
    assert code == 1 and "t.csv: flagged" in out and "pseudonym x1" in out
    code, out, _ = run(capsys, bm_home, "airlock", "check", str(tmp_path / "ok.csv"), "--counts", "ok.csv:n")
    assert code == 0 and "ok.csv: pass" in out
    code, _, err = run(capsys, bm_home, "airlock", "check", str(tmp_path / "absent.csv"))
    assert code == 2 and "not a regular file" in err
