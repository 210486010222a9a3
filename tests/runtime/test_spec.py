"""The gate of every spawn (pure): the study comes from the server name alone."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bubble_manager import studies
from bubble_manager.catalog import load_catalog
from bubble_manager.runtime.spec import SpawnRefused, build_spec, check_gate
from bubble_manager.studies import Actor
from bubble_manager.study_request import parse_request
from tests.conftest import DEMO_CATALOG
from tests.hubfixture import request_document

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 9, tzinfo=UTC)
CAROL, ALICE, SAM, ADA = (Actor("carol", frozenset({"researcher"})), Actor("alice", frozenset({"researcher"})),
                          Actor("sam", frozenset({"steward"})), Actor("ada", frozenset({"admin"})))
POLICY = studies.Policy()


def study(state: str = "active", ends: dt.date = dt.date(2027, 3, 1)):
    document = request_document("alpha", ["alice"], dt.date(2026, 11, 1), ends)
    when = dt.datetime(2026, 10, 30, tzinfo=UTC)
    result = studies.apply(None, CAROL, studies.Create(parse_request(document)), now=when, policy=POLICY).study
    result = studies.apply(result, CAROL, studies.Submit(load_catalog(DEMO_CATALOG)), now=when, policy=POLICY).study
    result = studies.apply(result, SAM, studies.Approve("ok", (), None), now=when, policy=POLICY).study
    if state in ("active", "revoked"):
        result = studies.apply(result, ADA, studies.Activate(), now=NOW, policy=POLICY).study
    if state == "revoked":
        result = studies.apply(result, SAM, studies.Revoke("consent withdrawn"), now=NOW, policy=POLICY).study
    return result


@pytest.mark.parametrize("member, server, subject, reason, words", [
    ("alice", "", "active", "default-server", "bubbles are opened per study"),
    ("alice", "Alpha", "active", "unknown-study", "there is no study named 'Alpha'"),
    ("alice", "../etc", "active", "unknown-study", "there is no study named"),
    ("bob", "alpha", "active", "not-member", "ask its requester (carol)"),
    ("carol", "alpha", "active", "not-member", "only its requester"),
    ("alice", "alpha", "revoked", "revoked", "was revoked"),
    ("alice", "alpha", "approved", "not-active", "a bubble opens once"),
])
def test_refusals(member, server, subject, reason, words):
    with pytest.raises(SpawnRefused) as caught:
        check_gate(study(subject) if server == "alpha" else None, member, server, NOW)
    assert caught.value.reason == reason and words in str(caught.value)


def test_an_active_study_past_its_end_is_expired():
    with pytest.raises(SpawnRefused) as caught:
        check_gate(study(), "alice", "alpha", dt.datetime(2027, 3, 2, tzinfo=UTC))
    assert caught.value.reason == "expired" and "ended on 2027-03-01" in str(caught.value)


def test_the_spec_of_a_member_of_an_active_study():
    spec = build_spec(study(), "alice", "alpha", home=Path("/srv/bm"), now=NOW, uid=200001, manifest_sha256="ab",
                      command=("jupyterhub-singleuser",))
    assert spec.expires_at == dt.datetime(2027, 3, 2, tzinfo=UTC)
    assert [(str(m.target), m.read_only) for m in spec.mounts] == [
        ("/data/extract.duckdb", True), ("/home/jovyan/work", False), ("/home/jovyan/shared", False)]
    assert spec.mounts[0].source == Path("/srv/bm/studies/alpha/extract.duckdb")
    assert spec.resources.memory_bytes == 10**9 and spec.environment["BUBBLE_STUDY"] == "alpha"
