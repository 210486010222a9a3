"""Shared fixtures: a bubble-manager home with keys and catalog, real PostgreSQL, a movable clock."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

import pytest

from bubble_manager import clock
from bubble_manager.config import load_settings
from bubble_manager.operations import Context
from bubble_manager.signing import init_signing_key

from .browser import chromium  # noqa: F401 - the shared real-browser fixture
from .postgres import PostgresServer, postgres_missing_reason

DEMO_CATALOG = Path(__file__).resolve().parent.parent / "bubble_manager" / "data" / "demo_catalog.yaml"


class MovableClock:
    """Replaces `clock.utcnow` in a test; `set` and `advance` move time."""

    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def set(self, now: dt.datetime) -> None:
        self.now = now

    def advance(self, **delta: float) -> None:
        self.now = self.now + dt.timedelta(**delta)


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> MovableClock:
    fake = MovableClock(dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.timezone.utc))
    monkeypatch.setattr(clock, "utcnow", fake)
    return fake


@pytest.fixture(scope="session")
def postgres_server():
    reason = postgres_missing_reason()
    if reason:
        pytest.skip(reason)
    # Not under pytest's tmp folder: that one is private to root, and the server runs as postgres.
    server = PostgresServer(Path(tempfile.mkdtemp(prefix="bm-pg-")))
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs on SQLite and on a real PostgreSQL server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.sqlite'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture
def bm_home(tmp_path: Path) -> Path:
    home = tmp_path / "home"
    (home / "warehouse").mkdir(parents=True)
    shutil.copy(DEMO_CATALOG, home / "warehouse" / "warehouse.catalog.yaml")
    init_signing_key(home)
    return home


@pytest.fixture
def context(bm_home: Path, db_url: str):
    settings = load_settings(bm_home, db_url=db_url)
    ctx = Context.open(settings)
    yield ctx
    ctx.close()


@pytest.fixture
def sqlite_context(bm_home: Path):
    ctx = Context.open(load_settings(bm_home))
    yield ctx
    ctx.close()


TEST_WAREHOUSE_PERSONS = 600


@pytest.fixture(scope="session")
def small_warehouse(tmp_path_factory) -> Path:
    """A small demo warehouse built once per test session (copied into homes that need it)."""
    from bubble_manager.extract.demo_warehouse import build_demo_warehouse

    folder = tmp_path_factory.mktemp("small-warehouse")
    return build_demo_warehouse(folder / "warehouse.duckdb", persons=TEST_WAREHOUSE_PERSONS, seed=11,
                                progress=False).path


def make_home_activatable(home: Path, warehouse: Path) -> list[Path]:
    """Give a home what `studies activate` needs: the warehouse and three custodians (k=2).

    Returns the custodians' identity files (kept beside the home, as a custodian keeps them offline).
    """
    from bubble_manager.archive.age import X25519Identity
    from bubble_manager.archive.keys import add_custodian
    from bubble_manager.extract.demo_warehouse import catalog_path_for

    target = home / "warehouse" / "warehouse.duckdb"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(warehouse, target)
    shutil.copy(catalog_path_for(warehouse), catalog_path_for(target))
    context = Context.open(load_settings(home))
    identity_files = []
    try:
        custodians = home.parent / f"{home.name}-custodians"
        custodians.mkdir(exist_ok=True)
        for name in ("ada", "bert", "chloe"):
            identity = X25519Identity.generate()
            path = custodians / f"{name}.key"
            path.write_text(f"# custodian {name}\n{identity.to_string()}\n")
            path.chmod(0o600)
            add_custodian(context, name, identity.recipient().to_string(), actor="admin")
            identity_files.append(path)
    finally:
        context.close()
    return identity_files


@pytest.fixture
def activatable_home(bm_home: Path, small_warehouse: Path) -> Path:
    make_home_activatable(bm_home, small_warehouse)
    return bm_home
