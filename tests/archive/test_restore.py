"""Restores: all or nothing, every tampering detected, crafted members refused, audited."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile

import pytest
import zstandard

from bubble_manager.archive.age import CHUNK_SIZE, AgeWriter, X25519Identity
from bubble_manager.archive.restore import RestoreError, restore
from bubble_manager.archive.snapshot import snapshot

from .conftest import make_study, recovered_identity

HEADER_END = b"\n--- "
ENCRYPTED_CHUNK = CHUNK_SIZE + 16


@pytest.fixture
def archived(sqlite_context, custodians, active_study):
    alice = active_study.paths.workspace("alice")
    (alice / "big.bin").write_bytes(os.urandom(3 * CHUNK_SIZE))  # incompressible: several age chunks
    result = snapshot(sqlite_context, active_study.slug, actor="admin")
    identity = recovered_identity(sqlite_context, active_study.slug, custodians)
    return result, identity, active_study


def payload_start(data: bytes) -> int:
    """Offset of the first encrypted chunk: after the header's MAC line and the 16-byte nonce."""
    return data.index(b"\n", data.index(HEADER_END) + 1) + 1 + 16


def assert_nothing_restored(destination):
    assert not destination.exists()
    assert not [p for p in destination.parent.iterdir() if ".restore-" in p.name]


def test_restore_round_trip_is_audited(sqlite_context, archived, tmp_path):
    result, identity, study = archived
    destination = tmp_path / "restored"
    restored = restore(sqlite_context, result.path, destination, [identity], reason="appeal by the sponsor",
                       actor="ops")
    assert restored.envelope == "checked" and restored.number == 1
    for name, data in study.files.items():
        assert (destination / name).read_bytes() == data, name
    alice = destination / "workspaces" / study.paths.workspace("alice").name
    assert os.readlink(alice / "latest.ipynb") == "notebooks/analysis.ipynb"
    assert (alice / "empty-folder").is_dir()
    assert json.loads((destination / "_archive" / "archive-manifest.json").read_text())["study"] == study.slug
    entry = sqlite_context.audit.entries(action="archive.restored")[-1]
    assert (entry.actor, entry.study, entry.detail["reason"], entry.detail["number"]) == (
        "ops", study.slug, "appeal by the sponsor", 1)


def test_restore_for_a_new_study_is_audited_on_both(sqlite_context, archived, tmp_path, frozen_clock):
    result, identity, study = archived
    make_study(sqlite_context, frozen_clock, "follow-up")
    restore(sqlite_context, result.path, tmp_path / "reuse", [identity], reason="follow-up study", actor="ops",
            for_study="follow-up")
    on_new = sqlite_context.audit.entries(study="follow-up", action="archive.restored-for")
    on_old = sqlite_context.audit.entries(study=study.slug, action="archive.restored")
    assert on_new[0].detail["from_study"] == study.slug and on_old[0].detail["for_study"] == "follow-up"
    with pytest.raises(RestoreError, match="no such study"):
        restore(sqlite_context, result.path, tmp_path / "x", [identity], reason="r", for_study="ghost")


def tampered(path, change):
    data = bytearray(path.read_bytes())
    change(data)
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("how, message", [
    ("header", "cannot be decrypted"),
    ("chunk", "damaged at chunk 1"),
    ("drop-last", "damaged at chunk"),
    ("swap", "damaged at chunk 0"),
])
def test_each_tampering_is_detected_and_restores_nothing(sqlite_context, archived, tmp_path, how, message):
    result, identity, _ = archived
    copy = tmp_path / "copy.tar.zst.age"
    shutil.copy(result.path, copy)  # no envelope beside it: the age layer must catch it on its own
    data = copy.read_bytes()
    start = payload_start(data)

    def change(buffer: bytearray) -> None:
        if how == "header":
            buffer[30] ^= 0x01
        elif how == "chunk":
            buffer[start + ENCRYPTED_CHUNK + 100] ^= 0x01
        elif how == "drop-last":
            last = start + ((len(buffer) - start - 1) // ENCRYPTED_CHUNK) * ENCRYPTED_CHUNK
            del buffer[last:]
        else:
            first, second = bytes(buffer[start:start + ENCRYPTED_CHUNK]), \
                bytes(buffer[start + ENCRYPTED_CHUNK:start + 2 * ENCRYPTED_CHUNK])
            buffer[start:start + 2 * ENCRYPTED_CHUNK] = second + first

    tampered(copy, change)
    destination = tmp_path / "restored"
    with pytest.raises(RestoreError, match=message):
        restore(sqlite_context, copy, destination, [identity], reason="tamper test")
    assert_nothing_restored(destination)
    assert sqlite_context.audit.entries(action="archive.restore-failed")[-1].detail["reason"] == "tamper test"


def test_envelope_catches_a_changed_archive_and_a_forged_envelope(sqlite_context, archived, tmp_path):
    result, identity, _ = archived
    envelope = json.loads(result.envelope_path.read_text())
    envelope["size"] += 1
    result.envelope_path.write_text(json.dumps(envelope))
    with pytest.raises(RestoreError, match="no valid signature"):
        restore(sqlite_context, result.path, tmp_path / "a", [identity], reason="r")
    assert_nothing_restored(tmp_path / "a")


def reencrypt_with(path, identity, recipient, edit_members):
    """What someone holding the archive key could do: decrypt, change members, re-encrypt (cannot re-sign)."""
    from .test_snapshot import decrypt_tar_members

    members = decrypt_tar_members(path, identity)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, value in edit_members(members):
            if isinstance(value, bytes):
                info = tarfile.TarInfo(name)
                info.size = len(value)
                tar.addfile(info, io.BytesIO(value))
            else:
                tar.addfile(value)
    out = path.with_name("forged.tar.zst.age")
    with open(out, "wb") as raw, AgeWriter(raw, [recipient]) as writer:
        writer.write(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    return out


def test_a_member_changed_by_a_key_holder_fails_the_signed_manifest(sqlite_context, archived, tmp_path):
    result, identity, study = archived
    target = f"{study.slug}/shared/results/table.csv"

    def edit(members):
        for name, value in members.items():
            yield name, (b"age,count\n40-49,999\n" if name == target else value)

    forged = reencrypt_with(result.path, identity, identity.recipient(), edit)
    with pytest.raises(RestoreError, match="shared/results/table.csv.*does not match the sha256"):
        restore(sqlite_context, forged, tmp_path / "r", [identity], reason="r")
    assert_nothing_restored(tmp_path / "r")
    failure = sqlite_context.audit.entries(action="archive.restore-failed")[-1]
    assert "table.csv" not in json.dumps(failure.detail)  # researchers' file names stay out of the audit log

    def add(members):
        yield from members.items()  # the manifest stays last only if nothing comes after it

    def extra(members):
        items = list(members.items())
        yield from items[:-1]
        yield f"{study.slug}/shared/planted.txt", b"planted"
        yield items[-1]

    forged = reencrypt_with(result.path, identity, identity.recipient(), extra)
    with pytest.raises(RestoreError, match="planted.txt' is not in the signed manifest"):
        restore(sqlite_context, forged, tmp_path / "r", [identity], reason="r")

    def unsigned(members):
        for name, value in members.items():
            if name.endswith("archive-manifest.json"):
                document = json.loads(value)
                document["members"] = [m for m in document["members"] if not m["path"].endswith("table.csv")]
                value = json.dumps(document).encode()
            yield name, value

    forged = reencrypt_with(result.path, identity, identity.recipient(), unsigned)
    with pytest.raises(RestoreError, match="no valid signature"):
        restore(sqlite_context, forged, tmp_path / "r", [identity], reason="r")
    assert_nothing_restored(tmp_path / "r")


def crafted_archive(tmp_path, recipient, build):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        build(tar)
    path = tmp_path / "crafted.tar.zst.age"
    with open(path, "wb") as raw, AgeWriter(raw, [recipient]) as writer:
        writer.write(zstandard.ZstdCompressor().compress(buffer.getvalue()))
    return path


def _dir(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE
    tar.addfile(info)


def _file(tar, name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _link(tar, name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    tar.addfile(info)


def _device(tar, name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.CHRTYPE
    info.devmajor, info.devminor = 1, 3
    tar.addfile(info)


@pytest.mark.parametrize("build, message", [
    (lambda t: (_dir(t, "s"), _file(t, "s/../../escaped.txt")), "'..' path component"),
    (lambda t: (_dir(t, "s"), _file(t, "/tmp/absolute-escape.txt")), "absolute path"),
    (lambda t: (_dir(t, "s"), _link(t, "s/out", "/etc/passwd")), "absolute path"),
    (lambda t: (_dir(t, "s"), _link(t, "s/out", "../../etc")), "points outside"),
    (lambda t: (_dir(t, "s"), _dir(t, "s/d"), _link(t, "s/d/up", ".."), _link(t, "s/chain", "d/up/../..")),
     "leads outside the archive through other links"),
    (lambda t: (_dir(t, "s"), _link(t, "s/out", "x"), _file(t, "s/out/through-link.txt")),
     "before its folder"),
    (lambda t: (_dir(t, "s"), _device(t, "s/null")), "device"),
    (lambda t: (_dir(t, "s"), _file(t, "s/a"), _link(t, "s/hard", "s/a", tarfile.LNKTYPE)), "hard link"),
    (lambda t: (_dir(t, "s"), _file(t, "other/x")), "outside the archive's folder"),
    (lambda t: (_dir(t, "s"), _file(t, "s/a"), _file(t, "s/a")), "appears twice"),
    (lambda t: (_dir(t, "s"), _file(t, "s/a")), "no signed manifest"),
])
def test_crafted_members_are_refused_with_nothing_written_outside_staging(sqlite_context, tmp_path, build,
                                                                          message):
    identity = X25519Identity.generate()
    path = crafted_archive(tmp_path, identity.recipient(), build)
    work = tmp_path / "work"
    work.mkdir()
    home = sqlite_context.home

    def files_outside_the_hub_home():
        return {p for p in tmp_path.rglob("*") if home not in p.parents}

    before = files_outside_the_hub_home()
    with pytest.raises(RestoreError, match=message):
        restore(sqlite_context, path, work / "restored", [identity], reason="crafted")
    assert files_outside_the_hub_home() == before
    assert not os.path.exists("/tmp/absolute-escape.txt")


def test_wrong_identity_destination_and_reason_are_refused(sqlite_context, archived, tmp_path):
    result, identity, _ = archived
    with pytest.raises(RestoreError, match="cannot be decrypted"):
        restore(sqlite_context, result.path, tmp_path / "r", [X25519Identity.generate()], reason="r")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    with pytest.raises(RestoreError, match="not an empty folder"):
        restore(sqlite_context, result.path, busy, [identity], reason="r")
    assert (busy / "keep.txt").read_text() == "mine"
    with pytest.raises(RestoreError, match="reason is required"):
        restore(sqlite_context, result.path, tmp_path / "r", [identity], reason=" ")
    empty = tmp_path / "empty"
    empty.mkdir()
    restore(sqlite_context, result.path, empty, [identity], reason="into an empty folder")
    assert (empty / "extract.duckdb").exists()


def test_restored_extract_is_a_working_duckdb_file(sqlite_context, archived, tmp_path):
    import duckdb

    result, identity, _ = archived
    restore(sqlite_context, result.path, tmp_path / "r", [identity], reason="check")
    with duckdb.connect(str(tmp_path / "r" / "extract.duckdb"), read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM person").fetchone() == (1000,)
    digest = hashlib.sha256((tmp_path / "r" / "extract.duckdb").read_bytes()).hexdigest()
    assert digest == hashlib.sha256(archived[2].files["extract.duckdb"]).hexdigest()
