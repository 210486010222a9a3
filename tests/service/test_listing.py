"""The list endpoint's summaries, read as plain rows, equal `study_summary` of the loaded studies."""

from __future__ import annotations

import datetime as dt

from bubble_manager import clock
from bubble_manager.operations import StudyOperations
from bubble_manager.service.listing import involved, slugs_of, study_summaries, waiting_for_review
from bubble_manager.studies import Actor, study_summary

from .conftest import request_document

CAROL, DORA = Actor("carol", frozenset({"researcher"})), Actor("dora", frozenset({"researcher"}))
SAM, ADAM = Actor("sam", frozenset({"steward"})), Actor("adam", frozenset({"admin"}))


def test_summaries_match_the_domain_for_every_kind_of_study(store_context):
    operations = StudyOperations(store_context)
    stamp = dt.datetime.now().strftime("%H%M%S%f")[:10]
    draft, submitted, approved, active, amended, other = (f"ls{n}-{stamp}" for n in range(6))
    operations.request(CAROL, request_document(draft, members=("alice",)))
    for slug in (submitted, approved, active, amended):
        operations.request(CAROL, request_document(slug, members=("alice", "bob")))
        operations.submit(CAROL, slug)
    for slug in (approved, active, amended):
        operations.approve(SAM, slug, "Minimal data.")
    for slug in (active, amended):
        operations.activate(ADAM, slug)
    operations.extend(CAROL, amended, dt.date.today() + dt.timedelta(days=120))
    operations.change_members(CAROL, active, ("eve",), ("bob",))
    operations.request(DORA, request_document(other, members=("dora",)))
    operations.request_changes(SAM, submitted, "State the follow-up period.")
    operations.set_retention(SAM, active, 400, "legal hold")

    now = clock.utcnow()
    expected = [study_summary(s, now) for s in operations.list()]
    assert study_summaries(store_context, now=now) == expected
    mine = study_summaries(store_context, person="alice", now=now)
    assert mine == [study_summary(s, now) for s in operations.list(person="alice")]
    assert {draft, submitted, active, amended} <= {s["slug"] for s in mine} and other not in {s["slug"] for s in mine}
    assert [s["slug"] for s in study_summaries(store_context, person="dora", now=now)] == [other]
    active_ones = study_summaries(store_context, states=["active"], person="carol", now=now)
    assert active_ones == [study_summary(s, now) for s in operations.list(states=["active"], person="carol")]
    by_slug = {s["slug"]: s for s in expected}
    assert by_slug[amended]["amendment"]["kind"] == "extend" and by_slug[active]["amendment"]["add"] == ["eve"]
    assert by_slug[approved]["approvals"][0]["comment"] == "Minimal data." and by_slug[approved]["days_left"]
    assert by_slug[submitted]["last_comment"] == "State the follow-up period."

    studies = {s.slug: s for s in operations.list()}
    for name in ("carol", "alice", "bob", "eve", "dora", "sam"):
        assert {s["slug"]: involved(s, name) for s in expected} == {k: v.involved(name) for k, v in studies.items()}
        assert slugs_of(store_context, name) == {s.slug for s in operations.list(person=name)}
    waiting = {s["slug"] for s in waiting_for_review(store_context, now)}
    assert waiting == {k for k, v in studies.items()
                       if v.state.value == "submitted" or (v.state.value in ("approved", "active") and v.amendment)}
    assert {amended, active} <= waiting and draft not in waiting and approved not in waiting


def test_the_list_endpoint_shows_a_researcher_only_their_studies(api, tokens, store_context):
    slug = f"lsapi-{dt.datetime.now().strftime('%H%M%S%f')[:10]}"
    StudyOperations(store_context).request(CAROL, request_document(slug, members=("alice",)))
    listed = {user: {s["slug"] for s in api.call("GET", "/studies", tokens[user])[1]["studies"]}
              for user in ("carol", "alice", "mallory", "sam", "adam")}
    assert slug in listed["carol"] and slug in listed["alice"] and slug not in listed["mallory"]
    assert slug in listed["sam"] and slug in listed["adam"]
    status, answer = api.call("GET", "/studies?state=draft&state=submitted", tokens["alice"])
    assert status == 200 and {s["state"] for s in answer["studies"]} <= {"draft", "submitted"}
    assert api.call("GET", "/studies?state=nonsense", tokens["alice"])[0] == 400
