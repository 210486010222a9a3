"""The extract plan is pure: a study and a catalog in, tables, columns and transforms out."""

from __future__ import annotations

import datetime as dt
import re

import pytest

from bubble_manager.catalog import load_catalog, parse_catalog
from bubble_manager.extract.plan import PlanError, describe_plan, make_plan, person_table, year_column_name
from bubble_manager.extract.pseudonyms import PSEUDONYM_PATTERN, is_pseudonym, new_date_offsets, new_pseudonyms
from bubble_manager.studies import State, Study
from bubble_manager.study_request import parse_request

from .conftest import DEMO_CATALOG, FULL_DATA, study_document

UTC = dt.timezone.utc


def study(data=None, free_text=(), slug="plan-test") -> Study:
    request = parse_request(study_document(slug, data))
    now = dt.datetime(2026, 11, 23, tzinfo=UTC)
    return Study(slug=slug, state=State.approved, requester="carol", request=request, version=1, created_at=now,
                 updated_at=now, members=request.members, ends=request.ends, free_text_approved=tuple(free_text))


@pytest.fixture(scope="module")
def catalog():
    return load_catalog(DEMO_CATALOG)


def transforms(plan) -> dict[str, str]:
    return {f"{t.name}.{c.source}": c.transform for t in plan.tables for c in t.columns}


def test_each_class_gets_its_transform(catalog):
    plan = make_plan(study(), catalog, date_shift_days=90)
    found = transforms(plan)
    assert found["person.person_id"] == "pseudonym"
    assert found["person.birth_date"] == "year"
    assert plan.table("person").column("birth_year").output_type == "INTEGER"
    assert found["person.postcode"] == "prefix:3"
    assert found["person.gender_concept_id"] == "keep"
    assert found["visit_occurrence.visit_occurrence_id"] == "renumber"
    assert found["visit_occurrence.visit_start_date"] == "shift_days"
    assert found["condition_occurrence.condition_end_date"] == "shift_days"
    assert plan.date_shift_days == 90


def test_source_values_are_dropped_even_when_requested(catalog):
    plan = make_plan(study(), catalog)
    assert not [name for name in transforms(plan) if name.endswith("_source_value")]
    dropped = {f"{e.table}.{e.column}" for e in plan.excluded}
    assert {"person.gender_source_value", "visit_occurrence.visit_source_value",
            "condition_occurrence.condition_source_value", "drug_exposure.drug_source_value",
            "measurement.measurement_source_value"} <= dropped


def test_record_keys_that_reference_share_one_domain(catalog):
    domains = make_plan(study(), catalog).record_key_domains()
    assert sorted(domains["visit_occurrence.visit_occurrence_id"]) == [
        ("condition_occurrence", "visit_occurrence_id"), ("drug_exposure", "visit_occurrence_id"),
        ("measurement", "visit_occurrence_id"), ("note", "visit_occurrence_id"),
        ("visit_occurrence", "visit_occurrence_id")]
    assert domains["condition_occurrence.condition_occurrence_id"] == [("condition_occurrence", "condition_occurrence_id")]


def test_free_text_leaves_only_when_the_approval_names_it(catalog):
    data = {"note": ["person_id", "note_date", "note_text"]}
    refused = make_plan(study(data), catalog)
    assert [c.source for c in refused.table("note").columns] == ["person_id", "note_date"]
    assert [(e.column, e.reason.split(":")[0]) for e in refused.excluded] == [("note_text", "free text")]
    approved = make_plan(study(data, free_text=("note.note_text",)), catalog)
    assert approved.table("note").column("note_text").transform == "scrub"
    assert approved.needs_identity and approved.identity[0].table == "identity"
    assert set(approved.identity[0].columns) == {"family_name", "given_name", "nir", "address", "phone", "email"}


def test_identity_and_unknown_columns_are_refused_with_their_names(catalog):
    with pytest.raises(PlanError, match=r"data\.identity.*never leaves"):
        make_plan(study({"identity": ["person_id", "nir"]}), catalog)
    with pytest.raises(PlanError, match=r"person\.shoe_size is not in the catalog"):
        make_plan(study({"person": ["person_id", "shoe_size"]}), catalog)
    with pytest.raises(PlanError, match="opt-out register"):
        make_plan(study({"opt_out": ["person_id"]}), catalog)


def test_a_table_with_nothing_left_is_refused(catalog):
    with pytest.raises(PlanError, match="nothing of table note may leave"):
        make_plan(study({"note": ["note_text"]}), catalog)


def test_topcode_and_name_collisions(catalog):
    raw = dict(catalog.raw)
    tables = dict(raw["tables"])
    person = dict(tables["person"])
    person["columns"] = {**person["columns"], "age": {"type": "INTEGER", "class": "quasi_identifier",
                                                      "generalise": "topcode:89"},
                         "birth_year": {"type": "INTEGER", "class": "plain"}}
    tables["person"] = person
    custom = parse_catalog({**raw, "tables": tables}, source="custom")
    plan = make_plan(study({"person": ["person_id", "age"]}), custom)
    assert plan.table("person").column("age").transform == "topcode:89"
    with pytest.raises(PlanError, match="collides with birth_year"):
        make_plan(study({"person": ["person_id", "birth_year", "birth_date"]}), custom)


def test_person_table_opt_out_and_description(catalog):
    plan = make_plan(study(), catalog)
    assert person_table(catalog) == ("person", "person_id")
    assert plan.opt_out == ("opt_out", "person_id")
    text = describe_plan(plan)
    assert "birth_date -> birth_year: year" in text and "gender_source_value" in text
    assert year_column_name("birth_date") == "birth_year" and year_column_name("dob") == "dob_year"
    assert plan.as_dict()["tables"]["person"][0]["transform"] == "pseudonym"
    assert set(plan.as_dict()["tables"]) == set(FULL_DATA)


# --- pseudonyms and offsets -------------------------------------------------------------------

def test_pseudonyms_are_random_distinct_and_recognisable():
    first, second = new_pseudonyms(5000), new_pseudonyms(5000)
    assert len(set(first)) == 5000 and not set(first) & set(second)
    assert all(is_pseudonym(p) and PSEUDONYM_PATTERN.fullmatch(p) for p in first)
    text = f"mean HbA1c of {first[0]} was 7.1"
    assert PSEUDONYM_PATTERN.findall(text) == [first[0]]
    # every character position is used: the body is not a counter or a fixed-width number
    assert all(len({p[i] for p in first}) == 32 for i in range(3, 19))


def test_the_check_character_catches_typos():
    pseudonym = new_pseudonyms(1)[0]
    body = pseudonym[3:]
    typos = 0
    for position in range(len(body)):
        for replacement in "0123456789ABCDEFGHJKMNPQRSTVWXYZ":
            if replacement != body[position]:
                changed = "PSN" + body[:position] + replacement + body[position + 1:]
                typos += not is_pseudonym(changed)
    # a prime modulus of 31 over a 32-letter alphabet: only changes by exactly 31 (0 <-> Z) can slip
    assert typos >= 16 * 31 - 2
    swapped = "PSN" + body[1] + body[0] + body[2:]
    assert body[0] == body[1] or not is_pseudonym(swapped)
    assert not is_pseudonym("PSN" + body.lower()) and not is_pseudonym("XYZ" + body)


def test_date_offsets_are_never_zero_and_cover_the_range():
    offsets = new_date_offsets(200_000, 180)
    assert offsets.min() == -180 and offsets.max() == 180 and not (offsets == 0).any()
    counts = {value: int((offsets == value).sum()) for value in (-180, -1, 1, 180)}
    assert all(400 < c < 720 for c in counts.values()), counts  # about 200000/360 each
    with pytest.raises(ValueError):
        new_date_offsets(1, 0)


def test_pseudonyms_have_the_documented_shape():
    assert re.fullmatch(r"PSN[0-9A-Z]{17}", new_pseudonyms(1)[0])
