"""Cohort queries: refused with their reason, confined when they run, killed when they run over."""

from __future__ import annotations

import os
import time
from pathlib import Path

import duckdb
import pytest

from bubble_manager.catalog import load_catalog
from bubble_manager.extract.cohort import (CohortRefused, check_cohort_sql, cohort_sql_problems,
                                           ensure_cohort_database, run_cohort_query, select_cohort, shown_count,
                                           warehouse_fingerprint)
from bubble_manager.extract.demo_warehouse import build_demo_warehouse

from .conftest import DEMO_CATALOG


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(DEMO_CATALOG)


@pytest.fixture(scope="module")
def cohort_db(demo_warehouse, catalog, tmp_path_factory) -> Path:
    return ensure_cohort_database(demo_warehouse, catalog, tmp_path_factory.mktemp("cohort"))


def run(database: Path, sql: str, catalog, timeout: float = 20.0, memory: str = "256MB"):
    return select_cohort(database, sql, catalog.cohort_tables(), timeout=timeout, memory_limit=memory, threads=1)


REFUSED = [
    ("query_table('iden'||'tity')", "SELECT * FROM query_table('iden'||'tity')", "table-function", "query_table"),
    ("query()", "SELECT * FROM query('SELECT person_id FROM identity')", "table-function", "query()"),
    ("two statements", "SELECT person_id FROM person; SELECT person_id FROM person", "multiple-statements", "2 statements"),
    ("statement after a comment", "SELECT person_id FROM person; -- hi\nDROP TABLE person", "multiple-statements", "2"),
    ("PRAGMA", "PRAGMA database_list", "pragma", "PRAGMA"),
    ("ATTACH", "ATTACH '/tmp/other.duckdb' AS other", "attach", "ATTACH"),
    ("INSTALL", "INSTALL httpfs", "extension", "INSTALL and LOAD"),
    ("LOAD", "LOAD httpfs", "extension", "INSTALL and LOAD"),
    ("SET", "SET threads = 8", "set", "SET"),
    ("SET VARIABLE", "SET VARIABLE x = 1", "set", "SET"),
    ("COPY", "COPY person TO '/tmp/out.csv'", "not-select", "COPY"),
    ("CREATE", "CREATE TABLE x AS SELECT 1", "not-select", "CREATE"),
    ("read_csv", "SELECT * FROM read_csv('/etc/passwd')", "table-function", "read_csv"),
    ("read_parquet", "SELECT person_id FROM read_parquet('x.parquet')", "table-function", "read_parquet"),
    ("glob in a subquery", "SELECT person_id FROM person WHERE person_id IN (SELECT 1 FROM glob('/*'))",
     "table-function", "glob"),
    ("duckdb_tables()", "SELECT * FROM duckdb_tables()", "table-function", "duckdb_tables"),
    ("identity table", "SELECT person_id FROM identity", "unknown-table", "identity is not a cohort table"),
    ("opt-out table", "SELECT person_id FROM opt_out", "unknown-table", "opt_out is not a cohort table"),
    ("other database", "SELECT person_id FROM wh.main.person", "unknown-table", "without a database or schema"),
    ("information schema", "SELECT 1 AS person_id FROM information_schema.tables", "unknown-table", "information_schema"),
    ("DESCRIBE", "DESCRIBE person", "not-select", "DESCRIBE"),
    ("PIVOT", "PIVOT person ON gender_concept_id USING count(*)", "not-select", "PIVOT"),
    ("empty", "  ", "empty", "empty"),
    ("syntax", "SELEC person_id FROM person", "syntax", "not valid SQL"),
]


@pytest.mark.parametrize("sql, reason, words", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_refused_with_its_reason(cohort_db, catalog, sql, reason, words):
    with pytest.raises(CohortRefused) as refused:
        run(cohort_db, sql, catalog)
    assert refused.value.reason == reason
    assert words in str(refused.value)


def test_submission_problems_name_the_field(catalog):
    assert cohort_sql_problems("SELECT person_id FROM person", catalog) == []
    [(field, message)] = cohort_sql_problems("PRAGMA version", catalog)
    assert field == "cohort" and "PRAGMA" in message


def test_a_good_query_selects_persons(cohort_db, catalog, demo_warehouse):
    sql = ("WITH diabetic AS (SELECT person_id FROM condition_occurrence WHERE condition_concept_id = 201826) "
           "SELECT p.person_id FROM person p JOIN diabetic d USING (person_id) -- comment at the end")
    ids = run(cohort_db, sql, catalog)
    with duckdb.connect(str(demo_warehouse), read_only=True) as warehouse:
        expected = {row[0] for row in warehouse.execute(
            "SELECT DISTINCT person_id FROM condition_occurrence WHERE condition_concept_id = 201826").fetchall()}
    assert set(ids.tolist()) == expected and len(ids) == len(expected) > 10


def test_the_cohort_database_holds_only_cohort_columns(cohort_db, catalog):
    with duckdb.connect(str(cohort_db), read_only=True) as connection:
        present = {(t, c) for t, c in connection.execute(
            "SELECT table_name, column_name FROM information_schema.columns").fetchall()}
    expected = {(t, c.name) for t, columns in catalog.cohort_tables().items() for c in columns}
    assert present == expected
    assert not {t for t, _ in present} & {"identity", "opt_out"}
    assert ("note", "note_text") not in present and ("person", "postcode") not in present
    assert oct(cohort_db.stat().st_mode & 0o777) == "0o440"


def test_string_built_table_names_find_nothing(cohort_db, catalog):
    """Past the parse-time checks, the cohort database itself has no identity table."""
    with pytest.raises(CohortRefused) as refused:
        run_cohort_query(cohort_db, "SELECT * FROM query_table('iden'||'tity')", timeout=20, memory_limit="256MB",
                         threads=1)
    assert refused.value.reason == "binder" and "identity does not exist" in str(refused.value)
    with pytest.raises(CohortRefused) as refused:
        run_cohort_query(cohort_db, "SELECT person_id FROM query('SELECT * FROM n'||'ote') WHERE note_text LIKE '%x%'",
                         timeout=20, memory_limit="256MB", threads=1)
    assert "note_text" in str(refused.value) and refused.value.reason == "binder"


def test_the_child_cannot_read_files(cohort_db, catalog):
    """Past the parse-time checks, the confined connection has no file access."""
    for sql in ("SELECT 1 AS person_id FROM read_csv('/etc/passwd')",
                "SELECT 1 AS person_id FROM read_text('/etc/hostname')",
                "SELECT 1 AS person_id FROM glob('/*')"):
        with pytest.raises(CohortRefused) as refused:
            run_cohort_query(cohort_db, sql, timeout=20, memory_limit="256MB", threads=1)
        assert "disabled by configuration" in (refused.value.detail or "")


def test_conversion_errors_do_not_quote_data(cohort_db, catalog, demo_warehouse):
    sql = "SELECT person_id FROM condition_occurrence WHERE CAST(condition_source_value AS INTEGER) > 0"
    with pytest.raises(CohortRefused) as refused:
        run(cohort_db, sql, catalog)
    message, detail = str(refused.value), refused.value.detail
    assert refused.value.reason == "runtime" and "ConversionException" in message
    assert "stewards only" in message
    with duckdb.connect(str(demo_warehouse), read_only=True) as warehouse:
        codes = {row[0] for row in warehouse.execute(
            "SELECT DISTINCT condition_source_value FROM condition_occurrence").fetchall()}
    assert not [code for code in codes if code in message]
    assert "Could not convert string" in detail and any(f"'{code}'" in detail for code in codes)


def test_a_runaway_query_is_killed_within_its_limit(cohort_db, catalog):
    sql = ("SELECT p.person_id FROM person p, visit_occurrence v, condition_occurrence c "
           "ORDER BY hash(p.person_id + v.visit_concept_id + c.condition_concept_id)")
    started = time.monotonic()
    with pytest.raises(CohortRefused) as refused:
        run(cohort_db, sql, catalog, timeout=2.0, memory="2GB")
    elapsed = time.monotonic() - started
    assert refused.value.reason == "timeout" and "time limit of 2 s" in str(refused.value)
    assert elapsed < 2.0 + 3.0  # the limit, plus a kill and the parse checks; never the query's own time


def test_a_recursive_query_is_killed_too(cohort_db, catalog):
    sql = "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT n AS person_id FROM r"
    with pytest.raises(CohortRefused) as refused:
        run(cohort_db, sql, catalog, timeout=1.5, memory="2GB")
    assert refused.value.reason in ("timeout", "memory")


def test_a_query_over_its_memory_limit_is_stopped(cohort_db, catalog):
    sql = ("SELECT v.person_id FROM visit_occurrence v, condition_occurrence c "
           "GROUP BY v.person_id HAVING string_agg(c.condition_start_date::VARCHAR, ',') <> ''")
    with pytest.raises(CohortRefused) as refused:
        run(cohort_db, sql, catalog, timeout=60, memory="64MB")
    assert refused.value.reason == "memory" and "64MB" in str(refused.value)


def test_counts_under_k_are_suppressed():
    assert shown_count(3, 10) == "< 10" and shown_count(0, 10) == "< 10"
    assert shown_count(10, 10) == "10" and shown_count(1234, 5) == "1234"


def test_the_cohort_database_follows_the_warehouse(tmp_path, catalog):
    warehouse = tmp_path / "w.duckdb"
    build_demo_warehouse(warehouse, 50, seed=3, progress=False)
    folder = tmp_path / "cohort"
    first = ensure_cohort_database(warehouse, catalog, folder)
    assert ensure_cohort_database(warehouse, catalog, folder) == first
    before = warehouse_fingerprint(warehouse, catalog)
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("DELETE FROM person WHERE person_id IN (SELECT person_id FROM person LIMIT 5)")
    os.utime(warehouse, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert warehouse_fingerprint(warehouse, catalog) != before
    second = ensure_cohort_database(warehouse, catalog, folder)
    assert second != first and not first.exists()
    assert len(run(second, "SELECT person_id FROM person", catalog)) == 45
    assert [p.name for p in folder.iterdir() if p.name.startswith("cohort-")] == [second.name]


def test_a_warehouse_missing_a_catalog_column_is_refused(tmp_path, catalog):
    warehouse = tmp_path / "w.duckdb"
    build_demo_warehouse(warehouse, 20, seed=3, progress=False)
    with duckdb.connect(str(warehouse)) as connection:
        connection.execute("ALTER TABLE person DROP COLUMN birth_date")
    with pytest.raises(ValueError, match="person has no column birth_date"):
        ensure_cohort_database(warehouse, catalog, tmp_path / "cohort")
    assert not [p for p in (tmp_path / "cohort").iterdir() if p.name != ".lock"]


def test_check_returns_the_single_statement():
    assert check_cohort_sql("SELECT person_id FROM person;  ", ["person"]) == "SELECT person_id FROM person"
