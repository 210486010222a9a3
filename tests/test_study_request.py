"""The request document: example file, field errors named, canonical hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from bubble_manager.study_request import (RequestError, check_slug, load_request_yaml, memory_bytes,
                                          parse_request)

EXAMPLE = Path(__file__).resolve().parents[2] / "shared" / "examples" / "study-request.yaml"
LOCAL_EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "examples" / "study-request.yaml"


def example_text() -> str:
    return LOCAL_EXAMPLE.read_text()


def test_the_documented_example_parses():
    request = parse_request(load_request_yaml(example_text()))
    assert request.slug == "t2d-statins"
    assert request.members == ("alice", "bob")
    assert request.resources.memory_bytes == 4 * 10**9
    assert "condition_occurrence.condition_concept_id" in request.columns


@pytest.mark.skipif(not EXAMPLE.exists(), reason="the shared design folder is not beside the project")
def test_local_example_matches_the_shared_design_example():
    assert parse_request(load_request_yaml(EXAMPLE.read_text())) == parse_request(load_request_yaml(example_text()))


@pytest.mark.parametrize("slug", ["a", "t2d-statins", "x1-2-3", "a" * 30])
def test_valid_slugs(slug):
    assert check_slug(slug) == slug


@pytest.mark.parametrize("slug", ["", "1abc", "Abc", "a--b", "a-", "-a", "a_b", "a" * 31, "a b", "é"])
def test_invalid_slugs(slug):
    with pytest.raises(ValueError, match="not a valid study slug"):
        check_slug(slug)


def test_errors_name_each_field():
    document = load_request_yaml(example_text())
    document.update(slug="Bad Slug", members=[], surprise=1)
    with pytest.raises(RequestError) as caught:
        parse_request(document)
    fields = {field for field, _ in caught.value.problems}
    assert {"slug", "members", "surprise"} <= fields


def test_duplicate_field_refused():
    text = example_text() + "\ntitle: again\n"
    with pytest.raises(RequestError, match="title: written twice"):
        parse_request(load_request_yaml(text))


def test_hash_is_canonical_and_changes_with_content():
    a = parse_request(load_request_yaml(example_text()))
    reordered = dict(reversed(list(load_request_yaml(example_text()).items())))
    assert parse_request(reordered).request_hash == a.request_hash
    changed = load_request_yaml(example_text())
    changed["purpose"] += " More."
    assert parse_request(changed).request_hash != a.request_hash


@pytest.mark.parametrize("text,size", [("512M", 512 * 10**6), ("4G", 4 * 10**9), ("8Gi", 8 * 2**30)])
def test_memory_sizes(text, size):
    assert memory_bytes(text) == size


def test_memory_out_of_range_refused():
    document = load_request_yaml(example_text())
    document["resources"] = {"cpu": 2, "memory": "10M"}
    with pytest.raises(RequestError, match="resources.memory"):
        parse_request(document)


def test_not_a_mapping():
    with pytest.raises(RequestError):
        load_request_yaml("- a\n- b\n")
