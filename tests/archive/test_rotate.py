"""Rotation of a study's archives to a hybrid post-quantum archive key (bubble_manager.archive.rotate).

Real snapshots, real custodian shares (SLIP-39, age-encrypted to the custodians), real store rows,
envelopes and audit entries. The archived study starts with X25519 keys (as sites that opted out of
hybrid keys, or archives made before hybrid keys were the default, have them).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pytest
from sqlalchemy import select

from bubble_manager.archive import keys as key_store
from bubble_manager.archive import rotate
from bubble_manager.archive.age import (AgeReader, HybridIdentity, NoIdentityMatched, X25519Identity,
                                        encrypt_file, read_header)
from bubble_manager.archive.keys import (decrypt_share, destroy_live_key, ensure_study_keys,
                                         load_study_keys, recover_archive_identity, study_recipients,
                                         study_share_files)
from bubble_manager.archive.rotate import (HYBRID_ENCRYPTION, PostQuantumSettings, RotationError,
                                           hybrid_key_store_gap, new_identity, rotate_to_pq)
from bubble_manager.archive.shares import ShareError
from bubble_manager.archive.snapshot import envelope_path_for, snapshot, verify_envelope
from bubble_manager.runtime.spec import StudyPaths
from bubble_manager.store import ArchiveRow

from .conftest import make_study


@pytest.fixture
def hybrid_key_store():
    """The key store holds hybrid archive keys (keys.py parses any age recipient)."""
    assert hybrid_key_store_gap() is None


def write_workspace(context, slug: str) -> dict[str, bytes]:
    paths = StudyPaths(context.home, slug)
    files = {"notes.md": b"# notes\n" * 500, "data.bin": os.urandom(200_000)}
    workspace = paths.workspace("alice")
    workspace.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (workspace / name).write_bytes(data)
    return files


def write_vault(context, slug: str) -> bytes:
    """A stand-in vault: any age file encrypted to the study's live and archive keys, as vault.py does."""
    paths = StudyPaths(context.home, slug)
    plain = paths.root / "vault.plain"
    content = json.dumps({"P-0001": 17, "P-0002": 42}).encode()
    plain.write_bytes(content)
    encrypt_file(plain, paths.vault, study_recipients(context, slug))
    plain.unlink()
    return content


def decrypted_shares(context, slug: str, kits, count: int = 2) -> list[str]:
    files = {s["custodian"]: s["path"] for s in study_share_files(context.home, slug)}
    return [decrypt_share(Path(files[kit.name]), kit.identity_file).to_text() for kit in kits[:count]]


def decrypt(path: Path, identities) -> bytes:
    with open(path, "rb") as raw, AgeReader(raw, identities) as reader:
        data = reader.read()
    return data


def payload(path: Path) -> bytes:
    data = path.read_bytes()
    return data[read_header(io.BytesIO(data)).size:]


@pytest.fixture
def archived_study(sqlite_context, custodians, frozen_clock):
    """An archived study with two X25519 archives, a vault and its live key destroyed (what rotation moves)."""
    sqlite_context.settings.config.PostQuantumSettings.archive_key_type = "x25519"
    slug = make_study(sqlite_context, frozen_clock, state="expired")
    write_workspace(sqlite_context, slug)
    ensure_study_keys(sqlite_context, slug)
    vault = write_vault(sqlite_context, slug)
    first = snapshot(sqlite_context, slug, actor="admin")
    (StudyPaths(sqlite_context.home, slug).workspace("alice") / "late.txt").write_bytes(b"added later\n")
    second = snapshot(sqlite_context, slug, actor="admin")
    destroy_live_key(sqlite_context, slug)
    old_identity = recover_archive_identity(None, slug, decrypted_shares(sqlite_context, slug, custodians))
    return {"slug": slug, "archives": [first.path, second.path], "vault": vault, "old_identity": old_identity,
            "old_bytes": {p: p.read_bytes() for p in (first.path, second.path)}}


def actions(context, slug):
    return [entry.action for entry in context.audit.entries(study=slug)]


# --- the full rotation -----------------------------------------------------------------------------

def test_rotation_moves_archives_and_vault_to_a_hybrid_key(sqlite_context, custodians, archived_study,
                                                          hybrid_key_store):
    slug, old_identity = archived_study["slug"], archived_study["old_identity"]
    shares_before = decrypted_shares(sqlite_context, slug, custodians)
    result = rotate_to_pq(sqlite_context, slug, shares_before, progress=False, actor="ops", reason="20-year retention")
    assert sorted(result.rotated) == [1, 2] and result.already_rotated == [] and result.vault == "rotated"
    keys = load_study_keys(sqlite_context.home, slug)
    assert keys.archive_recipient.to_string() == result.new_recipient.strip()
    assert result.new_recipient.startswith("age1pq1") and result.old_recipient.startswith("age1")

    # The custodians' new shares, decrypted with their own (unchanged) identities, rebuild the new key.
    new_identity = recover_archive_identity(sqlite_context, slug, decrypted_shares(sqlite_context, slug, custodians))
    assert isinstance(new_identity, HybridIdentity)
    assert new_identity.recipient() == keys.archive_recipient
    with pytest.raises(ShareError):
        recover_archive_identity(sqlite_context, slug, decrypted_shares(sqlite_context, slug, custodians[:1]))

    for path in archived_study["archives"]:
        old = archived_study["old_bytes"][path]
        assert [s.type for s in read_header(open(path, "rb")).stanzas] == ["mlkem768x25519"]
        assert payload(path) == old[read_header(io.BytesIO(old)).size:]  # header only
        plaintext = decrypt(path, [new_identity])
        assert plaintext.startswith(b"(\xb5/\xfd")  # a zstd frame: the tar.zst inside is untouched
        with pytest.raises(NoIdentityMatched):
            decrypt(path, [old_identity])
        document = verify_envelope(sqlite_context.verifier(), path)
        assert document["encryption"] == HYBRID_ENCRYPTION and "rotated_at" in document
        with sqlite_context.store.transaction() as session:
            row = session.scalar(select(ArchiveRow).where(ArchiveRow.path == str(path)))
            assert (row.sha256, row.size) == (document["sha256"], document["size"]) == (
                document["sha256"], path.stat().st_size)
    vault = StudyPaths(sqlite_context.home, slug).vault
    assert decrypt(vault, [new_identity]) == archived_study["vault"]
    with pytest.raises(NoIdentityMatched):
        decrypt(vault, [old_identity])

    # Old shares are kept (retired), nothing is left staged, and every step is in the audit log.
    folder = key_store.study_keys_dir(sqlite_context.home, slug)
    assert not (folder / rotate.ROTATION_DIR).exists()
    (retired,) = (folder / rotate.RETIRED_DIR).iterdir()
    assert sorted(p.name for p in retired.iterdir()) == sorted(
        p.name for p in (folder / "shares").iterdir())
    record = json.loads((folder / key_store.RECORD_NAME).read_text())
    assert record["previous_archive_recipients"][0]["recipient"] == result.old_recipient
    log = actions(sqlite_context, slug)
    assert {"keys.recovered", "keys.rotation-started", "vault.rotated", "keys.rotated"} <= set(log)
    assert log.count("archive.rotated") == 2

    # New archives use the hybrid key; a second rotation has nothing to do.
    third = snapshot(sqlite_context, slug, actor="admin")
    assert [s.type for s in read_header(open(third.path, "rb")).stanzas] == ["mlkem768x25519"]
    assert decrypt(third.path, [new_identity]).startswith(b"(\xb5/\xfd")
    with pytest.raises(RotationError, match="already post-quantum"):
        rotate_to_pq(sqlite_context, slug, decrypted_shares(sqlite_context, slug, custodians), progress=False)


def test_a_rotation_cut_short_is_finished_by_running_it_again(sqlite_context, custodians, archived_study,
                                                             hybrid_key_store, monkeypatch):
    slug = archived_study["slug"]
    old_shares = decrypted_shares(sqlite_context, slug, custodians)
    real_commit = rotate._commit_pair

    def crash_between_renames(context, slug_, number, path, temp, envelope_temp, *args):
        if number == 1:
            return real_commit(context, slug_, number, path, temp, envelope_temp, *args)
        os.rename(temp, path)  # archive 2 renamed, then the process "dies" before its envelope
        raise KeyboardInterrupt

    monkeypatch.setattr(rotate, "_commit_pair", crash_between_renames)
    with pytest.raises(KeyboardInterrupt):
        rotate_to_pq(sqlite_context, slug, old_shares, progress=False)
    monkeypatch.setattr(rotate, "_commit_pair", real_commit)
    # The key record still names the old key; the new one is staged; archive 2 has a stale envelope.
    assert not load_study_keys(sqlite_context.home, slug).archive_recipient.to_string().startswith("age1pq")
    assert (key_store.study_keys_dir(sqlite_context.home, slug) / rotate.ROTATION_DIR / rotate.PENDING_NAME).exists()
    second = archived_study["archives"][1]
    assert envelope_path_for(second).with_name(f".{envelope_path_for(second).name}.rotating").exists()

    result = rotate_to_pq(sqlite_context, slug, old_shares, progress=False)  # the same quorum, again
    assert result.resumed and result.already_rotated == [1] and result.rotated == [2]
    new_identity = recover_archive_identity(sqlite_context, slug, decrypted_shares(sqlite_context, slug, custodians))
    for path in archived_study["archives"]:
        verify_envelope(sqlite_context.verifier(), path)
        assert decrypt(path, [new_identity]).startswith(b"(\xb5/\xfd")
    assert [p.name for p in second.parent.iterdir() if p.name.endswith(".rotating")] == []


# --- refusals leave everything as it was -------------------------------------------------------------

def unchanged(archived_study, context) -> bool:
    same_files = all(p.read_bytes() == b for p, b in archived_study["old_bytes"].items())
    folder = key_store.study_keys_dir(context.home, archived_study["slug"])
    return same_files and not (folder / rotate.ROTATION_DIR).exists()


def test_too_few_or_foreign_shares_change_nothing(sqlite_context, custodians, archived_study, hybrid_key_store):
    slug = archived_study["slug"]
    with pytest.raises(ShareError, match="2 needed"):
        rotate_to_pq(sqlite_context, slug, decrypted_shares(sqlite_context, slug, custodians, 1), progress=False)
    with pytest.raises(ShareError):
        rotate_to_pq(sqlite_context, slug, ["not a share"], progress=False)
    assert unchanged(archived_study, sqlite_context)
    assert "keys.recover-refused" in actions(sqlite_context, slug)


def test_an_archive_that_no_longer_matches_its_envelope_stops_the_rotation(sqlite_context, custodians,
                                                                          archived_study, hybrid_key_store):
    slug = archived_study["slug"]
    first, second = archived_study["archives"]
    damaged = bytearray(second.read_bytes())
    damaged[-100] ^= 1
    second.write_bytes(bytes(damaged))
    with pytest.raises(RotationError, match="archive 2 .* does not match its signed envelope"):
        rotate_to_pq(sqlite_context, slug, decrypted_shares(sqlite_context, slug, custodians), progress=False)
    assert second.read_bytes() == bytes(damaged)  # untouched
    assert not load_study_keys(sqlite_context.home, slug).archive_recipient.to_string().startswith("age1pq")
    # Once the archive is restored from a copy, the same quorum finishes the job.
    second.write_bytes(archived_study["old_bytes"][second])
    result = rotate_to_pq(sqlite_context, slug, decrypted_shares(sqlite_context, slug, custodians), progress=False)
    assert result.already_rotated == [1] and result.rotated == [2]


def test_a_running_study_with_a_classical_live_key_is_refused(sqlite_context, custodians, frozen_clock,
                                                             hybrid_key_store):
    sqlite_context.settings.config.PostQuantumSettings.archive_key_type = "x25519"
    slug = make_study(sqlite_context, frozen_clock, state="active")
    write_workspace(sqlite_context, slug)
    ensure_study_keys(sqlite_context, slug)
    write_vault(sqlite_context, slug)
    archive = snapshot(sqlite_context, slug, actor="admin").path
    before = archive.read_bytes()
    with pytest.raises(RotationError, match="classical .* live key"):
        rotate_to_pq(sqlite_context, slug, decrypted_shares(sqlite_context, slug, custodians), progress=False)
    assert archive.read_bytes() == before
    assert "keys.recovered" not in actions(sqlite_context, slug)


# --- CLI and settings ------------------------------------------------------------------------------

def test_keys_rotate_cli(bm_home, sqlite_context, custodians, archived_study, hybrid_key_store, tmp_path,
                         capsys, monkeypatch):
    from bubble_manager.cli import main

    slug = archived_study["slug"]
    share_files = []
    for number, text in enumerate(decrypted_shares(sqlite_context, slug, custodians), start=1):
        share_files += ["--share", str(tmp_path / f"{number}.share")]
        (tmp_path / f"{number}.share").write_text(text)
    code = main(["--home", str(bm_home), "keys", "rotate", "--pq", slug, share_files[0], share_files[1],
                 "--actor", "ops", "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2 and "2 needed" in err
    code = main(["--home", str(bm_home), "--json", "keys", "rotate", "--pq", slug, *share_files, "--actor", "ops",
                 "--no-progress", "--reason", "retention"])
    out, err = capsys.readouterr()
    assert code == 0, err
    report = json.loads(out)
    assert sorted(report["rotated"]) == [1, 2] and report["new_recipient"].startswith("age1pq1")
    entry = [e for e in sqlite_context.audit.entries(study=slug) if e.action == "keys.rotated"][-1]
    assert entry.actor == "ops"


def test_settings_default_to_hybrid_and_can_go_back_to_x25519(bm_home):
    from traitlets import TraitError
    from traitlets.config import Config

    assert PostQuantumSettings().archive_key_type == "mlkem768x25519"
    config = Config()
    config.PostQuantumSettings.archive_key_type = "x25519"
    settings = PostQuantumSettings(config=config)
    assert isinstance(new_identity(settings.archive_key_type), X25519Identity)
    assert isinstance(new_identity(PostQuantumSettings().archive_key_type), HybridIdentity)
    config.PostQuantumSettings.archive_key_type = "rsa"
    with pytest.raises(TraitError):
        PostQuantumSettings(config=config)
