"""Output and import requests end to end on the store: submit, check, review, release, download."""

from __future__ import annotations

import hashlib
import stat

import pytest

from bubble_manager.airlock import quarantine
from bubble_manager.airlock.ledger import LEDGER_NAME, verify_ledger
from bubble_manager.airlock.operations import AirlockOperations
from bubble_manager.airlock.review import AirlockRefused
from bubble_manager.archive.manifest import SignedDocumentError
from bubble_manager.runtime.spec import StudyPaths

from .flows import ALICE, BOB, CAROL, SAM, STELLA, TOM, acro_files, active_study, write_outbox


@pytest.fixture
def airlock(context):
    """On SQLite and on a real PostgreSQL server."""
    active_study(context, "alpha")
    return AirlockOperations(context, via={"channel": "tests"})


@pytest.fixture
def two_reviews(context):
    context.settings.config.AirlockSettings.required_reviews = 2
    active_study(context, "alpha")
    return AirlockOperations(context, via={"channel": "tests"})


def files_by_path(document: dict) -> dict[str, dict]:
    return {f["path"]: f for f in document["files"]}


def actions(context, since: int = 0) -> list[str]:
    return [e.action for e in context.audit.entries(study="alpha", since_seq=since)]


def submit_acro(airlock, acro_outputs) -> dict:
    write_outbox(airlock.context, "alpha", "alice", "acro-tables", acro_files(acro_outputs), acro=True)
    return airlock.submit_output(ALICE, "alpha", "acro-tables")


def test_an_acro_request_is_quarantined_checked_and_queued(airlock, acro_outputs):
    start = airlock.context.audit.count()
    document = submit_acro(airlock, acro_outputs)
    files = files_by_path(document)
    assert document["state"] == "review" and document["requester"] == "alice" and document["verdict"] == "flagged"
    assert files["acro/output_0_0.csv"]["verdict"] == "flagged"
    assert files["acro/output_1_0.csv"]["verdict"] == "pass"
    assert files["acro/histogram_0.png"]["category"] == "figure" and files["acro/histogram_0.png"]["image"]
    copy = quarantine.file_path(airlock.context.home, "alpha", document["id"], "acro/output_1_0.csv")
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == files["acro/output_1_0.csv"]["sha256"]
    assert stat.S_IMODE(quarantine.request_folder(airlock.context.home, "alpha", document["id"]).stat().st_mode) == 0o700
    entry = airlock.context.audit.entries(since_seq=start, action="airlock.submitted")[0]
    assert entry.actor == "alice" and entry.detail["files"] == len(files) and entry.detail["flags"]["small-cell"] == 1
    assert "output_0_0.csv" not in str(entry.detail)  # ids and counts, never names
    outbox = airlock.outbox(ALICE, "alpha")
    assert outbox[0]["name"] == "acro-tables" and outbox[0]["submitted_as"] == [document["id"]]


def test_submitting_twice_unchanged_is_refused(airlock, acro_outputs):
    first = submit_acro(airlock, acro_outputs)
    with pytest.raises(AirlockRefused, match=f"as request {first['id']}") as refused:
        airlock.submit_output(ALICE, "alpha", "acro-tables")
    assert refused.value.rule == "already-submitted"
    assert sorted(p.name for p in quarantine.study_quarantine(airlock.context.home, "alpha").iterdir()) == [str(first["id"])]


def test_only_members_submit_their_own_outbox(airlock, acro_outputs):
    write_outbox(airlock.context, "alpha", "alice", "t", {"t.csv": b"a,n\nx,40\n"})
    for actor, rule in ((CAROL, "not-member"), (SAM, "role")):
        with pytest.raises(AirlockRefused) as refused:
            airlock.submit_output(actor, "alpha", "t")
        assert refused.value.rule == rule
    with pytest.raises(quarantine.QuarantineError, match="no outbox request 't'"):
        airlock.submit_output(BOB, "alpha", "t")  # bob's outbox, not alice's
    refusals = airlock.context.audit.entries(study="alpha", action="airlock.refused")
    assert [(e.actor, e.detail["rule"]) for e in refusals] == [("carol", "not-member"), ("sam", "role"), ("bob", "outbox")]


def test_a_refused_outbox_leaves_nothing_behind(airlock, context):
    folder = write_outbox(context, "alpha", "alice", "t", {"t.csv": b"a,n\nx,40\n"})
    (folder / "key.csv").symlink_to(context.home / "keys" / "hub-signing.key")
    with pytest.raises(quarantine.QuarantineError) as refused:
        airlock.submit_output(ALICE, "alpha", "t")
    assert refused.value.codes() == {"symlink": 1}
    assert airlock.requests("alpha") == []
    assert [p.name for p in quarantine.study_quarantine(context.home, "alpha").iterdir()] == []
    entry = context.audit.entries(action="airlock.refused")[-1]
    assert entry.detail["problems"] == {"symlink": 1}


def test_one_steward_releases_a_file_and_the_requester_downloads_it_once(airlock, acro_outputs):
    document = submit_acro(airlock, acro_outputs)
    table = files_by_path(document)["acro/output_1_0.csv"]
    with pytest.raises(AirlockRefused) as refused:
        airlock.download(ALICE, "alpha", document["id"], table["id"])
    assert refused.value.rule == "not-approved"
    reviewed = airlock.review(SAM, "alpha", document["id"], table["id"], "approve", "all cells of 10 or more")
    assert files_by_path(reviewed)["acro/output_1_0.csv"]["state"] == "approved"
    for actor, rule in ((BOB, "not-requester"), (CAROL, "not-requester"), (SAM, "not-requester")):
        with pytest.raises(AirlockRefused) as refused:
            airlock.download(actor, "alpha", document["id"], table["id"])
        assert refused.value.rule == rule
    data, info = airlock.download(ALICE, "alpha", document["id"], table["id"])
    assert data == (acro_outputs / "output_1_0.csv").read_bytes() and info["sha256"] == table["sha256"]
    with pytest.raises(AirlockRefused) as refused:
        airlock.download(ALICE, "alpha", document["id"], table["id"])
    assert refused.value.rule == "already-downloaded"
    downloads = airlock.context.audit.entries(action="airlock.downloaded")
    assert len(downloads) == 1 and downloads[0].actor == "alice" and downloads[0].detail["sha256"] == table["sha256"]


def test_two_distinct_reviewers_when_configured(two_reviews, acro_outputs):
    airlock = two_reviews
    document = submit_acro(airlock, acro_outputs)
    table = files_by_path(document)["acro/output_1_0.csv"]
    after_one = airlock.review(SAM, "alpha", document["id"], table["id"], "approve", "ok")
    assert files_by_path(after_one)["acro/output_1_0.csv"]["state"] == "pending"
    with pytest.raises(AirlockRefused) as refused:
        airlock.review(SAM, "alpha", document["id"], table["id"], "approve", "ok again")
    assert refused.value.rule == "already-reviewed"
    with pytest.raises(AirlockRefused):
        airlock.download(ALICE, "alpha", document["id"], table["id"])
    after_two = airlock.review(TOM, "alpha", document["id"], table["id"], "approve", "agreed")
    released = files_by_path(after_two)["acro/output_1_0.csv"]
    assert released["state"] == "approved" and [r["reviewer"] for r in released["reviews"]] == ["sam", "tom"]
    entry = airlock.context.audit.entries(action="airlock.released")[-1]
    assert entry.detail["reviewers"] == ["sam", "tom"] and entry.detail["file"] == table["id"]


def test_a_member_or_the_requester_cannot_review(airlock, acro_outputs):
    document = submit_acro(airlock, acro_outputs)
    table = files_by_path(document)["acro/output_0_0.csv"]
    for actor, rule in ((STELLA, "member-review"), (ALICE, "role"), (CAROL, "role")):
        with pytest.raises(AirlockRefused) as refused:
            airlock.review(actor, "alpha", document["id"], table["id"], "approve", "looks fine")
        assert refused.value.rule == rule
        with pytest.raises(AirlockRefused):
            airlock.view(actor, "alpha", document["id"], table["id"])
    carol_steward = type(CAROL)("carol", frozenset({"researcher", "steward"}))
    with pytest.raises(AirlockRefused) as refused:
        airlock.review(carol_steward, "alpha", document["id"], table["id"], "approve", "mine")
    assert refused.value.rule == "self-review"
    assert files_by_path(airlock.request(document["id"]))["acro/output_0_0.csv"]["reviews"] == []


def test_a_rejection_closes_the_file_and_comments_are_required(airlock, acro_outputs):
    document = submit_acro(airlock, acro_outputs)
    table = files_by_path(document)["acro/output_0_0.csv"]
    with pytest.raises(AirlockRefused, match="comment is required"):
        airlock.review(SAM, "alpha", document["id"], table["id"], "reject", "  ")
    with pytest.raises(AirlockRefused) as refused:
        airlock.review(SAM, "alpha", document["id"], table["id"], "maybe", "hmm")
    assert refused.value.rule == "decision"
    rejected = airlock.review(SAM, "alpha", document["id"], table["id"], "reject", "a cell of 3: suppress it")
    assert files_by_path(rejected)["acro/output_0_0.csv"]["state"] == "rejected"
    with pytest.raises(AirlockRefused) as refused:
        airlock.review(TOM, "alpha", document["id"], table["id"], "approve", "fine by me")
    assert refused.value.rule == "already-decided"


def test_the_request_is_decided_when_every_file_is_and_the_ledger_records_it(airlock, acro_outputs, context):
    document = submit_acro(airlock, acro_outputs)
    for path, file in files_by_path(document).items():
        decision = "approve" if file["verdict"] == "pass" else "reject"
        document = airlock.review(SAM, "alpha", document["id"], file["id"], decision, f"{decision}: {path}")
    assert document["state"] == "decided" and document["decided_at"]
    released = [f for f in document["files"] if f["state"] == "approved"]
    data, _ = airlock.download(ALICE, "alpha", document["id"], released[0]["id"])
    ledger_file = StudyPaths(context.home, "alpha").root / LEDGER_NAME
    assert stat.S_IMODE(ledger_file.stat().st_mode) == 0o600
    ledger = verify_ledger(ledger_file, context.verifier())
    assert ledger["released"] == len(released) and len(ledger["entries"]) == len(document["files"])
    entry = next(e for e in ledger["entries"] if e["file_id"] == released[0]["id"])
    assert entry["sha256"] == hashlib.sha256(data).hexdigest() and entry["downloaded_at"]
    assert entry["reviewers"][0]["reviewer"] == "sam" and entry["checks"]["verdict"] == "pass"
    tampered = ledger_file.read_text().replace(entry["sha256"], "0" * 64)
    ledger_file.write_text(tampered)
    with pytest.raises(SignedDocumentError):
        verify_ledger(ledger_file, context.verifier())


def test_every_step_is_audited(airlock, acro_outputs):
    start = airlock.context.audit.count()
    document = submit_acro(airlock, acro_outputs)
    table = files_by_path(document)["acro/output_1_0.csv"]
    airlock.view(SAM, "alpha", document["id"], table["id"])
    airlock.review(SAM, "alpha", document["id"], table["id"], "approve", "ok")
    airlock.download(ALICE, "alpha", document["id"], table["id"])
    with pytest.raises(AirlockRefused):
        airlock.download(ALICE, "alpha", document["id"], table["id"])
    assert actions(airlock.context, start) == ["airlock.submitted", "airlock.viewed", "airlock.reviewed",
                                               "airlock.released", "airlock.downloaded", "airlock.refused"]
    assert airlock.context.audit.verify(airlock.context.verifier()).ok


def test_stewards_see_figures_as_images_and_nothing_else(airlock, acro_outputs):
    write_outbox(airlock.context, "alpha", "alice", "fig", {"figure.png": acro_outputs.parent / "figure.png",
                                                            "page.html": b"<script>alert(1)</script>"})
    document = airlock.submit_output(ALICE, "alpha", "fig")
    files = files_by_path(document)
    assert files["figure.png"]["verdict"] == "manual" and files["page.html"]["verdict"] == "manual"
    data, info = airlock.view(SAM, "alpha", document["id"], files["figure.png"]["id"], as_image=True)
    assert info["content_type"] == "image/png" and data.startswith(b"\x89PNG")
    with pytest.raises(AirlockRefused) as refused:
        airlock.view(SAM, "alpha", document["id"], files["page.html"]["id"], as_image=True)
    assert refused.value.rule == "not-an-image"


def test_an_altered_quarantine_copy_is_never_served(airlock, acro_outputs):
    document = submit_acro(airlock, acro_outputs)
    table = files_by_path(document)["acro/output_1_0.csv"]
    airlock.review(SAM, "alpha", document["id"], table["id"], "approve", "ok")
    copy = quarantine.file_path(airlock.context.home, "alpha", document["id"], table["path"])
    copy.write_bytes(copy.read_bytes() + b"extra\n")
    with pytest.raises(quarantine.QuarantineError, match="no longer matches"):
        airlock.download(ALICE, "alpha", document["id"], table["id"])
    assert airlock.context.audit.entries(action="airlock.refused")[-1].detail["rule"] == "altered"


# --- imports ---------------------------------------------------------------------------------

def test_an_import_reaches_the_shared_folder_only_after_approval(airlock, context):
    script = b"import duckdb\nprint('reference analysis')\n"
    document = airlock.submit_import(ALICE, "alpha", "reference.py", script, "the reference analysis")
    shared = StudyPaths(context.home, "alpha").shared
    assert document["kind"] == "import" and not (shared / "imports").exists()
    file = document["files"][0]
    with pytest.raises(AirlockRefused) as refused:
        airlock.download(ALICE, "alpha", document["id"], file["id"])
    assert refused.value.rule == "not-an-output"
    approved = airlock.review(SAM, "alpha", document["id"], file["id"], "approve", "plain code")
    delivered = shared / "imports" / f"{document['id']}-reference.py"
    assert approved["files"][0]["delivered_to"] == f"shared/imports/{document['id']}-reference.py"
    assert delivered.read_bytes() == script
    info = delivered.stat()
    assert stat.S_IMODE(info.st_mode) == 0o440 and info.st_uid == 0
    from bubble_manager.runtime import uids

    assert info.st_gid == uids.study_ids(context.store, "alpha")[""]
    assert [e.action for e in context.audit.entries(study="alpha", action="airlock.*")] == [
        "airlock.submitted", "airlock.refused", "airlock.reviewed", "airlock.released", "airlock.import-delivered"]


def test_an_import_is_never_written_through_a_link_in_the_shared_folder(airlock, context):
    shared = StudyPaths(context.home, "alpha").shared
    shared.mkdir()
    (shared / "imports").symlink_to(context.home / "keys")
    document = airlock.submit_import(ALICE, "alpha", "notes.md", b"# notes\n", "method notes")
    from bubble_manager.airlock.delivery import DeliveryError

    with pytest.raises(DeliveryError, match="link or a file"):
        airlock.review(SAM, "alpha", document["id"], document["files"][0]["id"], "approve", "ok")
    assert sorted(p.name for p in (context.home / "keys").iterdir()) == ["hub-signing.key", "hub-signing.pub"]
    assert airlock.request(document["id"])["files"][0]["state"] == "pending"  # nothing half-done


@pytest.mark.parametrize("name, data, justification, rule", [
    ("tool.exe", b"MZ", "needed", "import-type"),
    ("../x.py", b"print(1)", "needed", "import-name"),
    (".hidden.py", b"print(1)", "needed", "import-name"),
    ("empty.py", b"", "needed", "import-empty"),
    ("latin.txt", "café".encode("latin-1"), "needed", "import-type"),
    ("nul.csv", b"a,b\x00\n", "needed", "import-type"),
    ("ok.py", b"print(1)", "  ", "justification"),
    ("big.csv", b"x" * ((20 << 20) + 1), "needed", "import-size"),
])
def test_bad_imports_are_refused_and_audited(airlock, context, name, data, justification, rule):
    with pytest.raises(AirlockRefused) as refused:
        airlock.submit_import(ALICE, "alpha", name, data, justification)
    assert refused.value.rule == rule
    assert airlock.requests("alpha") == []
    assert not quarantine.study_quarantine(context.home, "alpha").exists() or not any(
        quarantine.study_quarantine(context.home, "alpha").iterdir())
    assert context.audit.entries(action="airlock.refused")[-1].detail["rule"] == rule


def test_only_members_import(airlock):
    with pytest.raises(AirlockRefused) as refused:
        airlock.submit_import(CAROL, "alpha", "x.py", b"print(1)\n", "needed")
    assert refused.value.rule == "not-member"
