"""Archive fixtures: custodians with real age identities, studies in the store, fixture workspaces."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from bubble_manager import studies
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


@pytest.fixture
def custodians(sqlite_context, tmp_path) -> list[CustodianKit]:
    """Three custodians registered with the hub, each with an identity file of their own."""
    kits = []
    for name in ("ada", "bert", "chloe"):
        identity = X25519Identity.generate()
        path = tmp_path / "custodians" / f"{name}.key"
        path.parent.mkdir(exist_ok=True)
        path.write_text(f"# {name}\n{identity.to_string()}\n")
        path.chmod(0o600)
        add_custodian(sqlite_context, name, identity.recipient().to_string(), actor="admin")
        kits.append(CustodianKit(name, identity, path))
    return kits


@pytest.fixture
def study_paths(sqlite_context) -> callable:
    return lambda slug: StudyPaths(sqlite_context.home, slug)
