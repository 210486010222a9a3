"""Each transform's SQL, evaluated by DuckDB on hand-made rows."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest

from bubble_manager.extract.plan import ColumnPlan, IdentitySource
from bubble_manager.extract.transforms import column_expression, scrub_patterns_sql


def evaluate(column: ColumnPlan, rows: list[tuple], types: str) -> list:
    with duckdb.connect() as connection:
        connection.execute(f"CREATE TABLE t ({types}, _bm_shift INTEGER, _bm_pseudonym VARCHAR)")
        connection.executemany(f"INSERT INTO t VALUES ({', '.join('?' * (len(rows[0])))})", rows)
        return [r[0] for r in connection.execute(f"SELECT {column_expression(column)} FROM t s ORDER BY rowid").fetchall()]


def plan(source: str, kind: str, source_type: str, transform: str, output_type: str | None = None) -> ColumnPlan:
    return ColumnPlan(source, source, kind, source_type, output_type or source_type, transform)


def test_topcode_keeps_the_type_and_caps():
    column = plan("age", "quasi_identifier", "INTEGER", "topcode:89")
    assert evaluate(column, [(45, 0, "p"), (89, 0, "p"), (90, 0, "p"), (104, 0, "p"), (None, 0, "p")],
                    "age INTEGER") == [45, 89, 89, 89, None]


def test_prefix_and_year():
    assert evaluate(plan("postcode", "quasi_identifier", "VARCHAR", "prefix:3"),
                    [("75013", 0, "p"), ("2A004", 0, "p"), ("97", 0, "p")], "postcode VARCHAR") == ["750", "2A0", "97"]
    assert evaluate(plan("birth_date", "quasi_identifier", "DATE", "year", "INTEGER"),
                    [(dt.date(1951, 12, 31), 0, "p"), (None, 0, "p")], "birth_date DATE") == [1951, None]


def test_dates_and_timestamps_move_by_the_persons_shift():
    day = plan("visit_date", "date", "DATE", "shift_days")
    assert evaluate(day, [(dt.date(2024, 2, 28), 2, "p"), (dt.date(2024, 1, 1), -180, "p")], "visit_date DATE") == [
        dt.date(2024, 3, 1), dt.date(2023, 7, 5)]
    moment = plan("taken_at", "date", "TIMESTAMP", "shift_days")
    assert evaluate(moment, [(dt.datetime(2024, 3, 31, 23, 30), 1, "p")], "taken_at TIMESTAMP") == [
        dt.datetime(2024, 4, 1, 23, 30)]


def test_person_keys_become_the_pseudonym():
    assert evaluate(plan("person_id", "person_key", "BIGINT", "pseudonym", "VARCHAR"),
                    [(12345, 0, "PSNXYZ")], "person_id BIGINT") == ["PSNXYZ"]


def test_scrub_patterns_are_literal_and_longest_first():
    with duckdb.connect() as connection:
        connection.execute("ATTACH ':memory:' AS wh")
        connection.execute("CREATE TABLE wh.identity (person_id BIGINT, family_name VARCHAR, given_name VARCHAR)")
        connection.execute("INSERT INTO wh.identity VALUES (1, 'Jean-Pierre', 'Jean'), (2, 'O.Neil (Jr)', 'A'), "
                           "(3, NULL, 'Zoé')")
        connection.execute("CREATE TABLE cohort AS SELECT * FROM range(1, 4) t(person_id)")
        source = IdentitySource("identity", "person_id", ("family_name", "given_name"))
        patterns = dict(connection.execute(scrub_patterns_sql((source,), "cohort")).fetchall())
        assert patterns[1].startswith("Jean\\-Pierre|")  # the longer value first
        assert 2 in patterns and "A" not in patterns[2].split("|")  # one-letter values are never patterns
        texts = {1: "Vu JEAN-PIERRE et jean ce jour", 2: "Mr o.neil (jr) appelle; Oxneil (Jr) aussi", 3: "zoé va bien"}
        scrubbed = {person: connection.execute(
            "SELECT regexp_replace(?, ?, '[removed]', 'gi')", [text, patterns[person]]).fetchall()[0][0]
            for person, text in texts.items()}
    assert scrubbed[1] == "Vu [removed] et [removed] ce jour"
    assert scrubbed[2] == "Mr [removed] appelle; Oxneil (Jr) aussi"  # '.' is a literal dot, not any character
    assert scrubbed[3] == "[removed] va bien"


@pytest.mark.parametrize("transform", ["mystery", "prefix"])
def test_unknown_transforms_are_refused(transform):
    with pytest.raises(ValueError):
        column_expression(plan("x", "plain", "VARCHAR", transform))
