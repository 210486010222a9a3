"""Catalog loading and its errors, each naming file, table and column."""

from __future__ import annotations

from pathlib import Path

import pytest

from bubble_manager.catalog import CatalogError, load_catalog

from .conftest import DEMO_CATALOG


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "catalog.yaml"
    path.write_text(text)
    return path


GOOD_TABLE = """
warehouse: w
tables:
  person:
    columns:
      person_id: {type: BIGINT, class: person_key, cohort: true}
"""


def error_of(tmp_path: Path, text: str) -> str:
    path = write(tmp_path, text)
    with pytest.raises(CatalogError) as caught:
        load_catalog(path)
    message = str(caught.value)
    assert str(path) in message, "the error must name the file"
    return message


def test_demo_catalog_loads_with_all_classes_and_roles():
    catalog = load_catalog(DEMO_CATALOG)
    assert {t.role for t in catalog.tables.values()} == {"clinical", "identity", "opt_out"}
    classes = {c.column_class for t in catalog.tables.values() for c in t.columns.values()}
    assert {"direct_identifier", "person_key", "record_key", "quasi_identifier", "date", "free_text",
            "plain"} <= classes
    assert catalog.opt_out_table.name == "opt_out"
    assert "identity" not in catalog.cohort_tables()
    assert "note_text" not in [c.name for c in catalog.cohort_tables()["note"]]
    assert catalog.column("condition_occurrence", "visit_occurrence_id").references == \
        "visit_occurrence.visit_occurrence_id"


def test_unknown_class_names_table_and_column(tmp_path):
    message = error_of(tmp_path, GOOD_TABLE + "      name: {type: VARCHAR, class: secret}\n")
    assert "table 'person'" in message and "column 'name'" in message and "'secret'" in message
    assert "direct_identifier" in message, "the error lists the valid classes"


def test_duplicate_column(tmp_path):
    message = error_of(tmp_path, GOOD_TABLE + "      person_id: {type: BIGINT, class: plain}\n")
    assert "table 'person'" in message and "column 'person_id'" in message and "twice" in message


def test_duplicate_table(tmp_path):
    message = error_of(tmp_path, GOOD_TABLE + "  person:\n    columns:\n      x: {type: BIGINT, class: plain}\n")
    assert "table 'person'" in message and "twice" in message


def test_missing_tables(tmp_path):
    assert "'tables' is missing" in error_of(tmp_path, "warehouse: w\n")


def test_table_without_columns(tmp_path):
    message = error_of(tmp_path, "warehouse: w\ntables:\n  visit:\n    description: x\n")
    assert "table 'visit'" in message and "no columns" in message


def test_missing_file(tmp_path):
    with pytest.raises(CatalogError, match="not found"):
        load_catalog(tmp_path / "absent.yaml")


def test_unknown_type_and_keys(tmp_path):
    assert "unknown or missing type" in error_of(tmp_path, GOOD_TABLE + "      a: {type: BLOB, class: plain}\n")
    assert "unknown key" in error_of(tmp_path, GOOD_TABLE + "      a: {type: BIGINT, class: plain, pii: 1}\n")


def test_identifiers_and_free_text_never_cohort(tmp_path):
    message = error_of(tmp_path, GOOD_TABLE + "      nir: {type: VARCHAR, class: direct_identifier, cohort: true}\n")
    assert "never be used to select a cohort" in message and "column 'nir'" in message
    assert "never be used" in error_of(tmp_path, GOOD_TABLE + "      t: {type: VARCHAR, class: free_text, cohort: true}\n")


def test_quasi_identifier_needs_a_generalisation(tmp_path):
    assert "needs 'generalise'" in error_of(tmp_path, GOOD_TABLE + "      zip: {type: VARCHAR, class: quasi_identifier}\n")
    assert "unknown generalisation" in error_of(
        tmp_path, GOOD_TABLE + "      zip: {type: VARCHAR, class: quasi_identifier, generalise: blur}\n")
    assert "DATE or TIMESTAMP" in error_of(
        tmp_path, GOOD_TABLE + "      zip: {type: VARCHAR, class: quasi_identifier, generalise: year}\n")


def test_date_class_needs_date_type(tmp_path):
    assert "DATE or TIMESTAMP" in error_of(tmp_path, GOOD_TABLE + "      d: {type: VARCHAR, class: date}\n")


def test_record_keys_must_be_integers(tmp_path):
    message = error_of(tmp_path, GOOD_TABLE + "      v: {type: VARCHAR, class: record_key}\n")
    assert "a record_key must be an integer column" in message and "not VARCHAR" in message


def test_references_must_point_at_a_record_key(tmp_path):
    text = GOOD_TABLE + "      v: {type: BIGINT, class: record_key, references: visit.visit_id}\n"
    assert "not a column of the catalog" in error_of(tmp_path, text)
    text = GOOD_TABLE + "      v: {type: BIGINT, class: record_key, references: person.person_id}\n"
    assert "not a record_key" in error_of(tmp_path, text)


def test_opt_out_register_needs_person_key_and_is_unique(tmp_path):
    text = GOOD_TABLE + "  opt_out:\n    role: opt_out\n    columns:\n      d: {type: DATE, class: plain}\n"
    assert "needs its person_key" in error_of(tmp_path, text)


def test_invalid_yaml(tmp_path):
    assert "not valid YAML" in error_of(tmp_path, "warehouse: [\n")


def test_unknown_role(tmp_path):
    text = "warehouse: w\ntables:\n  t:\n    role: secret\n    columns:\n      a: {type: BIGINT, class: plain}\n"
    assert "unknown role" in error_of(tmp_path, text)
