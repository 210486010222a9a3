"""Persistence on SQLite and on a real PostgreSQL server; migrations match the models."""

from __future__ import annotations

import datetime as dt

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bubble_manager import studies
from bubble_manager.catalog import load_catalog
from bubble_manager.store import Base, Store, StoreError, list_studies, load_study, request_history, save_study

from .conftest import DEMO_CATALOG
from .test_studies import CAROL, SAM, document, run
from bubble_manager.study_request import parse_request

UTC = dt.timezone.utc
CATALOG = load_catalog(DEMO_CATALOG)


@pytest.fixture
def store(db_url):
    store = Store(db_url)
    store.migrate()
    yield store
    store.dispose()


def test_migrations_create_exactly_the_models(store):
    with store.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection, opts={"compare_type": True}),
                                       Base.metadata)
    assert differences == []
    store.check_schema()


def test_study_round_trip_through_every_field(store):
    study = run(None, CAROL, studies.Create(parse_request(document()))).study
    study = run(study, CAROL, studies.Submit(CATALOG)).study
    study = run(study, SAM, studies.Approve(comment="ok", catalog=CATALOG)).study
    study = run(study, CAROL, studies.ProposeExtension(dt.date(2027, 7, 1))).study
    with store.transaction() as session:
        save_study(session, study)
    with store.transaction() as session:
        loaded = load_study(session, study.slug)
    assert loaded == study
    assert loaded.created_at.tzinfo is not None


def test_versions_are_kept(store):
    study = run(None, CAROL, studies.Create(parse_request(document()))).study
    with store.transaction() as session:
        save_study(session, study)
    edited = run(study, CAROL, studies.Edit(parse_request(document(title="Second title")))).study
    with store.transaction() as session:
        save_study(session, edited)
        history = request_history(session, study.slug)
    assert [h["version"] for h in history] == [1, 2]
    assert history[0]["sha256"] != history[1]["sha256"]


def test_list_filters_by_state_and_person(store):
    with store.transaction() as session:
        for slug, members in (("s-one", ["alice"]), ("s-two", ["bob"])):
            save_study(session, run(None, CAROL, studies.Create(parse_request(document(slug=slug, members=members)))).study)
    with store.transaction() as session:
        assert [s.slug for s in list_studies(session, person="alice")] == ["s-one"]
        assert len(list_studies(session, person="carol")) == 2
        assert list_studies(session, states=["active"]) == []
        assert len(list_studies(session, states=["draft"])) == 2


def test_failed_transaction_leaves_nothing(store):
    study = run(None, CAROL, studies.Create(parse_request(document()))).study
    with pytest.raises(RuntimeError):
        with store.transaction() as session:
            save_study(session, study)
            raise RuntimeError("crash in the middle")
    with store.transaction() as session:
        assert load_study(session, study.slug) is None


def test_unmigrated_database_is_refused(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    with pytest.raises(StoreError, match="db upgrade"):
        store.check_schema()


def test_unsupported_url_refused():
    with pytest.raises(StoreError, match="sqlite:///PATH or postgresql"):
        Store("mysql://user:secret@host/db")


@pytest.mark.parametrize("url, reason", [
    ("postgresql+psycopg://auditor:s3cret@/bm?host=/nonexistent-socket-dir", "No such file or directory"),
    ("sqlite:////nonexistent-folder/store.sqlite", "unable to open database file"),
])
def test_a_database_that_cannot_be_opened_is_named_without_its_password(url, reason):
    store = Store(url)
    for attempt in (store.migrate, store.check_schema):
        with pytest.raises(StoreError) as caught:
            attempt()
        message = str(caught.value)
        assert message.startswith("cannot open the database ") and reason in message and "--db" in message
        assert "s3cret" not in message
