"""What the bubble shows about its study: rendered from the manifest, never from the data."""

from __future__ import annotations

import datetime as dt
import json

from bubble_manager.inbubble import write_study_file
from bubble_manager.inbubble.study import days_left, load_study_info, study_html, study_markdown, transform_text

NOW = dt.datetime(2026, 11, 23, 9, tzinfo=dt.timezone.utc)
ENVIRON = {"BUBBLE_STUDY": "alpha", "BUBBLE_STUDY_TITLE": "Statins <b>and</b> | HbA1c", "BUBBLE_STUDY_ENDS": "2026-12-31",
           "BUBBLE_EXPIRES_AT": "2027-01-01T00:00:00+00:00", "BUBBLE_EXTRACT": "/data/extract.duckdb"}
MANIFEST = {"manifest": {"created_at": "2026-11-20T10:00:00Z", "persons": 120, "rows": {"person": 120},
                         "plan": {"date_shift_days": 180,
                                  "tables": {"person": [
                                      {"output": "person_id", "column_class": "person_key", "output_type": "VARCHAR",
                                       "transform": "pseudonym"},
                                      {"output": "birth_year", "column_class": "quasi_identifier",
                                       "output_type": "INTEGER", "transform": "year"},
                                      {"output": "postcode", "column_class": "quasi_identifier",
                                       "output_type": "VARCHAR", "transform": "prefix:3"}]},
                                  "excluded": [{"table": "person", "column": "family_name",
                                                "reason": "direct identifier: never leaves the warehouse"}]}},
            "signature": {"value": "..."}}


def info(tmp_path):
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(MANIFEST))
    return load_study_info(ENVIRON, path)


def test_the_study_page_lists_columns_and_transforms(tmp_path):
    text = study_markdown(info(tmp_path), NOW)
    assert text.startswith("# Study alpha: Statins &lt;b&gt;and&lt;/b&gt; \\| HbA1c")
    assert "**Ends:** 2026-12-31 (end of day, UTC), 38 days left" in text
    assert "| person_id | person_key | VARCHAR | replaced by the study's pseudonym of the person |" in text
    assert "generalised to its first 3 characters" in text and "generalised to the year" in text
    assert "person.family_name: direct identifier: never leaves the warehouse" in text
    assert "### person (120 rows)" in text


def test_the_html_page_escapes_what_it_shows(tmp_path):
    page = study_html(info(tmp_path), NOW)
    assert "<b>and</b>" not in page and "Statins &lt;b&gt;and&lt;/b&gt;" in page
    assert "<td>birth_year</td>" in page


def test_a_missing_manifest_says_so(tmp_path):
    loaded = load_study_info(ENVIRON, tmp_path / "absent.json")
    assert loaded["manifest_found"] is False and "could not be read" in study_markdown(loaded, NOW)


def test_days_left_and_transform_wording():
    assert days_left({"expires_at": "2026-11-24T00:00:00+00:00"}, NOW) == 0
    assert days_left({"expires_at": "garbage"}, NOW) is None
    assert transform_text("shift_days", 180) == ("shifted by a random number of days, the same for all dates of a "
                                                 "person (at most 180 days)")
    assert transform_text("topcode:90") == "values above 90 shown as 90"


def test_study_file_is_written_read_only(tmp_path):
    path = write_study_file(tmp_path, info(tmp_path))
    assert path.name == "STUDY.md" and oct(path.stat().st_mode & 0o777) == "0o444"
    write_study_file(tmp_path, info(tmp_path))   # a restart replaces it
    assert path.read_text().startswith("# Study alpha")
