"""Snapshots: standard-tool interoperability, contents, hostile workspaces, caps, leftovers."""

from __future__ import annotations

import io
import json
import os
import subprocess
import tarfile

import pytest
import zstandard

from bubble_manager.archive.age import AgeReader, X25519Identity
from bubble_manager.archive.manifest import MANIFEST_FORMAT, verify
from bubble_manager.archive.snapshot import SnapshotError, snapshot, verify_envelope
from bubble_manager.archive.walk import Changed, Limits, TreeWalker, WalkReport
from bubble_manager.config import load_settings
from bubble_manager.operations import Context
from bubble_manager.store import ArchiveRow

from .conftest import make_study, recovered_identity


def decrypt_tar_members(path, identity) -> dict[str, tarfile.TarInfo | bytes]:
    """Our own reader: age -> zstd -> tar, members by name (file contents as bytes)."""
    found: dict[str, object] = {}
    with open(path, "rb") as raw, AgeReader(raw, [identity]) as reader:
        with zstandard.ZstdDecompressor().stream_reader(reader, closefd=False) as plain:
            with tarfile.open(fileobj=plain, mode="r|") as tar:
                for member in tar:
                    found[member.name] = tar.extractfile(member).read() if member.isreg() else member
        reader.verify_to_end()
    return found


def test_archive_opens_with_debian_age_zstd_and_tar(classic_keys, sqlite_context, custodians, active_study,
                                                    tmp_path):
    result = snapshot(sqlite_context, active_study.slug, actor="admin")
    identity = recovered_identity(sqlite_context, active_study.slug, custodians)
    key_file = tmp_path / "archive.key"
    key_file.write_text(identity.to_string() + "\n")
    listing = subprocess.run(f"age -d -i {key_file} {result.path} | zstd -d | tar -t", shell=True, check=True,
                             capture_output=True, text=True, executable="/bin/bash").stdout.splitlines()
    slug = active_study.slug
    expected = {f"{slug}/{name}" for name in active_study.files} | {
        f"{slug}/_archive/environment.json", f"{slug}/_archive/audit.jsonl", f"{slug}/_archive/archive-manifest.json"}
    assert expected <= {name.rstrip("/") for name in listing}
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(f"set -o pipefail; age -d -i {key_file} {result.path} | zstd -d | tar -x -C {out}", shell=True,
                   check=True, executable="/bin/bash")
    for name, data in active_study.files.items():
        assert (out / slug / name).read_bytes() == data, name
    assert os.readlink(out / slug / "workspaces" / active_study.paths.workspace("alice").name / "latest.ipynb") \
        == "notebooks/analysis.ipynb"
    manifest = verify(json.loads((out / slug / "_archive" / "archive-manifest.json").read_text()),
                      sqlite_context.verifier(), MANIFEST_FORMAT, "manifest")
    by_path = {m["path"]: m for m in manifest["members"]}
    data_bin = f"{slug}/workspaces/{active_study.paths.workspace('alice').name}/data.bin"
    import hashlib
    assert by_path[data_bin]["sha256"] == hashlib.sha256(active_study.files[data_bin[len(slug) + 1:]]).hexdigest()
    environment = json.loads((out / slug / "_archive" / "environment.json").read_text())
    assert any(p["name"].lower() == "zstandard" for p in environment["packages"])
    audit_lines = (out / slug / "_archive" / "audit.jsonl").read_text().splitlines()
    assert json.loads(audit_lines[0])["action"] == "study.requested"


def test_envelope_row_and_audit_name_no_file(sqlite_context, custodians, active_study):
    result = snapshot(sqlite_context, active_study.slug, actor="admin")
    envelope = verify_envelope(sqlite_context.verifier(), result.path)
    assert envelope["encryption"] == "age-encryption.org/v1 (mlkem768x25519)"  # hybrid by default
    assert (envelope["study"], envelope["number"], envelope["sha256"], envelope["size"]) == (
        active_study.slug, 1, result.sha256, result.path.stat().st_size)
    envelope_text = result.envelope_path.read_text()
    entry = sqlite_context.audit.entries(action="archive.snapshot")[-1]
    for name in active_study.files:
        basename = name.rsplit("/", 1)[-1]
        assert basename not in envelope_text and basename not in json.dumps(entry.detail)
    assert entry.actor == "admin" and entry.detail["number"] == 1 and entry.detail["sha256"] == result.sha256
    with sqlite_context.store.transaction() as session:
        row = session.query(ArchiveRow).one()
        assert (row.slug, row.number, row.sha256, row.size, row.state) == (
            active_study.slug, 1, result.sha256, result.size, "kept")
    assert oct(result.path.stat().st_mode & 0o777) == "0o600"
    second = snapshot(sqlite_context, active_study.slug, actor="admin")
    assert second.number == 2 and second.path.name == f"{active_study.slug}-2.tar.zst.age"


def test_a_file_encrypted_by_the_age_cli_reads_with_our_pipeline(tmp_path):
    identity = X25519Identity.generate()
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "hello.txt").write_text("from the standard tools\n")
    subprocess.run(f"set -o pipefail; tar -C {tmp_path} -c in | zstd -3 -q | age -r "
                   f"{identity.recipient().to_string()} > {tmp_path / 'cli.tar.zst.age'}", shell=True, check=True,
                   executable="/bin/bash")
    members = decrypt_tar_members(tmp_path / "cli.tar.zst.age", identity)
    assert members["in/hello.txt"] == b"from the standard tools\n"


@pytest.mark.timeout(120)
def test_hostile_workspace_is_archived_without_following_blocking_or_exhausting(sqlite_context, custodians,
                                                                                active_study, tmp_path):
    home = sqlite_context.home
    alice = active_study.paths.workspace("alice")
    hub_key = home / "keys" / "hub-signing.key"
    os.symlink(hub_key, alice / "hub-key-link")
    os.symlink("../../../../keys/hub-signing.key", alice / "relative-escape")
    os.symlink(".", alice / "dot")
    (alice / "sub").mkdir()
    os.symlink("..", alice / "sub" / "up")
    # Lexically "sub/up/../.." is alice's own folder; through the link it is the study folder, outside.
    os.symlink("sub/up/../..", alice / "escape-through-chain")
    os.mkfifo(alice / "pipe")
    with open(alice / "sparse.img", "wb") as sparse:
        sparse.truncate(1 << 40)  # 1 TiB apparent, no blocks
    outside = tmp_path / "outside-secret.txt"
    outside.write_text("SECRET OUTSIDE THE STUDY")
    os.link(outside, alice / "hard-link-out")
    os.link(alice / "data.bin", alice / "hard-link-in")  # both links inside: archived
    result = snapshot(sqlite_context, active_study.slug, actor="admin")
    assert result.skipped == {"symlink-outside": 3, "special-file": 1, "over-file-cap": 1, "hard-link-outside": 1}
    identity = recovered_identity(sqlite_context, active_study.slug, custodians)
    members = decrypt_tar_members(result.path, identity)
    prefix = f"{active_study.slug}/workspaces/{alice.name}/"
    for absent in ("hub-key-link", "relative-escape", "escape-through-chain", "pipe", "sparse.img", "hard-link-out"):
        assert prefix + absent not in members, absent
    assert members[prefix + "hard-link-in"] == members[prefix + "data.bin"]
    assert members[prefix + "dot"].issym() and members[prefix + "sub/up"].issym()
    key_bytes = hub_key.read_bytes()
    assert not any(isinstance(v, bytes) and (key_bytes in v or b"SECRET OUTSIDE" in v) for v in members.values())
    manifest = json.loads(members[f"{active_study.slug}/_archive/archive-manifest.json"])
    reasons = {s["path"].rsplit("/", 1)[-1]: s["code"] for s in manifest["skipped"]}
    assert reasons == {"hub-key-link": "symlink-outside", "relative-escape": "symlink-outside",
                       "escape-through-chain": "symlink-outside", "pipe": "special-file",
                       "sparse.img": "over-file-cap", "hard-link-out": "hard-link-outside"}
    assert result.size < 2 << 20  # the sparse terabyte was never read


def test_a_file_swapped_for_a_symlink_after_listing_is_not_read(tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "a.txt").write_text("innocent")
    secret = tmp_path / "secret"
    secret.write_text("secret")
    walker = TreeWalker(Limits(1 << 30, 1 << 30, 1000), WalkReport())
    entries = walker.walk(tree, "t")
    assert next(entries).kind == "dir"
    entry = next(entries)
    assert entry.path == "t/a.txt"
    (tree / "a.txt").unlink()
    os.symlink(secret, tree / "a.txt")  # the race: swapped between listing and opening
    with pytest.raises(Changed):
        entry.open()
    (tree / "a.txt").unlink()
    os.mkfifo(tree / "a.txt")  # and a FIFO swapped in must not block the open
    with pytest.raises(Changed):
        entry.open()


@pytest.mark.parametrize("setting, value, code, count", [
    ("max_file_bytes", 200_000, "over-file-cap", 1),  # data.bin (300 kB)
    ("max_total_bytes", 5_000, "over-total-cap", 2),  # data.bin, then notes.md (8 kB) are over 5 kB
    ("max_members", 10, "over-member-cap", 3),  # a skipped folder is not walked
])
def test_caps_leave_files_out_and_say_so(bm_home, custodians, sqlite_context, frozen_clock, setting, value, code,
                                         count):
    from .conftest import write_study_files

    slug = make_study(sqlite_context, frozen_clock)
    write_study_files(sqlite_context, slug, random_bytes=300_000)
    (bm_home / "bubble_manager_config.py").write_text(f"c.ArchiveSettings.{setting} = {value}\n")
    context = Context.open(load_settings(bm_home))
    result = snapshot(context, slug, actor="admin")
    assert result.skipped == {code: count}
    identity = recovered_identity(context, slug, custodians)
    members = decrypt_tar_members(result.path, identity)
    manifest = json.loads(members[f"{slug}/_archive/archive-manifest.json"])
    assert [s["code"] for s in manifest["skipped"]] == [code] * count
    assert not {s["path"] for s in manifest["skipped"]} & set(members)
    context.close()


def test_a_file_that_shrinks_while_read_is_zero_padded_to_its_listed_size():
    from bubble_manager.archive.snapshot import HashingReader

    reader = HashingReader(io.BytesIO(b"abc"), 5)
    assert reader.read(4) + reader.read(4) == b"abc\0\0" and reader.shrank
    import hashlib
    assert reader.hexdigest() == hashlib.sha256(b"abc\0\0").hexdigest()
    longer = HashingReader(io.BytesIO(b"abcdef"), 3)  # grew: only the listed size is taken
    assert longer.read(-1) == b"abc" and not longer.shrank


def test_refuses_unknown_and_draft_studies(sqlite_context, custodians, frozen_clock):
    with pytest.raises(SnapshotError, match="no study 'nope'"):
        snapshot(sqlite_context, "nope")
    with pytest.raises(SnapshotError, match="not a study slug"):
        snapshot(sqlite_context, "../etc")
    from bubble_manager.operations import StudyOperations

    from .conftest import CAROL, study_document
    StudyOperations(sqlite_context).request(CAROL, study_document("draft-study"))
    with pytest.raises(SnapshotError, match="draft"):
        snapshot(sqlite_context, "draft-study")
    assert not (sqlite_context.home / "archives" / "draft-study").exists()


def test_leftovers_are_removed_and_unrecorded_complete_archives_adopted(sqlite_context, custodians, active_study):
    first = snapshot(sqlite_context, active_study.slug, actor="admin")
    folder = first.path.parent
    (folder / f".{active_study.slug}-2.tar.zst.age.dead.tmp").write_bytes(b"half an archive")
    (folder / f"{active_study.slug}-7.tar.zst.age.envelope.json").write_text("{}")  # envelope whose archive never came
    with sqlite_context.store.transaction() as session:  # as if the process died after renaming, before commit
        session.query(ArchiveRow).delete()
    second = snapshot(sqlite_context, active_study.slug, actor="admin")
    assert second.adopted == [1] and second.number == 2
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lock") == sorted(
        [first.path.name, first.envelope_path.name, second.path.name, second.envelope_path.name])
    assert [e.detail["number"] for e in sqlite_context.audit.entries(action="archive.adopted")] == [1]


def test_snapshot_on_postgres_store(context, custodians_pg, frozen_clock, tmp_path):
    from .conftest import write_study_files

    slug = make_study(context, frozen_clock)
    write_study_files(context, slug)
    result = snapshot(context, slug, actor="admin")
    assert verify_envelope(context.verifier(), result.path)["number"] == 1
    assert io.BytesIO(result.path.read_bytes()[:21]).read() == b"age-encryption.org/v1"
