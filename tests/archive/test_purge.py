"""Purge after retention: crypto-shredding, a signed deletion certificate, refusals, re-runs."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil

import pytest

from bubble_manager.archive.keys import KeyStoreError, ensure_study_keys, study_keys_dir, study_share_files
from bubble_manager.archive.manifest import CERTIFICATE_FORMAT, verify
from bubble_manager.archive.purge import PurgeError, purge
from bubble_manager.archive.snapshot import snapshot
from bubble_manager.operations import StudyOperations
from bubble_manager.store import ArchiveRow
from bubble_manager.studies import State, TransitionError

from .conftest import ADMIN, UTC, make_study, write_study_files


@pytest.fixture
def archived_study(sqlite_context, custodians, frozen_clock):
    slug = make_study(sqlite_context, frozen_clock)
    files = write_study_files(sqlite_context, slug)
    files.paths.vault.write_bytes(b"age-encryption.org/v1 stand-in vault")
    first = snapshot(sqlite_context, slug, actor="reconciler")
    second = snapshot(sqlite_context, slug, actor="reconciler")
    make_study_archived(sqlite_context, frozen_clock, slug)
    return slug, files, [first, second]


def make_study_archived(context, clock_, slug):
    from bubble_manager import studies

    ops = StudyOperations(context)
    clock_.set(dt.datetime(2027, 6, 1, 8, 0, tzinfo=UTC))
    ops.transition(ADMIN, slug, studies.Expire())
    ops.transition(ADMIN, slug, studies.Archive())


def test_purge_before_retention_is_refused_and_destroys_nothing(sqlite_context, archived_study, frozen_clock):
    slug, files, archives = archived_study
    with pytest.raises(TransitionError, match="must be kept until"):
        purge(sqlite_context, slug, actor="admin")
    assert all(a.path.exists() for a in archives)
    assert study_keys_dir(sqlite_context.home, slug).exists() and files.paths.vault.exists()


def test_purge_shreds_keys_vault_and_archives_and_leaves_a_signed_certificate(sqlite_context, archived_study,
                                                                              frozen_clock, tmp_path):
    slug, files, archives = archived_study
    stray_copy = tmp_path / "stray-copy.tar.zst.age"  # a copy someone kept elsewhere
    shutil.copy(archives[0].path, stray_copy)
    share_files = [s["path"] for s in study_share_files(sqlite_context.home, slug)]
    frozen_clock.set(dt.datetime(2037, 6, 2, 8, 0, tzinfo=UTC))  # ten years (the default retention) later
    result = purge(sqlite_context, slug, actor="admin")
    assert StudyOperations(sqlite_context).get(slug).state is State.purged
    assert not study_keys_dir(sqlite_context.home, slug).exists()
    assert not any(os.path.exists(p) for p in share_files)
    assert not files.paths.root.exists()
    folder = archives[0].path.parent
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lock") == ["deletion-certificate.json"]
    certificate = verify(json.loads(result.certificate.read_text()), sqlite_context.verifier(), CERTIFICATE_FORMAT,
                         "certificate")
    assert certificate["study"] == slug and certificate["purged_by"] == "admin"
    assert [a["sha256"] for a in certificate["archives"]] == [a.sha256 for a in archives]
    assert certificate["destroyed"]["vault"] is True and certificate["destroyed"]["key_files"] >= 5
    with sqlite_context.store.transaction() as session:
        assert {r.state for r in session.query(ArchiveRow)} == {"purged"}
    entry = sqlite_context.audit.entries(action="archive.purged")[-1]
    assert entry.detail["archives"][0]["sha256"] == archives[0].sha256
    # The stray copy is still there but nothing can open it any more: no shares, and keys are never remade.
    assert stray_copy.exists()
    with pytest.raises(KeyStoreError, match="purged"):
        ensure_study_keys(sqlite_context, slug)
    # A re-run (after an interrupted purge) finishes and keeps the first certificate.
    again = purge(sqlite_context, slug, actor="admin")
    assert again.key_files == 0
    assert len(list(folder.glob("deletion-certificate.json*"))) == 2


def test_purge_refuses_live_and_unknown_studies(sqlite_context, custodians, frozen_clock):
    slug = make_study(sqlite_context, frozen_clock)
    with pytest.raises(PurgeError, match="is active: only archived studies"):
        purge(sqlite_context, slug, actor="admin")
    with pytest.raises(PurgeError, match="no study"):
        purge(sqlite_context, "ghost", actor="admin")
