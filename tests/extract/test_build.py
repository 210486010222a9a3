"""Reading a built extract back, cell by cell, and checking it against the warehouse it came from."""

from __future__ import annotations

import json
import re
import stat

import duckdb
import numpy as np
import pytest

from bubble_manager.extract.build import extract_rows
from bubble_manager.extract.manifest import verify_extract
from bubble_manager.extract.pseudonyms import is_pseudonym

from .conftest import FULL_DATA, PERSONS

DATE_COLUMNS = {
    "visit_occurrence": ["visit_start_date", "visit_end_date"],
    "condition_occurrence": ["condition_start_date", "condition_end_date"],
    "drug_exposure": ["drug_exposure_start_date", "drug_exposure_end_date"],
    "measurement": ["measurement_date"],
    "note": ["note_date"],
}
IDENTITY_COLUMNS = ["family_name", "given_name", "nir", "address", "phone", "email"]


@pytest.fixture(scope="module")
def both(built):
    """One connection with the extract as `x`, the warehouse as `wh`, the vault as `vault`."""
    connection = duckdb.connect()
    connection.execute(f"ATTACH '{built.paths.extract}' AS x (READ_ONLY)")
    connection.execute(f"ATTACH '{built.warehouse}' AS wh (READ_ONLY)")
    connection.register("vault_input", {"person_id": built.vault.person_ids,
                                        "pseudonym": np.array(built.vault.pseudonyms, dtype=object),
                                        "shift": built.vault.offsets})
    connection.execute("CREATE TABLE vault AS SELECT * FROM vault_input")
    yield connection
    connection.close()


def rows(connection, sql):
    return connection.execute(sql).fetchall()


def extract_columns(connection) -> list[tuple[str, str, str]]:
    return rows(connection, "SELECT table_name, column_name, data_type FROM information_schema.columns "
                            "WHERE table_catalog = 'x' ORDER BY table_name, ordinal_position")


def test_no_identity_value_in_any_cell(both):
    both.execute("CREATE TEMP TABLE identity_values AS SELECT DISTINCT value FROM "
                 f"(UNPIVOT wh.identity ON {', '.join(IDENTITY_COLUMNS)} INTO NAME name VALUE value) "
                 "WHERE value IS NOT NULL")
    assert rows(both, "SELECT count(*) FROM identity_values")[0][0] > 3 * PERSONS
    columns = extract_columns(both)
    cells = " UNION ".join(f"SELECT DISTINCT CAST(\"{c}\" AS VARCHAR) AS cell FROM x.\"{t}\"" for t, c, _ in columns)
    both.execute(f"CREATE TEMP TABLE cells AS SELECT cell FROM ({cells}) WHERE cell IS NOT NULL")
    assert rows(both, "SELECT count(*) FROM cells JOIN identity_values i ON cells.cell = i.value") == [(0,)]
    texts = " UNION ".join(f"SELECT DISTINCT lower(\"{c}\") AS cell FROM x.\"{t}\"" for t, c, kind in columns
                           if kind == "VARCHAR")
    # Pseudonyms are random base32 tokens that now and then spell a short name (PSN...EMMA...):
    # they are proven random elsewhere, so the substring search covers every other text cell.
    both.execute(f"CREATE TEMP TABLE text_cells AS SELECT cell FROM ({texts}) WHERE cell IS NOT NULL "
                 "AND NOT regexp_full_match(cell, 'psn[0-9a-z]{17}')")
    assert rows(both, "SELECT count(*) FROM text_cells")[0][0] > 50
    both.execute("CREATE TEMP TABLE long_values AS SELECT DISTINCT lower(value) AS value FROM identity_values "
                 "WHERE length(value) >= 4")
    assert rows(both, "SELECT text_cells.cell, i.value FROM text_cells, long_values i WHERE contains(text_cells.cell, i.value)") == []


def test_no_source_person_id_and_no_identity_bytes_in_the_file(both, built):
    person_ids = {r[0] for r in rows(both, "SELECT person_id FROM wh.person")}
    integers = set()
    for table, column, kind in extract_columns(both):
        if kind in ("BIGINT", "INTEGER"):
            integers |= {r[0] for r in rows(both, f'SELECT DISTINCT "{column}" FROM x."{table}"')}
    assert integers and not integers & person_ids
    raw = built.paths.extract.read_bytes()
    nirs = [r[0] for r in rows(both, "SELECT nir FROM wh.identity USING SAMPLE 300 ROWS")]
    assert not [nir for nir in nirs if nir.encode() in raw]


def test_only_the_planned_columns_are_there(both, built):
    found: dict[str, list[str]] = {}
    for table, column, _ in extract_columns(both):
        found.setdefault(table, []).append(column)
    assert set(found) == set(FULL_DATA)
    assert found["person"] == ["person_id", "gender_concept_id", "birth_year", "postcode"]
    assert found["note"] == ["note_id", "person_id", "note_date", "note_type_concept_id", "visit_occurrence_id"]
    assert not [c for columns in found.values() for c in columns if c.endswith("_source_value")]


def test_persons_are_pseudonyms_and_opted_out_persons_are_absent(both, built):
    pseudonyms = [r[0] for r in rows(both, "SELECT person_id FROM x.person")]
    assert len(pseudonyms) == len(set(pseudonyms)) == len(built.vault)
    assert all(is_pseudonym(p) for p in pseudonyms)
    opted_out = {r[0] for r in rows(both, "SELECT person_id FROM wh.opt_out")}
    assert opted_out and opted_out <= {r[0] for r in rows(both, "SELECT person_id FROM wh.person")}
    assert not opted_out & set(built.vault.person_ids.tolist())
    assert len(built.vault) == PERSONS - len(opted_out) == built.result.persons
    for table in FULL_DATA:
        assert rows(both, f"SELECT count(*) FROM x.{table} t ANTI JOIN vault v ON t.person_id = v.pseudonym") == [(0,)]


def test_rows_are_ordered_by_pseudonym(both):
    for table in FULL_DATA:
        order = [r[0] for r in rows(both, f"SELECT person_id FROM x.{table} ORDER BY rowid")]
        assert len(order) > 1000 and order == sorted(order), table


def test_each_table_holds_exactly_the_cohort_rows(both, built):
    for table in FULL_DATA:
        expected = rows(both, f"SELECT count(*) FROM wh.{table} s SEMI JOIN vault v ON s.person_id = v.person_id")[0][0]
        assert built.result.rows[table] == expected == rows(both, f"SELECT count(*) FROM x.{table}")[0][0]


def test_dates_move_by_one_offset_per_person_never_zero(both, built):
    shifts = dict(zip(built.vault.person_ids.tolist(), built.vault.offsets.tolist()))
    seen: dict[int, set[int]] = {}
    for table, columns in DATE_COLUMNS.items():
        for column in columns:
            extract = dict(rows(both, f"SELECT v.person_id, list(x.{column} ORDER BY x.{column}) FROM x.{table} x "
                                      f"JOIN vault v ON x.person_id = v.pseudonym GROUP BY 1"))
            source = dict(rows(both, f"SELECT s.person_id, list(s.{column} ORDER BY s.{column}) FROM wh.{table} s "
                                     f"SEMI JOIN vault v ON s.person_id = v.person_id GROUP BY 1"))
            assert extract.keys() == source.keys() and len(extract) > 100
            for person, dates in extract.items():
                moved = {(a - b).days for a, b in zip(dates, source[person]) if a is not None}
                assert len(moved) == 1, (table, column, person)
                assert sum(d is None for d in dates) == sum(d is None for d in source[person])
                seen.setdefault(person, set()).update(moved)
    assert len(seen) > PERSONS * 0.9
    for person, moved in seen.items():
        assert moved == {shifts[person]}, person  # the same offset in every table and column
    offsets = np.array([next(iter(m)) for m in seen.values()])
    assert not (offsets == 0).any() and np.abs(offsets).max() <= 180
    assert len(set(offsets.tolist())) > 250  # random per person, not one study-wide shift


def test_intervals_between_a_persons_events_are_unchanged(both):
    extract = rows(both, "SELECT v.person_id, x.visit_concept_id, x.care_site_id, x.visit_end_date - x.visit_start_date "
                         "FROM x.visit_occurrence x JOIN vault v ON x.person_id = v.pseudonym ORDER BY ALL")
    source = rows(both, "SELECT s.person_id, s.visit_concept_id, s.care_site_id, s.visit_end_date - s.visit_start_date "
                        "FROM wh.visit_occurrence s SEMI JOIN vault v ON s.person_id = v.person_id ORDER BY ALL")
    assert extract == source
    gaps = rows(both, "SELECT count(*) FROM (SELECT c.condition_start_date - v.visit_start_date AS gap "
                      "FROM x.condition_occurrence c JOIN x.visit_occurrence v USING (visit_occurrence_id)) "
                      "WHERE gap < 0")
    assert gaps == [(0,)]


@pytest.fixture(scope="module")
def visit_link(both):
    """Each extract visit linked to its source row through the vault (pseudonym, date shift) and
    the visit's content; visits whose content is not unique are left out."""
    both.execute("""CREATE TEMP TABLE visit_link AS
        WITH moved AS (SELECT v.person_id, x.visit_occurrence_id AS new_id, x.visit_start_date - v.shift AS start_date,
                              x.visit_end_date - v.shift AS end_date, x.visit_concept_id, x.care_site_id
                       FROM x.visit_occurrence x JOIN vault v ON x.person_id = v.pseudonym),
             matched AS (SELECT m.new_id, s.visit_occurrence_id AS old_id, s.rowid AS old_position
                         FROM moved m JOIN wh.visit_occurrence s ON s.person_id = m.person_id
                          AND s.visit_start_date = m.start_date AND s.visit_end_date = m.end_date
                          AND s.visit_concept_id = m.visit_concept_id AND s.care_site_id = m.care_site_id)
        SELECT * FROM matched WHERE new_id IN (SELECT new_id FROM matched GROUP BY new_id HAVING count(*) = 1)""")
    return "visit_link"


def test_record_ids_are_renumbered_in_random_order_and_never_join_back(both, visit_link):
    linked = np.array(rows(both, "SELECT new_id, old_id, old_position FROM visit_link"))
    total = rows(both, "SELECT count(*), count(DISTINCT visit_occurrence_id), min(visit_occurrence_id) >= 0, "
                       "count(*) FILTER (WHERE visit_occurrence_id IS NULL) FROM x.visit_occurrence")[0]
    assert total[1:] == (total[0], True, 0)  # one distinct new id per visit
    assert len(linked) > 0.9 * total[0]
    assert not (linked[:, 0] == linked[:, 1]).any()
    for other in (1, 2):  # neither the source ids nor the source order survive
        rho = np.corrcoef(np.argsort(np.argsort(linked[:, 0])), np.argsort(np.argsort(linked[:, other])))[0, 1]
        assert abs(rho) < 0.05, (other, rho)
    joined_back = rows(both, "SELECT count(*) FROM x.visit_occurrence x JOIN vault v ON x.person_id = v.pseudonym "
                             "JOIN wh.visit_occurrence s ON s.visit_occurrence_id = x.visit_occurrence_id "
                             "AND s.person_id = v.person_id")
    assert joined_back == [(0,)]


def test_references_follow_the_renumbering(both, visit_link):
    """Conditions, drugs and measurements point, through the new ids, at their own source visit."""
    for table, key in (("condition_occurrence", "condition_start_date"), ("drug_exposure", "drug_exposure_start_date"),
                       ("measurement", "measurement_date")):
        mismatched = rows(both, f"""
            WITH moved AS (SELECT v.person_id, m.old_id AS visit, x.{key} - v.shift AS day
                           FROM x.{table} x JOIN vault v ON x.person_id = v.pseudonym
                           JOIN visit_link m ON m.new_id = x.visit_occurrence_id)
            SELECT count(*) FROM moved ANTI JOIN wh.{table} s
              ON s.person_id = moved.person_id AND s.visit_occurrence_id = moved.visit AND s.{key} = moved.day""")
        assert mismatched == [(0,)], table


def test_birth_dates_are_years_and_postcodes_three_digits(both):
    assert rows(both, "SELECT data_type FROM information_schema.columns WHERE table_catalog = 'x' "
                      "AND table_name = 'person' AND column_name = 'birth_year'") == [("INTEGER",)]
    wrong = rows(both, "SELECT count(*) FROM x.person x JOIN vault v ON x.person_id = v.pseudonym "
                       "JOIN wh.person s ON s.person_id = v.person_id "
                       "WHERE x.birth_year <> year(s.birth_date) OR x.postcode <> left(s.postcode, 3) "
                       "OR x.gender_concept_id <> s.gender_concept_id")
    assert wrong == [(0,)]
    assert rows(both, "SELECT DISTINCT length(postcode) FROM x.person") == [(3,)]


def test_the_file_is_read_only_signed_and_recorded(built):
    mode = built.paths.extract.stat().st_mode
    assert stat.S_IMODE(mode) == 0o444
    assert stat.S_IMODE(built.paths.vault.stat().st_mode) == 0o600
    verification = verify_extract(built.paths.root, built.context.verifier())
    assert verification.ok, verification.problems
    manifest = verification.manifest
    assert manifest["study"] == built.slug and manifest["request_hash"] == built.result.request_hash
    assert manifest["rows"] == built.result.rows and manifest["risk"] == json.loads(json.dumps(built.result.risk))
    assert manifest["plan"]["tables"]["person"][2]["output"] == "birth_year"
    assert len(manifest["vault"]["recipients"]) == 2 and manifest["warehouse"]["fingerprint"]
    assert not [p.name for p in built.paths.root.iterdir() if p.name.startswith((".extract", ".spill", ".vault"))]
    [row] = extract_rows(built.context, built.slug)
    assert (row.sha256, row.state, row.rows) == (built.result.sha256, "current", built.result.rows)


def test_the_vault_is_encrypted_and_holds_no_id_in_clear(built):
    raw = built.paths.vault.read_bytes()
    assert raw.startswith(b"age-encryption.org/v1\n")
    header = raw[:raw.index(b"\n--- ")]
    assert header.count(b"\n-> ") == 2  # the live key and the archive key, whatever their recipient type
    assert not [p for p in built.vault.pseudonyms[:200] if p.encode() in raw]
    assert not [str(i).encode() for i in built.vault.person_ids[:200] if str(i).encode() in raw]


def test_the_risk_report_counts_small_classes(built, both):
    risk = built.result.risk
    [group] = risk["quasi_identifiers"]
    assert group["columns"] == ["birth_year", "postcode"] and group["records"] == built.result.persons
    sizes = [r[0] for r in rows(both, "SELECT count(*) FROM x.person GROUP BY birth_year, postcode")]
    assert group["classes"] == len(sizes) and group["smallest_class"] == min(sizes)
    assert group["records_in_classes_under_k"] == sum(s for s in sizes if s < 10)
    assert risk["k_anonymous"] is (min(sizes) >= 10)
    codes = risk["rare_codes"]
    assert "condition_occurrence.condition_concept_id" in codes["columns"]
    rarest = codes["rarest"][0]
    column = rarest["column"].split(".")[1]
    table = rarest["column"].split(".")[0]
    holders = rows(both, f"SELECT count(DISTINCT person_id) FROM x.{table} WHERE {column}::VARCHAR = '{rarest['code']}'")
    assert holders == [(rarest["persons"],)]
    minimum = rows(both, "SELECT min(n) FROM (SELECT count(DISTINCT person_id) AS n FROM x.condition_occurrence "
                         "GROUP BY condition_concept_id)")[0][0]
    assert rarest["persons"] <= minimum
    exact = rows(both, " UNION ALL ".join(
        f"SELECT '{name}' AS c, CAST({name.split('.')[1]} AS VARCHAR) AS code, count(DISTINCT person_id) AS n "
        f"FROM x.{name.split('.')[0]} WHERE {name.split('.')[1]} IS NOT NULL GROUP BY 2" for name in codes["columns"])
        + " ORDER BY n, c, code")
    assert codes["codes"] == len(exact) and codes["codes_under_k"] == sum(1 for _, _, n in exact if n < 10)
    assert [(r["column"], r["code"], r["persons"]) for r in codes["rarest"]] == exact[:10]
    assert re.fullmatch(r"\d+", rarest["code"])
