"""Archive fixtures: custodians with real age identities, studies in the store, fixture workspaces."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from bubble_manager import studies
from bubble_manager.airlock.ledger import LEDGER_NAME
from bubble_manager.archive.age import X25519Identity
from bubble_manager.archive.keys import add_custodian
from bubble_manager.operations import StudyOperations
from bubble_manager.runtime.spec import StudyPaths
from bubble_manager.studies import Actor

UTC = dt.timezone.utc
CAROL = Actor("carol", frozenset({"researcher"}))
SAM = Actor("sam", frozenset({"steward"}))
ADMIN = Actor("admin", frozenset({"admin"}))
ARCHIVE_CONFIG = "c.ArchiveSettings.custodian_threshold = 2\n"


def study_document(slug: str = "t2d-statins", members=("alice", "bob")) -> dict:
    return {
        "title": "Type 2 diabetes and statins", "slug": slug,
        "purpose": "Describe statin exposure in adults with type 2 diabetes.",
        "legal_basis": "public-interest research, MR-004", "members": list(members),
        "starts": "2026-12-01", "ends": "2027-05-31",
        "data": {"person": ["person_id", "birth_date"], "condition_occurrence": ["person_id", "condition_concept_id"]},
        "cohort": "SELECT DISTINCT person_id FROM condition_occurrence WHERE condition_concept_id = 201826",
    }


def make_study(context, clock_, slug: str = "t2d-statins", state: str = "active") -> str:
    """Create `slug` in the store and move it to `state` (approved, active, expired, archived)."""
    ops = StudyOperations(context)
    clock_.set(dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC))
    ops.request(CAROL, study_document(slug))
    ops.submit(CAROL, slug)
    ops.approve(SAM, slug)
    if state == "approved":
        return slug
    clock_.set(dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC))
    ops.activate(ADMIN, slug)
    if state == "active":
        return slug
    clock_.set(dt.datetime(2027, 6, 1, 8, 0, tzinfo=UTC))
    ops.transition(ADMIN, slug, studies.Expire())
    if state == "expired":
        return slug
    ops.transition(ADMIN, slug, studies.Archive())
    assert state == "archived", state
    return slug


@dataclass
class CustodianKit:
    name: str
    identity: X25519Identity
    identity_file: Path


def register_custodians(context, folder: Path) -> list[CustodianKit]:
    kits = []
    folder.mkdir(exist_ok=True)
    for name in ("ada", "bert", "chloe"):
        identity = X25519Identity.generate()
        path = folder / f"{name}.key"
        path.write_text(f"# {name}\n{identity.to_string()}\n")
        path.chmod(0o600)
        add_custodian(context, name, identity.recipient().to_string(), actor="admin")
        kits.append(CustodianKit(name, identity, path))
    return kits


@pytest.fixture
def custodians(sqlite_context, tmp_path) -> list[CustodianKit]:
    """Three custodians registered with the hub, each with an identity file of their own."""
    return register_custodians(sqlite_context, tmp_path / "custodians")


@pytest.fixture
def custodians_pg(context, tmp_path) -> list[CustodianKit]:
    """The same, registered through the `context` fixture (SQLite and real PostgreSQL)."""
    return register_custodians(context, tmp_path / "custodians")


@pytest.fixture
def classic_keys(sqlite_context):
    """Study keys made as X25519 (`c.PostQuantumSettings.archive_key_type = "x25519"`), which Debian 12's
    age 1.1.1 reads; the default, hybrid ML-KEM-768 + X25519, needs age 1.3 (docs/post-quantum.md)."""
    sqlite_context.settings.config.PostQuantumSettings.archive_key_type = "x25519"
    return sqlite_context


@pytest.fixture
def study_paths(sqlite_context) -> callable:
    return lambda slug: StudyPaths(sqlite_context.home, slug)


@dataclass
class StudyFiles:
    slug: str
    paths: StudyPaths
    files: dict[str, bytes]  # archive path under the study folder -> content


def write_study_files(context, slug: str, *, random_bytes: int = 256 * 1024) -> StudyFiles:
    """An extract (a real DuckDB file), its manifest, two members' workspaces and the shared folder."""
    import duckdb

    paths = StudyPaths(context.home, slug)
    paths.root.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(paths.extract)) as connection:
        connection.execute("CREATE TABLE person AS SELECT 'P' || range AS pseudonym, range % 90 AS age "
                           "FROM range(1000)")
    paths.manifest.write_text('{"study": "%s", "signed": "fixture"}\n' % slug)
    files: dict[str, bytes] = {}
    alice, bob = paths.workspace("alice"), paths.workspace("bob")
    for folder in (alice / "notebooks", bob, paths.shared / "results"):
        folder.mkdir(parents=True, exist_ok=True)
    contents = {
        alice / "notebooks" / "analysis.ipynb": b'{"cells": []}\n',
        alice / "data.bin": os.urandom(random_bytes),
        alice / "résumé €.txt": "non-ASCII names survive\n".encode(),
        bob / "notes.md": b"# notes\n" * 1000,
        paths.shared / "results" / "table.csv": b"age,count\n40-49,12\n",
    }
    for path, data in contents.items():
        path.write_bytes(data)
        files[str(path.relative_to(paths.root))] = data
    (alice / "empty-folder").mkdir()
    os.symlink("notebooks/analysis.ipynb", alice / "latest.ipynb")
    files[str(paths.extract.relative_to(paths.root))] = paths.extract.read_bytes()
    files["manifest.json"] = paths.manifest.read_bytes()
    (paths.root / LEDGER_NAME).write_text('{"format": "bubble-manager-disclosure-ledger/1", "requests": []}\n')
    files[LEDGER_NAME] = (paths.root / LEDGER_NAME).read_bytes()
    return StudyFiles(slug, paths, files)


def recovered_identity(context, slug: str, kits) -> X25519Identity:
    from bubble_manager.archive.keys import decrypt_share, recover_archive_identity, study_share_files

    files = {s["custodian"]: s["path"] for s in study_share_files(context.home, slug)}
    texts = [decrypt_share(files[kit.name], kit.identity_file).to_text() for kit in kits[:2]]
    return recover_archive_identity(None, slug, texts)


@pytest.fixture
def active_study(sqlite_context, custodians, frozen_clock) -> StudyFiles:
    slug = make_study(sqlite_context, frozen_clock)
    return write_study_files(sqlite_context, slug)
