"""Extract fixtures: one demo warehouse per test session, homes that use it, approved studies,
custodians with real age identities, and built extracts shared by the tests of a module."""

from __future__ import annotations

import datetime as dt
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from bubble_manager import clock
from bubble_manager.archive.age import X25519Identity
from bubble_manager.archive.keys import add_custodian, load_live_identity
from bubble_manager.config import load_settings
from bubble_manager.extract.build import BuildResult, build_extract
from bubble_manager.extract.demo_warehouse import build_demo_warehouse
from bubble_manager.extract.vault import Vault, read_vault
from bubble_manager.operations import Context, StudyOperations
from bubble_manager.runtime.spec import StudyPaths
from bubble_manager.signing import init_signing_key
from bubble_manager.studies import Actor

from ..conftest import MovableClock

UTC = dt.timezone.utc
DEMO_CATALOG = Path(__file__).resolve().parents[2] / "bubble_manager" / "data" / "demo_catalog.yaml"
PERSONS = 3000
CAROL = Actor("carol", frozenset({"researcher"}))
SAM = Actor("sam", frozenset({"steward"}))
ADMIN = Actor("admin", frozenset({"admin"}))
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
STARTED = dt.datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
CONFIG = """c.ArchiveSettings.custodian_threshold = 2
c.ExtractSettings.cohort_timeout_seconds = 30
c.ExtractSettings.build_memory_limit = "512MB"
c.ExtractSettings.build_threads = 2
"""

FULL_DATA = {
    "person": ["person_id", "gender_concept_id", "birth_date", "postcode", "gender_source_value"],
    "visit_occurrence": ["visit_occurrence_id", "person_id", "visit_concept_id", "visit_start_date", "visit_end_date",
                         "care_site_id", "visit_source_value"],
    "condition_occurrence": ["condition_occurrence_id", "person_id", "condition_concept_id", "condition_start_date",
                             "condition_end_date", "visit_occurrence_id", "condition_source_value"],
    "drug_exposure": ["drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date",
                      "drug_exposure_end_date", "quantity", "visit_occurrence_id", "drug_source_value"],
    "measurement": ["measurement_id", "person_id", "measurement_concept_id", "measurement_date", "value_as_number",
                    "unit_concept_id", "visit_occurrence_id", "measurement_source_value"],
    "note": ["note_id", "person_id", "note_date", "note_type_concept_id", "visit_occurrence_id"],
}
EVERYONE = "SELECT person_id FROM person"


def study_document(slug: str, data: dict[str, list[str]] | None = None, cohort: str = EVERYONE,
                   members: tuple[str, ...] = ("alice", "bob")) -> dict[str, Any]:
    return {
        "title": f"Extract test {slug}", "slug": slug,
        "purpose": "Exercise the extract builder on the synthetic demo warehouse.",
        "legal_basis": "public-interest research, MR-004", "members": list(members),
        "starts": "2026-12-01", "ends": "2027-05-31",
        "data": data or FULL_DATA, "cohort": cohort,
    }


def approve_study(context: Context, slug: str, *, data: dict | None = None, cohort: str = EVERYONE,
                  free_text: tuple[str, ...] = ()) -> str:
    """Request, submit and approve `slug` (the clock must stand before 2026-12-01)."""
    operations = StudyOperations(context)
    operations.request(CAROL, study_document(slug, data, cohort))
    operations.submit(CAROL, slug)
    operations.approve(SAM, slug, include_free_text=free_text)
    return slug


@dataclass
class Custodian:
    name: str
    identity: X25519Identity


def make_home(root: Path, warehouse: Path) -> Path:
    """A bubble-manager home whose warehouse is `warehouse` (a link), with keys and a config."""
    home = root / "home"
    (home / "warehouse").mkdir(parents=True)
    shutil.copy(DEMO_CATALOG, home / "warehouse" / "warehouse.catalog.yaml")
    (home / "warehouse" / "warehouse.duckdb").symlink_to(warehouse)
    (home / "bubble_manager_config.py").write_text(CONFIG)
    init_signing_key(home)
    return home


def open_context(home: Path, db_url: str | None = None) -> Context:
    return Context.open(load_settings(home, db_url=db_url))


def register_custodians(context: Context) -> list[Custodian]:
    found = []
    for name in ("ada", "bert", "chloe"):
        identity = X25519Identity.generate()
        add_custodian(context, name, identity.recipient().to_string(), actor="admin")
        found.append(Custodian(name, identity))
    return found


@pytest.fixture(scope="session")
def demo_warehouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3000-person demo warehouse, built once per session; never written to by tests."""
    path = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    build_demo_warehouse(path, PERSONS, seed=11, progress=False)
    path.chmod(0o444)
    return path


@pytest.fixture
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> MovableClock:
    """The clock stands on 2026-11-23, before the test studies start (2026-12-01)."""
    fake = MovableClock(NOW)
    monkeypatch.setattr(clock, "utcnow", fake)
    return fake


@pytest.fixture
def extract_context(tmp_path: Path, demo_warehouse: Path, fixed_clock):
    """A SQLite-backed context over the session warehouse, with three custodians (2 of 3)."""
    context = open_context(make_home(tmp_path, demo_warehouse))
    context.extras["custodians"] = register_custodians(context)
    yield context
    context.close()


@dataclass
class Built:
    """An extract built once for a test module, with what the tests need to check it."""

    context: Context
    slug: str
    result: BuildResult
    paths: StudyPaths
    warehouse: Path
    vault: Vault
    custodians: list[Custodian]


def build_for_module(tmp_path_factory: pytest.TempPathFactory, warehouse: Path, slug: str, **study: Any) -> Built:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(clock, "utcnow", lambda: NOW)
        context = open_context(make_home(tmp_path_factory.mktemp(slug), warehouse))
        custodians = register_custodians(context)
        approve_study(context, slug, **study)
        result = build_extract(context, ADMIN, slug)
        paths = StudyPaths(context.home, slug)
        vault = read_vault(paths.vault, slug, [load_live_identity(context, slug, purpose="test")])
    return Built(context, slug, result, paths, warehouse, vault, custodians)


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory, demo_warehouse: Path):
    """The full-data study over everyone, built once per module."""
    made = build_for_module(tmp_path_factory, demo_warehouse, "everyone")
    yield made
    made.context.close()


@pytest.fixture
def any_db_context(tmp_path: Path, demo_warehouse: Path, db_url: str, fixed_clock):
    """Like `extract_context`, on SQLite and on a real PostgreSQL server."""
    context = open_context(make_home(tmp_path, demo_warehouse), db_url)
    context.extras["custodians"] = register_custodians(context)
    yield context
    context.close()
