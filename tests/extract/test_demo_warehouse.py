"""The synthetic demo warehouse: schema, determinism, realism, integrity and atomic writing."""

from __future__ import annotations

import hashlib
import os
import re
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pytest

from bubble_manager.catalog import load_catalog
from bubble_manager.extract import demo_warehouse
from bubble_manager.extract.demo_warehouse import (
    PACKAGED_CATALOG,
    IdScrambler,
    build_demo_warehouse,
    catalog_path_for,
)

PERSONS = 2000
EVENT_TABLES = {
    "condition_occurrence": ("condition_occurrence_id", "condition_start_date"),
    "drug_exposure": ("drug_exposure_id", "drug_exposure_start_date"),
    "measurement": ("measurement_id", "measurement_date"),
    "note": ("note_id", "note_date"),
}
END_DATES = {
    "visit_occurrence": ("visit_start_date", "visit_end_date"),
    "condition_occurrence": ("condition_start_date", "condition_end_date"),
    "drug_exposure": ("drug_exposure_start_date", "drug_exposure_end_date"),
}


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory: pytest.TempPathFactory) -> demo_warehouse.WarehouseSummary:
    return build_demo_warehouse(tmp_path_factory.mktemp("warehouse") / "demo.duckdb", PERSONS, seed=7, progress=False)


@pytest.fixture(scope="module")
def con(warehouse: demo_warehouse.WarehouseSummary):
    connection = duckdb.connect(str(warehouse.path), read_only=True)
    yield connection
    connection.close()


def scalar(con: duckdb.DuckDBPyConnection, sql: str):
    return con.execute(sql).fetchone()[0]


def table_digests(path: Path) -> dict[str, str]:
    """sha256 of each table's rows in a canonical order."""
    with duckdb.connect(str(path), read_only=True) as connection:
        tables = [row[0] for row in connection.execute("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()]
        return {
            table: hashlib.sha256(repr(connection.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall()).encode()).hexdigest()
            for table in tables
        }


# --- Schema and catalog ------------------------------------------------------------------------


def test_schema_is_exactly_the_catalog(warehouse, con):
    catalog = load_catalog(PACKAGED_CATALOG)
    found: dict[str, dict[str, str]] = {}
    for table, column, data_type in con.execute(
        "SELECT table_name, column_name, data_type FROM information_schema.columns ORDER BY table_name, ordinal_position"
    ).fetchall():
        found.setdefault(table, {})[column] = data_type
    expected = {
        table.name: {column.name: column.type for column in table.columns.values()} for table in catalog.tables.values()
    }
    assert found == expected
    assert list(warehouse.rows) == list(catalog.tables)
    assert scalar(con, "SELECT count(*) FROM duckdb_views() WHERE NOT internal") == 0
    assert scalar(con, "SELECT count(*) FROM duckdb_functions() WHERE NOT internal AND function_type LIKE '%macro%'") == 0


def test_catalog_copy_sits_beside_the_warehouse(warehouse):
    assert warehouse.catalog_path == catalog_path_for(warehouse.path) == warehouse.path.with_name("demo.catalog.yaml")
    assert warehouse.catalog_path.read_bytes() == PACKAGED_CATALOG.read_bytes()
    assert load_catalog(warehouse.catalog_path).warehouse == "demo-eds"
    assert sorted(p.name for p in warehouse.path.parent.iterdir()) == ["demo.catalog.yaml", "demo.duckdb"]


def test_summary_counts_match_the_tables(warehouse, con):
    for table, count in warehouse.rows.items():
        assert scalar(con, f"SELECT count(*) FROM {table}") == count, table
    assert warehouse.total_rows == sum(warehouse.rows.values())
    assert warehouse.persons == PERSONS and warehouse.seed == 7 and warehouse.seconds > 0


# --- Determinism -------------------------------------------------------------------------------


def test_same_seed_gives_identical_tables(warehouse, tmp_path):
    again = build_demo_warehouse(tmp_path / "again.duckdb", PERSONS, seed=7, progress=False)
    assert table_digests(again.path) == table_digests(warehouse.path)


def test_different_seeds_differ(warehouse, tmp_path):
    other = build_demo_warehouse(tmp_path / "other.duckdb", PERSONS, seed=8, progress=False)
    mine, theirs = table_digests(warehouse.path), table_digests(other.path)
    assert all(mine[table] != theirs[table] for table in mine)


# --- Volumes and distributions -----------------------------------------------------------------


def test_row_counts_are_plausible(warehouse):
    rows = warehouse.rows
    assert rows["person"] == rows["identity"] == PERSONS
    events = rows["condition_occurrence"] + rows["drug_exposure"] + rows["measurement"]
    assert 22 <= events / PERSONS <= 28  # target 25
    assert 3 <= rows["visit_occurrence"] / PERSONS <= 8
    assert 0.85 <= rows["note"] / PERSONS <= 1.15


@pytest.mark.parametrize("target", [3.0, 60.0])
def test_events_per_person_follows_the_target(tmp_path, target):
    rows = build_demo_warehouse(tmp_path / "w.duckdb", 1000, seed=1, progress=False, events_per_person=target).rows
    events = rows["condition_occurrence"] + rows["drug_exposure"] + rows["measurement"]
    assert 0.8 * target <= events / 1000 <= 1.2 * target


def test_visits_per_person_are_skewed(con):
    counts = np.array([row[0] for row in con.execute("SELECT count(*) FROM visit_occurrence GROUP BY person_id").fetchall()])
    assert len(counts) == PERSONS, "every person has at least one visit"
    assert np.median(counts) < counts.mean() and counts.max() >= 5 * counts.mean()
    assert (counts == 1).mean() > 0.15
    types = dict(con.execute("SELECT visit_concept_id, count(*) FROM visit_occurrence GROUP BY 1").fetchall())
    assert set(types) == {9201, 9202, 9203} and types[9202] > types[9201]


def test_ages_gender_and_postcodes(con):
    female = scalar(con, "SELECT avg((gender_concept_id = 8532)::INT) FROM person")
    assert 0.47 <= female <= 0.56
    assert scalar(con, "SELECT count(*) FROM person WHERE gender_concept_id NOT IN (8507, 8532)") == 0
    assert scalar(con, "SELECT count(*) FROM person WHERE gender_source_value <> CASE gender_concept_id WHEN 8532 THEN 'F' ELSE 'M' END") == 0
    ages = np.array([row[0] for row in con.execute("SELECT date_diff('year', birth_date, DATE '2025-12-31') FROM person").fetchall()])
    assert ages.min() >= 0 and ages.max() <= 101
    assert 0.15 <= (ages < 20).mean() <= 0.30 and 0.05 <= (ages >= 75).mean() <= 0.16
    assert scalar(con, "SELECT count(*) FROM person WHERE NOT regexp_full_match(postcode, '[0-9]{5}')") == 0
    assert scalar(con, "SELECT count(DISTINCT left(postcode, 2)) FROM person") > 50


def test_type_2_diabetes_prevalence_in_adults(con):
    by_age = dict(
        con.execute(
            """SELECT date_diff('year', birth_date, DATE '2025-12-31') >= 60,
                      avg((person_id IN (SELECT person_id FROM condition_occurrence WHERE condition_concept_id = 201826))::INT)
               FROM person WHERE date_diff('year', birth_date, DATE '2025-12-31') >= 18 GROUP BY 1"""
        ).fetchall()
    )
    adults = scalar(
        con,
        """SELECT avg((person_id IN (SELECT person_id FROM condition_occurrence WHERE condition_concept_id = 201826))::INT)
           FROM person WHERE date_diff('year', birth_date, DATE '2025-12-31') >= 18""",
    )
    assert 0.045 <= adults <= 0.11
    assert by_age[True] > 2 * by_age[False], "more diabetes with age"
    assert scalar(con, "SELECT DISTINCT condition_source_value FROM condition_occurrence WHERE condition_concept_id = 201826") == "E11.9"
    assert scalar(con, "SELECT count(*) FROM condition_occurrence WHERE condition_concept_id = 320128") > 0
    assert scalar(con, "SELECT count(DISTINCT condition_concept_id) FROM condition_occurrence") > 120


def test_treatments_and_results_follow_diabetes(con):
    diabetic = "person_id IN (SELECT person_id FROM condition_occurrence WHERE condition_concept_id = 201826)"
    statins = dict(
        con.execute(f"SELECT {diabetic}, avg((drug_concept_id IN (1545958, 1539403, 1510813, 1551860))::INT) FROM drug_exposure GROUP BY 1").fetchall()
    )
    assert statins[True] > 2 * statins[False]
    assert scalar(con, "SELECT DISTINCT drug_source_value FROM drug_exposure WHERE drug_concept_id = 1545958") == "C10AA05"
    hba1c = dict(con.execute(f"SELECT {diabetic}, avg(value_as_number) FROM measurement WHERE measurement_concept_id = 3004410 GROUP BY 1").fetchall())
    assert hba1c[True] > hba1c[False] + 1
    low, high, units = con.execute(
        "SELECT min(value_as_number), max(value_as_number), list(DISTINCT unit_concept_id) FROM measurement WHERE measurement_concept_id = 3004410"
    ).fetchone()
    assert 5 <= low and high <= 12 and units == [8554]
    assert scalar(con, "SELECT count(*) FROM measurement WHERE value_as_number IS NULL OR unit_concept_id IS NULL") == 0
    for concept in (3004501, 3016723, 3025315):  # glucose, creatinine, weight
        assert scalar(con, f"SELECT count(*) FROM measurement WHERE measurement_concept_id = {concept}") > 0


# --- Integrity -----------------------------------------------------------------------------------


def test_record_ids_are_unique_and_not_in_row_order(con):
    id_columns = {"person": "person_id", "visit_occurrence": "visit_occurrence_id"}
    id_columns |= {table: id_column for table, (id_column, _) in EVENT_TABLES.items()}
    for table, id_column in id_columns.items():
        total, distinct = con.execute(f"SELECT count(*), count(DISTINCT {id_column}) FROM {table}").fetchone()
        assert total == distinct, table
        ids = np.array([row[0] for row in con.execute(f"SELECT {id_column} FROM {table} ORDER BY rowid").fetchall()], dtype=float)
        assert abs(np.corrcoef(np.arange(len(ids)), ids)[0, 1]) < 0.1, f"{table} ids follow row order"
    assert scalar(con, "SELECT count(*) FROM person WHERE person_id NOT BETWEEN 100000000 AND 999999999") == 0


def test_every_event_belongs_to_a_visit_of_its_person_within_its_dates(con):
    for table, (_, date_column) in EVENT_TABLES.items():
        orphans = scalar(
            con,
            f"""SELECT count(*) FROM {table} e
                LEFT JOIN visit_occurrence v ON v.visit_occurrence_id = e.visit_occurrence_id AND v.person_id = e.person_id
                WHERE v.visit_occurrence_id IS NULL OR e.{date_column} NOT BETWEEN v.visit_start_date AND v.visit_end_date""",
        )
        assert orphans == 0, table
    for table in ["visit_occurrence", *EVENT_TABLES, "identity", "opt_out"]:
        assert scalar(con, f"SELECT count(*) FROM {table} WHERE person_id NOT IN (SELECT person_id FROM person)") == 0, table


def test_dates_are_in_the_window_after_birth_and_ordered(con):
    for table, (start, end) in END_DATES.items():
        bad = scalar(
            con,
            f"""SELECT count(*) FROM {table} JOIN person USING (person_id)
                WHERE {start} < birth_date OR {start} < DATE '2010-01-01' OR {end} > DATE '2025-12-31' OR {end} < {start}""",
        )
        assert bad == 0, table
    for table, (_, day) in EVENT_TABLES.items():
        assert scalar(con, f"SELECT count(*) FROM {table} JOIN person USING (person_id) WHERE {day} < birth_date") == 0
    assert scalar(con, "SELECT count(*) FROM opt_out JOIN person USING (person_id) WHERE opted_out_on < birth_date OR opted_out_on > DATE '2025-12-31'") == 0


def test_identity_has_one_valid_row_per_person(con):
    assert scalar(con, "SELECT count(*) FROM person FULL JOIN identity USING (person_id) WHERE person.person_id IS NULL OR identity.person_id IS NULL") == 0
    assert scalar(con, "SELECT count(DISTINCT person_id) FROM identity") == PERSONS
    rows = con.execute(
        "SELECT i.nir, p.gender_concept_id, p.birth_date, i.phone, i.email, i.address, p.postcode, i.family_name, i.given_name "
        "FROM identity i JOIN person p USING (person_id)"
    ).fetchall()
    for nir, gender, birth, phone, email, address, postcode, family, given in rows:
        assert re.fullmatch(r"[0-9]{15}", nir), nir
        assert int(nir[13:]) == 97 - int(nir[:13]) % 97, nir
        assert nir[0] == ("2" if gender == 8532 else "1")
        assert nir[1:5] == f"{birth.year % 100:02d}{birth.month:02d}"
        assert re.fullmatch(r"0[1-9]( [0-9]{2}){4}", phone), phone
        assert re.fullmatch(r"[a-z-]+\.[a-z-]+[0-9]*@[a-z]+\.[a-z]+", email), email
        assert f", {postcode} " in address and re.match(r"[0-9]+ ", address), address
        assert family and given
    assert scalar(con, "SELECT count(DISTINCT family_name) FROM identity") > 100


def test_opt_out_register(con):
    share = scalar(con, "SELECT count(*) FROM opt_out") / PERSONS
    assert 0.001 <= share <= 0.012
    assert scalar(con, "SELECT count(*) - count(DISTINCT person_id) FROM opt_out") == 0


def test_notes_are_french_and_sometimes_name_the_patient(con):
    assert scalar(con, "SELECT count(*) FROM note WHERE note_text IS NULL OR length(note_text) < 40") == 0
    assert scalar(con, "SELECT count(DISTINCT note_type_concept_id) FROM note") >= 2
    leaking = scalar(
        con,
        """SELECT avg((contains(note_text, upper(i.family_name)) OR contains(note_text, i.phone))::INT)
           FROM note JOIN identity i USING (person_id)""",
    )
    assert 0.03 <= leaking <= 0.25
    assert scalar(con, "SELECT count(*) FROM note WHERE note_text LIKE '%Motif%' OR note_text LIKE '%traitement%'") > 0


def test_batches_do_not_collide(tmp_path):
    summary = build_demo_warehouse(tmp_path / "w.duckdb", 900, seed=3, progress=False, batch_persons=250)
    with duckdb.connect(str(summary.path), read_only=True) as connection:
        for table, id_column in {"person": "person_id", "visit_occurrence": "visit_occurrence_id", "measurement": "measurement_id"}.items():
            total, distinct = connection.execute(f"SELECT count(*), count(DISTINCT {id_column}) FROM {table}").fetchone()
            assert total == distinct
    assert summary.rows["person"] == 900


def test_id_scrambler_is_a_permutation():
    scramble = IdScrambler(np.array([1, 2, 3, 4], dtype=np.uint64), bits=10, limit=1000, offset=5000)
    ids = np.concatenate([scramble(0, 400), scramble(400, 600)])
    assert sorted(ids) == list(range(5000, 6000))
    assert not np.all(np.diff(ids) > 0)


# --- Writing safely ----------------------------------------------------------------------------


def test_refuses_to_overwrite_unless_asked(tmp_path):
    out = tmp_path / "w.duckdb"
    first = build_demo_warehouse(out, 50, seed=1, progress=False)
    before = table_digests(out)
    with pytest.raises(FileExistsError, match="--force"):
        build_demo_warehouse(out, 60, seed=2, progress=False)
    assert table_digests(out) == before
    second = build_demo_warehouse(out, 60, seed=2, progress=False, overwrite=True)
    assert second.rows["person"] == 60 != first.rows["person"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.catalog.yaml", "w.duckdb"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"persons": 0}, "persons is 0"),
        ({"persons": -5}, "at least 1 person"),
        ({"persons": 2.5}, "whole number"),
        ({"persons": 10, "events_per_person": 0}, "events_per_person"),
        ({"persons": 10, "seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_value_errors(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        build_demo_warehouse(tmp_path / "sub" / "w.duckdb", progress=False, **kwargs)
    assert list(tmp_path.iterdir()) == []


def test_folder_that_is_a_file_is_a_value_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(ValueError, match="choose another output path"):
        build_demo_warehouse(blocker / "w.duckdb", 10, progress=False)
    with pytest.raises(ValueError, match="is a folder"):
        build_demo_warehouse(tmp_path, 10, progress=False)
    assert [p.name for p in tmp_path.iterdir()] == ["file"]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_unwritable_place_is_a_value_error_even_for_root():
    with pytest.raises(ValueError, match="cannot create the folder"):
        build_demo_warehouse(Path("/proc/bubble-manager-test/w.duckdb"), 10, progress=False)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_folder_is_a_value_error(tmp_path):
    folder = tmp_path / "locked"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(ValueError, match="cannot write in"):
            build_demo_warehouse(folder / "w.duckdb", 10, progress=False)
        assert list(folder.iterdir()) == []
    finally:
        folder.chmod(0o755)


@pytest.mark.parametrize("failure", [RuntimeError("disk on fire"), KeyboardInterrupt()])
def test_failure_mid_build_leaves_nothing(tmp_path, monkeypatch, failure):
    calls = []
    real_insert = demo_warehouse._insert_batch

    def failing_insert(*args):
        calls.append(1)
        if len(calls) == 2:
            raise failure
        real_insert(*args)

    monkeypatch.setattr(demo_warehouse, "_insert_batch", failing_insert)
    with pytest.raises(type(failure)):
        build_demo_warehouse(tmp_path / "new" / "deeper" / "w.duckdb", 600, progress=False, batch_persons=200)
    assert len(calls) == 2
    assert list(tmp_path.iterdir()) == [], "folders created for the build are removed too"


def test_failure_when_overwriting_keeps_the_old_warehouse(tmp_path, monkeypatch):
    out = tmp_path / "w.duckdb"
    build_demo_warehouse(out, 40, seed=1, progress=False)
    before = table_digests(out)

    def failing_insert(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(demo_warehouse, "_insert_batch", failing_insert)
    with pytest.raises(RuntimeError):
        build_demo_warehouse(out, 40, seed=2, progress=False, overwrite=True)
    assert table_digests(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w.catalog.yaml", "w.duckdb"]


def test_progress_bar_goes_to_stderr_only_when_asked(tmp_path, capsys):
    build_demo_warehouse(tmp_path / "quiet.duckdb", 20, progress=False)
    assert capsys.readouterr() == ("", "")
    build_demo_warehouse(tmp_path / "loud.duckdb", 20, progress=True)
    captured = capsys.readouterr()
    assert captured.out == "" and "demo warehouse" in captured.err


def test_dates_cover_the_whole_window(con):
    first, last = con.execute("SELECT min(visit_start_date), max(visit_end_date) FROM visit_occurrence").fetchone()
    assert first < date(2011, 1, 1) and last > date(2025, 1, 1)
