"""Rebuilds, other studies, activation, dry runs, re-identification, interrupted builds, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import numpy as np
import pytest

from bubble_manager.archive.age import AgeReader
from bubble_manager.archive.keys import load_live_identity, study_share_files
from bubble_manager.cli import main
from bubble_manager.extract.activation import activate_with_extract
from bubble_manager.extract.build import ExtractError, build_extract, extract_rows, remove_leftovers
from bubble_manager.extract.demo_warehouse import build_demo_warehouse
from bubble_manager.extract.manifest import verify_extract
from bubble_manager.extract.reidentify import ReidentifyRefused, reidentify
from bubble_manager.extract.risk import dry_run
from bubble_manager.extract.vault import read_vault
from bubble_manager.operations import StudyOperations
from bubble_manager.runtime.spec import StudyPaths
from bubble_manager.studies import Actor, State, TransitionError

from .conftest import ADMIN, CAROL, SAM, STARTED, approve_study, make_home, open_context, register_custodians

IDENTITY_COLUMNS = ["family_name", "given_name", "nir", "address", "phone", "email"]


def audit_actions(context, slug: str) -> list[tuple[str, dict]]:
    with context.store.transaction() as session:
        from sqlalchemy import select

        from bubble_manager.store import AuditEntryRow

        entries = session.scalars(select(AuditEntryRow).where(AuditEntryRow.study == slug)
                                  .order_by(AuditEntryRow.seq)).all()
        return [(e.action, json.loads(e.detail)) for e in entries]


def vault_of(context, slug: str):
    return read_vault(StudyPaths(context.home, slug).vault, slug, [load_live_identity(context, slug, purpose="test")])


def decrypted_shares(context, slug: str, custodians) -> list[str]:
    identities = {c.name: c.identity for c in custodians}
    texts = []
    for share in study_share_files(context.home, slug):
        with open(share["path"], "rb") as source, AgeReader(source, [identities[share["custodian"]]]) as reader:
            texts.append(reader.read().decode("utf-8"))
    return texts


# --- rebuilds and other studies ----------------------------------------------------------------

@pytest.fixture
def own_warehouse(tmp_path, demo_warehouse) -> Path:
    """A writable copy of the session warehouse (for tests that change it)."""
    path = tmp_path / "own" / "warehouse.duckdb"
    path.parent.mkdir()
    shutil.copy(demo_warehouse, path)
    path.chmod(0o644)
    return path


def test_a_rebuild_keeps_pseudonyms_and_offsets_and_drops_new_opt_outs(tmp_path, own_warehouse, fixed_clock):
    context = open_context(make_home(tmp_path, own_warehouse))
    register_custodians(context)
    approve_study(context, "rebuild", cohort="SELECT person_id FROM person WHERE gender_concept_id = 8532")
    first = build_extract(context, ADMIN, "rebuild")
    before = vault_of(context, "rebuild")
    leaving = int(before.person_ids[7])
    with duckdb.connect(str(own_warehouse)) as warehouse:
        warehouse.execute("INSERT INTO opt_out VALUES (?, DATE '2026-11-20')", [leaving])
    second = build_extract(context, ADMIN, "rebuild")
    after = vault_of(context, "rebuild")
    assert second.persons == first.persons - 1 and leaving not in after.person_ids
    kept = dict(zip(before.person_ids.tolist(), zip(before.pseudonyms, before.offsets.tolist())))
    assert all(kept[p] == (s, o) for p, s, o in zip(after.person_ids.tolist(), after.pseudonyms, after.offsets.tolist()))
    with duckdb.connect(str(second.extract), read_only=True) as extract:
        pseudonyms = {r[0] for r in extract.execute("SELECT person_id FROM person").fetchall()}
    assert pseudonyms == set(after.pseudonyms) and before.pseudonyms[7] not in pseudonyms
    assert [r.state for r in extract_rows(context, "rebuild")] == ["replaced", "current"]
    assert verify_extract(StudyPaths(context.home, "rebuild").root, context.verifier()).ok
    built = [d for a, d in audit_actions(context, "rebuild") if a == "extract.built"]
    assert [d["rebuild"] for d in built] == [False, True]
    context.close()


def test_another_study_gets_unrelated_pseudonyms(extract_context):
    approve_study(extract_context, "first")
    approve_study(extract_context, "second", cohort="SELECT person_id FROM person WHERE birth_date < DATE '1980-01-01'")
    build_extract(extract_context, ADMIN, "first")
    build_extract(extract_context, ADMIN, "second")
    one, two = vault_of(extract_context, "first"), vault_of(extract_context, "second")
    shared = sorted(set(one.person_ids.tolist()) & set(two.person_ids.tolist()))
    assert len(shared) > 500
    first = dict(zip(one.person_ids.tolist(), zip(one.pseudonyms, one.offsets.tolist())))
    second = dict(zip(two.person_ids.tolist(), zip(two.pseudonyms, two.offsets.tolist())))
    assert not set(one.pseudonyms) & set(two.pseudonyms)
    same_offsets = sum(first[p][1] == second[p][1] for p in shared)
    assert same_offsets < len(shared) * 0.02  # independent draws: about 1 in 360
    ranks = np.argsort(np.argsort([first[p][0] for p in shared])), np.argsort(np.argsort([second[p][0] for p in shared]))
    assert abs(np.corrcoef(*ranks)[0, 1]) < 0.1  # the two orders of persons are unrelated


def test_approved_free_text_is_scrubbed_of_the_persons_own_identifiers(extract_context, demo_warehouse):
    approve_study(extract_context, "notes", data={"note": ["person_id", "note_date", "note_text"]},
                  free_text=("note.note_text",))
    result = build_extract(extract_context, ADMIN, "notes")
    vault = vault_of(extract_context, "notes")
    with duckdb.connect() as connection:
        connection.execute(f"ATTACH '{result.extract}' AS x (READ_ONLY)")
        connection.execute(f"ATTACH '{demo_warehouse}' AS wh (READ_ONLY)")
        connection.register("vault", {"person_id": vault.person_ids, "pseudonym": np.array(vault.pseudonyms, dtype=object)})
        leaks = connection.execute(
            "SELECT count(*) FROM x.note n JOIN vault v ON n.person_id = v.pseudonym "
            f"JOIN (UNPIVOT wh.identity ON {', '.join(IDENTITY_COLUMNS)} INTO NAME name VALUE value) i "
            "ON i.person_id = v.person_id WHERE length(i.value) >= 3 AND contains(lower(n.note_text), lower(i.value))"
        ).fetchall()
        scrubbed, total = connection.execute(
            "SELECT count(*) FILTER (WHERE contains(note_text, '[removed]')), count(*) FROM x.note").fetchall()[0]
        named_in_source = connection.execute(
            "SELECT count(*) FROM wh.note n JOIN wh.identity i USING (person_id) SEMI JOIN vault v USING (person_id) "
            "WHERE contains(lower(n.note_text), lower(i.family_name))").fetchall()[0][0]
    assert leaks == [(0,)]
    assert named_in_source > 5 and scrubbed >= named_in_source and total == result.rows["note"]


# --- activation --------------------------------------------------------------------------------

def test_activation_builds_verifies_and_creates_the_workspaces(extract_context, fixed_clock):
    approve_study(extract_context, "activate-me")
    fixed_clock.set(STARTED)
    study = activate_with_extract(extract_context, ADMIN, "activate-me")
    paths = StudyPaths(extract_context.home, "activate-me")
    assert study.state is State.active
    assert verify_extract(paths.root, extract_context.verifier()).ok
    assert paths.workspace("alice").is_dir() and paths.workspace("bob").is_dir() and paths.shared.is_dir()
    actions = [a for a, _ in audit_actions(extract_context, "activate-me")]
    assert actions.index("extract.built") < actions.index("study.activated")


def test_activation_reuses_a_current_verified_extract(extract_context, fixed_clock):
    approve_study(extract_context, "reuse")
    built = build_extract(extract_context, ADMIN, "reuse")
    fixed_clock.set(STARTED)
    activate_with_extract(extract_context, ADMIN, "reuse")
    [row] = extract_rows(extract_context, "reuse")
    assert row.sha256 == built.sha256
    assert "extract.reused" in [a for a, _ in audit_actions(extract_context, "reuse")]


def test_a_failed_build_leaves_the_study_approved_and_audited(extract_context, fixed_clock):
    approve_study(extract_context, "broken", cohort="SELECT person_id FROM condition_occurrence "
                                                    "WHERE CAST(condition_source_value AS INTEGER) > 0")
    fixed_clock.set(STARTED)
    with pytest.raises(ExtractError) as failed:
        activate_with_extract(extract_context, ADMIN, "broken")
    assert failed.value.reason == "cohort-runtime" and "stewards only" in str(failed.value)
    assert "Could not convert" in failed.value.detail and "Could not convert" not in str(failed.value)
    assert StudyOperations(extract_context).get("broken").state is State.approved
    paths = StudyPaths(extract_context.home, "broken")
    assert not paths.extract.exists() and not paths.workspaces.exists()
    assert not [p for p in paths.root.iterdir() if p.name.startswith((".extract", ".spill"))]
    failures = [d for a, d in audit_actions(extract_context, "broken") if a == "extract.failed"]
    assert failures == [{"stage": "cohort", "reason": "runtime"}]
    assert "Could not" not in json.dumps(audit_actions(extract_context, "broken"))


def test_activation_by_a_non_admin_is_refused_before_any_build(extract_context, fixed_clock):
    approve_study(extract_context, "not-yours")
    fixed_clock.set(STARTED)
    with pytest.raises(TransitionError):
        activate_with_extract(extract_context, CAROL, "not-yours")
    assert not StudyPaths(extract_context.home, "not-yours").extract.exists()
    with pytest.raises(PermissionError):
        build_extract(extract_context, SAM, "not-yours")
    assert ("extract.refused", {"attempted": "build", "rule": "admin-only"}) in audit_actions(extract_context, "not-yours")


# --- the steward's dry run ---------------------------------------------------------------------

def test_dry_run_shows_stewards_the_cohort_and_risk(extract_context):
    approve_study(extract_context, "dry", cohort="SELECT person_id FROM condition_occurrence "
                                                 "WHERE condition_concept_id = 201826")
    result = dry_run(extract_context, Actor("rita", frozenset({"steward"})), "dry")
    assert int(result["cohort"]) > 10 and result["risk"]["persons"] == int(result["cohort"])
    assert result["risk"]["quasi_identifiers"][0]["columns"] == ["birth_year", "postcode"]
    assert not StudyPaths(extract_context.home, "dry").extract.exists()
    assert not list((extract_context.home / "tmp").iterdir())
    with pytest.raises(PermissionError):
        dry_run(extract_context, Actor("carol", frozenset({"steward", "researcher"})), "dry")  # the requester
    with pytest.raises(PermissionError):
        dry_run(extract_context, ADMIN, "dry")
    outcomes = [(a, d.get("outcome", d.get("rule"))) for a, d in audit_actions(extract_context, "dry")
                if a.startswith("extract.")]
    assert outcomes == [("extract.dry-run", "ok"), ("extract.refused", "steward-only"),
                        ("extract.refused", "steward-only")]


def test_dry_run_suppresses_small_cohorts(extract_context):
    approve_study(extract_context, "tiny", cohort="SELECT person_id FROM person ORDER BY person_id LIMIT 4")
    result = dry_run(extract_context, SAM, "tiny")
    assert result["cohort"] == "< 10" and result["risk"] is None and "fewer than 10" in result["note"]


# --- re-identification -------------------------------------------------------------------------

def test_reidentification_needs_a_quorum_and_a_reason(extract_context):
    custodians = extract_context.extras["custodians"]
    approve_study(extract_context, "reid", cohort="SELECT person_id FROM person WHERE gender_concept_id = 8507")
    build_extract(extract_context, ADMIN, "reid")
    vault = vault_of(extract_context, "reid")
    shares = decrypted_shares(extract_context, "reid", custodians)
    wanted = [vault.pseudonyms[3], vault.pseudonyms[40]]
    from bubble_manager.extract.pseudonyms import new_pseudonyms

    stranger = new_pseudonyms(1)[0]
    found = reidentify(extract_context, ADMIN, "reid", [*wanted, stranger], shares[:2],
                       "adverse drug reaction reported by the study team")
    assert found == {wanted[0]: int(vault.person_ids[3]), wanted[1]: int(vault.person_ids[40]), stranger: None}
    with pytest.raises(ReidentifyRefused, match="cannot open the vault"):
        reidentify(extract_context, ADMIN, "reid", wanted, shares[:1], "adverse drug reaction again")
    with pytest.raises(ReidentifyRefused, match="reason"):
        reidentify(extract_context, ADMIN, "reid", wanted, shares, "")
    with pytest.raises(ReidentifyRefused, match="not study pseudonyms"):
        reidentify(extract_context, ADMIN, "reid", ["PSN123"], shares, "adverse drug reaction again")
    audited = [(a, d) for a, d in audit_actions(extract_context, "reid") if a.startswith("extract.reid")]
    assert audited[0] == ("extract.reidentified", {"reason": "adverse drug reaction reported by the study team",
                                                   "pseudonyms": [*wanted, stranger], "found": 2})
    assert [d["rule"] for a, d in audited[1:]] == ["quorum", "reason", "pseudonym"]
    assert str(vault.person_ids[3]) not in json.dumps(audited)


# --- interrupted builds ------------------------------------------------------------------------

KILLABLE_BUILD = textwrap.dedent("""
    import sys
    from bubble_manager.config import load_settings
    from bubble_manager.operations import Context
    from bubble_manager.extract.build import build_extract
    from bubble_manager.studies import Actor
    context = Context.open(load_settings(sys.argv[1]))
    build_extract(context, Actor("admin", frozenset({"admin"})), sys.argv[2])
""")


@pytest.mark.slow
def test_a_build_killed_mid_way_leaves_no_extract_after_the_next_run(tmp_path, fixed_clock):
    warehouse = tmp_path / "big" / "warehouse.duckdb"
    build_demo_warehouse(warehouse, 40_000, seed=5, progress=False)
    context = open_context(make_home(tmp_path, warehouse))
    register_custodians(context)
    approve_study(context, "killed")
    paths = StudyPaths(context.home, "killed")
    child = subprocess.Popen([sys.executable, "-c", KILLABLE_BUILD, str(context.home), "killed"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and child.poll() is None:
        if paths.root.is_dir() and list(paths.root.glob(".extract.duckdb.*.tmp")):
            time.sleep(0.05)  # let it write a little
            break
        time.sleep(0.002)
    assert child.poll() is None, child.stderr.read().decode()[-2000:]
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    assert not paths.extract.exists() and not paths.manifest.exists()
    left = sorted(p.name for p in paths.root.iterdir() if p.name.startswith((".extract", ".spill")))
    assert left, "the kill came too late to test anything"
    result = build_extract(context, ADMIN, "killed")
    assert set(left) <= {name.rstrip("/") for name in result.leftovers_removed}
    assert not [p for p in paths.root.iterdir() if p.name.startswith((".extract", ".spill", ".vault", ".manifest"))]
    assert verify_extract(paths.root, context.verifier()).ok
    removed = [d for a, d in audit_actions(context, "killed") if a == "extract.leftovers-removed"]
    assert removed and set(left) <= {name.rstrip("/") for name in removed[0]["files"]}
    context.close()


def test_an_extract_that_does_not_match_its_manifest_is_removed(extract_context):
    approve_study(extract_context, "stale", data={"person": ["person_id", "birth_date"]})
    build_extract(extract_context, ADMIN, "stale")
    paths = StudyPaths(extract_context.home, "stale")
    paths.extract.chmod(0o644)
    with open(paths.extract, "r+b") as file:
        file.seek(5000)
        file.write(b"\x00garbage\x00")
    (paths.root / ".extract.duckdb.abc123.tmp").write_bytes(b"half")
    (paths.root / ".spill-abc123").mkdir()
    removed = remove_leftovers(paths, extract_context.verifier())
    assert removed == [".extract.duckdb.abc123.tmp", ".spill-abc123/", "extract.duckdb", "manifest.json"]
    assert not paths.extract.exists() and not paths.manifest.exists()
    assert remove_leftovers(paths, extract_context.verifier()) == []


def test_an_empty_cohort_is_refused(extract_context):
    approve_study(extract_context, "nobody", cohort="SELECT person_id FROM person WHERE person_id < 0")
    with pytest.raises(ExtractError, match="selects nobody"):
        build_extract(extract_context, ADMIN, "nobody")
    assert not StudyPaths(extract_context.home, "nobody").extract.exists()


# --- the CLI -----------------------------------------------------------------------------------

def test_cli_plan_build_verify_and_reidentify(extract_context, tmp_path, capsys):
    home = str(extract_context.home)
    approve_study(extract_context, "by-cli", data={"person": ["person_id", "birth_date", "postcode"]})
    assert main(["--home", home, "extract", "plan", "by-cli"]) == 0
    assert "birth_date -> birth_year: year" in capsys.readouterr().out
    assert main(["--home", home, "extract", "build", "by-cli", "--actor", "admin", "--no-progress"]) == 0
    assert "extract of by-cli built" in capsys.readouterr().out
    paths = StudyPaths(extract_context.home, "by-cli")
    for target in (paths.root, paths.extract, paths.manifest):
        assert main(["--home", home, "extract", "verify", str(target)]) == 0
        assert capsys.readouterr().out.startswith("ok:")

    copy = tmp_path / "copy"
    shutil.copytree(paths.root, copy)
    (copy / "extract.duckdb").chmod(0o644)
    with open(copy / "extract.duckdb", "r+b") as file:
        file.seek(100)
        file.write(b"X")
    assert main(["--home", home, "extract", "verify", str(copy)]) == 1
    assert "sha256 of" in capsys.readouterr().out
    shutil.copy(paths.extract, copy / "extract.duckdb")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["manifest"]["rows"]["person"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    assert main(["--home", home, "--json", "extract", "verify", str(copy)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["ok"] and any("signature does not verify" in p for p in report["problems"])

    vault = vault_of(extract_context, "by-cli")
    share_files = []
    for number, text in enumerate(decrypted_shares(extract_context, "by-cli", extract_context.extras["custodians"])):
        share = tmp_path / f"share-{number}.txt"
        share.write_text(text)
        share_files += ["--share", str(share)]
    assert main(["--home", home, "extract", "reidentify", "by-cli", vault.pseudonyms[0], *share_files[:4],
                 "--reason", "incidental finding to report", "--actor", "admin"]) == 0
    assert capsys.readouterr().out.strip() == f"{vault.pseudonyms[0]}\t{vault.person_ids[0]}"
    assert main(["--home", home, "extract", "dry-run", "by-cli", "--actor", "carol"]) == 2
    assert "steward" in capsys.readouterr().err


def test_cli_studies_activate_builds_first(extract_context, fixed_clock, capsys):
    home = str(extract_context.home)
    approve_study(extract_context, "cli-ok", data={"person": ["person_id", "gender_concept_id"]})
    approve_study(extract_context, "cli-broken", data={"person": ["person_id"]},
                  cohort="SELECT person_id FROM condition_occurrence WHERE CAST(condition_source_value AS INT) > 0")
    fixed_clock.set(STARTED)
    assert main(["--home", home, "studies", "activate", "cli-ok", "--actor", "admin"]) == 0
    capsys.readouterr()
    assert StudyOperations(extract_context).get("cli-ok").state is State.active
    assert verify_extract(StudyPaths(extract_context.home, "cli-ok").root, extract_context.verifier()).ok
    assert main(["--home", home, "studies", "activate", "cli-broken", "--actor", "admin"]) == 2
    error = capsys.readouterr().err
    assert "error: cohort query refused" in error and "Could not convert" not in error
    assert StudyOperations(extract_context).get("cli-broken").state is State.approved


def test_builds_are_recorded_and_audited_in_either_store(any_db_context):
    approve_study(any_db_context, "stored", data={"person": ["person_id", "birth_date"]})
    first = build_extract(any_db_context, ADMIN, "stored")
    second = build_extract(any_db_context, ADMIN, "stored")
    rows = extract_rows(any_db_context, "stored")
    assert [(r.sha256, r.state) for r in rows] == [(first.sha256, "replaced"), (second.sha256, "current")]
    assert rows[1].rows == {"person": second.persons} and rows[1].request_hash == second.request_hash
    built = [d for a, d in audit_actions(any_db_context, "stored") if a == "extract.built"]
    assert [d["sha256"] for d in built] == [first.sha256, second.sha256]
    assert any_db_context.audit.verify(any_db_context.verifier()).ok  # the chain holds with the extract entries


def test_a_record_key_the_permutation_cannot_renumber_is_refused(tmp_path, own_warehouse, fixed_clock):
    with duckdb.connect(str(own_warehouse)) as warehouse:
        warehouse.execute("UPDATE visit_occurrence SET visit_occurrence_id = -visit_occurrence_id "
                          "WHERE visit_occurrence_id = (SELECT max(visit_occurrence_id) FROM visit_occurrence "
                          "WHERE person_id NOT IN (SELECT person_id FROM opt_out))")
        negative = warehouse.execute("SELECT visit_occurrence_id, person_id FROM visit_occurrence "
                                     "WHERE visit_occurrence_id < 0").fetchall()
    context = open_context(make_home(tmp_path, own_warehouse))
    register_custodians(context)
    approve_study(context, "negative", data={"visit_occurrence": ["visit_occurrence_id", "person_id"],
                                             "condition_occurrence": ["person_id", "visit_occurrence_id"]},
                  cohort=f"SELECT person_id FROM person WHERE person_id = {negative[0][1]}")
    with pytest.raises(ExtractError, match=r"record key visit_occurrence.visit_occurrence_id has a value outside "
                                           r"0 .. 2\^62-1.*fix the warehouse or the catalog") as refused:
        build_extract(context, ADMIN, "negative")
    assert refused.value.reason == "catalog" and str(negative[0][0]) not in str(refused.value)
    paths = StudyPaths(context.home, "negative")
    assert not paths.extract.exists() and not [p for p in paths.root.iterdir() if p.name.startswith((".extract", ".spill",
                                                                                                      ".vault"))]
    assert ("extract.failed", {"stage": "build", "reason": "catalog"}) in audit_actions(context, "negative")
    context.close()


def test_a_repeated_record_key_keeps_one_new_id(tmp_path, own_warehouse, fixed_clock):
    """The permutation is a function of the id: rows that share a source id share the new one."""
    with duckdb.connect(str(own_warehouse)) as warehouse:
        first, last = warehouse.execute("SELECT min(visit_occurrence_id), max(visit_occurrence_id) "
                                        "FROM visit_occurrence").fetchall()[0]
        warehouse.execute(f"UPDATE visit_occurrence SET visit_occurrence_id = {first} WHERE visit_occurrence_id = {last}")
    context = open_context(make_home(tmp_path, own_warehouse))
    register_custodians(context)
    approve_study(context, "dupes", data={"visit_occurrence": ["visit_occurrence_id", "person_id"]})
    build_extract(context, ADMIN, "dupes")
    with duckdb.connect(str(StudyPaths(context.home, "dupes").extract), read_only=True) as extract:
        total, distinct = extract.execute("SELECT count(*), count(DISTINCT visit_occurrence_id) "
                                          "FROM visit_occurrence").fetchall()[0]
    assert total == distinct + 1
    context.close()
