"""The study lifecycle as a pure function: every transition and every refusal."""

from __future__ import annotations

import datetime as dt

import pytest

from bubble_manager import studies
from bubble_manager.catalog import load_catalog
from bubble_manager.studies import (Activate, Actor, Approve, Archive, Create, Edit, Expire, Policy,
                                    ProposeExtension, ProposeMembers, Purge, Reject, RequestChanges, Revoke,
                                    SetRetention, State, Submit, TransitionError, apply)
from bubble_manager.study_request import parse_request

from .conftest import DEMO_CATALOG

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CATALOG = load_catalog(DEMO_CATALOG)
POLICY = Policy()
CAROL = Actor("carol", frozenset({"researcher"}))
ALICE = Actor("alice", frozenset({"researcher", "steward"}))  # a member who is also a steward
SAM = Actor("sam", frozenset({"steward"}))
TOM = Actor("tom", frozenset({"steward"}))
ADMIN = Actor("root-admin", frozenset({"admin"}))
SYSTEM = studies.SYSTEM


def document(**changes):
    base = {
        "title": "Type 2 diabetes and statins", "slug": "t2d-statins",
        "purpose": "Describe statin exposure in adults with type 2 diabetes.",
        "legal_basis": "public-interest research, MR-004", "members": ["alice", "bob"],
        "starts": "2026-12-01", "ends": "2027-05-31",
        "data": {"person": ["person_id", "birth_date"], "condition_occurrence": ["person_id", "condition_concept_id"]},
        "cohort": "SELECT DISTINCT person_id FROM condition_occurrence WHERE condition_concept_id = 201826",
    }
    base.update(changes)
    return base


def run(study, actor, action, now=NOW, policy=POLICY):
    return apply(study, actor, action, now=now, policy=policy)


def created(**changes):
    return run(None, CAROL, Create(parse_request(document(**changes)))).study


def submitted(**changes):
    return run(created(**changes), CAROL, Submit(CATALOG)).study


def approved(policy=POLICY, **changes):
    study = submitted(**changes)
    for steward in (SAM, TOM)[: policy.required_approvals]:
        study = run(study, steward, Approve(catalog=CATALOG), policy=policy).study
    return study


def active(**changes):
    return run(approved(**changes), ADMIN, Activate(), now=dt.datetime(2026, 12, 1, tzinfo=UTC)).study


def refused(rule, study, actor, action, now=NOW, policy=POLICY):
    with pytest.raises(TransitionError) as caught:
        run(study, actor, action, now=now, policy=policy)
    assert caught.value.rule == rule, str(caught.value)
    return str(caught.value)


# --- the happy path, one transition at a time ---

def test_create_makes_a_draft_owned_by_the_actor():
    result = run(None, CAROL, Create(parse_request(document())))
    assert result.study.state is State.draft
    assert result.study.requester == "carol"
    assert result.study.version == 1
    assert [e.action for e in result.events] == ["study.requested"]
    assert result.events[0].detail["request_hash"] == result.study.request_hash


def test_submit_approve_activate_expire_archive_purge():
    study = submitted()
    assert study.state is State.submitted
    result = run(study, SAM, Approve(comment="fine", catalog=CATALOG))
    assert result.study.state is State.approved
    assert [e.action for e in result.events] == ["study.approval", "study.approved"]
    study = run(result.study, ADMIN, Activate(), now=dt.datetime(2026, 12, 1, 0, 0, tzinfo=UTC)).study
    assert study.state is State.active
    end = dt.datetime(2027, 6, 1, 0, 0, tzinfo=UTC)
    study = run(study, SYSTEM, Expire(), now=end).study
    assert study.state is State.expired and study.closed_on == dt.date(2027, 6, 1)
    study = run(study, SYSTEM, Archive(), now=end).study
    assert study.state is State.archived
    assert study.retention_until == dt.date(2027, 6, 1) + dt.timedelta(days=POLICY.retention_days)
    purge_day = dt.datetime.combine(study.retention_until + dt.timedelta(days=1), dt.time(), UTC)
    study = run(study, SYSTEM, Purge(), now=purge_day).study
    assert study.state is State.purged


def test_changes_requested_loop_and_edit_voids_nothing_then_resubmit():
    study = run(submitted(), SAM, RequestChanges("narrow the cohort")).study
    assert study.state is State.changes_requested and study.last_comment == "narrow the cohort"
    edited = run(study, CAROL, Edit(parse_request(document(title="T2D and statins, narrowed")))).study
    assert edited.version == 2 and edited.request_hash != study.request_hash
    again = run(edited, CAROL, Submit(CATALOG)).study
    assert again.state is State.submitted
    assert run(again, SAM, Approve(catalog=CATALOG)).study.state is State.approved


def test_reject_is_final():
    study = run(submitted(), SAM, Reject("no legal basis")).study
    assert study.state is State.rejected
    refused("state", study, CAROL, Submit(CATALOG))
    refused("state", study, SAM, Approve(catalog=CATALOG))


def test_revoke_from_every_live_state():
    for study in (submitted(), approved(), active(),
                  run(submitted(), SAM, RequestChanges("x")).study):
        result = run(study, SAM, Revoke("data breach suspected"))
        assert result.study.state is State.revoked
        assert result.events[0].detail["previous_state"] == study.state.value
        archived = run(result.study, SYSTEM, Archive()).study
        assert archived.state is State.archived


def test_revoke_refused_from_draft_expired_and_without_reason():
    refused("state", created(), SAM, Revoke("x"))
    expired = run(active(), SYSTEM, Expire(), now=dt.datetime(2027, 6, 1, tzinfo=UTC)).study
    refused("state", expired, SAM, Revoke("x"))
    refused("comment-required", active(), SAM, Revoke("  "))
    refused("role", active(), CAROL, Revoke("I want out"))


def test_each_action_refused_outside_the_states_it_is_allowed_from():
    draft = created()
    message = refused("state", draft, SAM, Approve(catalog=CATALOG))
    assert "it is draft" in message and "only a submitted request" in message
    refused("state", draft, SAM, Reject("x"))
    refused("state", draft, SAM, RequestChanges("x"))
    refused("state", draft, ADMIN, Activate(), now=dt.datetime(2026, 12, 1, tzinfo=UTC))
    refused("state", approved(), CAROL, Submit(CATALOG))
    refused("state", approved(), SAM, Approve(catalog=CATALOG))
    refused("state", active(), SYSTEM, Archive())
    refused("state", active(), ADMIN, Activate(), now=dt.datetime(2026, 12, 2, tzinfo=UTC))
    refused("state", submitted(), SYSTEM, Expire(), now=dt.datetime(2027, 6, 1, tzinfo=UTC))
    end = dt.datetime(2027, 6, 1, tzinfo=UTC)
    expired = run(active(), SYSTEM, Expire(), now=end).study
    refused("state", expired, SYSTEM, Purge(), now=end + dt.timedelta(days=5000))
    refused("state", expired, CAROL, ProposeExtension(dt.date(2027, 8, 1)), now=end)
    refused("role", expired, CAROL, Archive(), now=end)
    refused("state", created(), SAM, SetRetention(10, "nothing to keep"))


# --- separation of duties ---

def test_self_approval_refused():
    steward_researcher = Actor("carol", frozenset({"researcher", "steward"}))
    study = run(None, steward_researcher, Create(parse_request(document()))).study
    study = run(study, steward_researcher, Submit(CATALOG)).study
    message = refused("self-review", study, steward_researcher, Approve(catalog=CATALOG))
    assert "requested" in message


def test_member_approval_refused():
    assert "member" in refused("member-review", submitted(), ALICE, Approve(catalog=CATALOG))
    refused("member-review", submitted(), ALICE, Reject("x"))
    refused("member-review", submitted(), ALICE, RequestChanges("x"))


def test_non_steward_cannot_review_and_system_never_reviews():
    refused("role", submitted(), CAROL, Approve(catalog=CATALOG))
    refused("role", submitted(), ADMIN, Approve(catalog=CATALOG))
    refused("role", submitted(), SYSTEM, Approve(catalog=CATALOG))


def test_two_distinct_stewards_when_required():
    policy = Policy(required_approvals=2)
    study = submitted()
    once = run(study, SAM, Approve(catalog=CATALOG), policy=policy).study
    assert once.state is State.submitted and len(once.approvals) == 1
    refused("already-approved", once, SAM, Approve(catalog=CATALOG), policy=policy)
    twice = run(once, TOM, Approve(catalog=CATALOG), policy=policy).study
    assert twice.state is State.approved
    assert [a.steward for a in twice.approvals] == ["sam", "tom"]


def test_approvals_bound_to_the_version_approved():
    policy = Policy(required_approvals=2)
    once = run(submitted(), SAM, Approve(catalog=CATALOG), policy=policy).study
    back = run(once, TOM, RequestChanges("fix title"), policy=policy).study
    assert back.approvals == ()
    edited = run(back, CAROL, Edit(parse_request(document(title="Another title"))), policy=policy).study
    resubmitted = run(edited, CAROL, Submit(CATALOG), policy=policy).study
    after = run(resubmitted, SAM, Approve(catalog=CATALOG), policy=policy).study
    assert after.state is State.submitted, "the first approval was for another version and must not count"
    assert all(a.target_hash == edited.request_hash for a in after.approvals)


def test_requester_only_edits_and_submits():
    refused("requester-only", created(), SAM, Submit(CATALOG))
    refused("requester-only", created(), ALICE, Edit(parse_request(document())))


def test_edit_refused_after_submission_and_slug_fixed():
    refused("state", submitted(), CAROL, Edit(parse_request(document(title="changed"))))
    refused("slug-fixed", created(), CAROL, Edit(parse_request(document(slug="other-slug"))))


# --- dates ---

def test_expired_dates_refused_at_create_submit_and_approve():
    refused("dates", None, CAROL, Create(parse_request(document(starts="2026-01-01", ends="2026-06-30"))))
    draft = created()
    late = dt.datetime(2027, 6, 1, 0, 0, tzinfo=UTC)
    refused("dates", draft, CAROL, Submit(CATALOG), now=late)
    refused("dates", submitted(), SAM, Approve(catalog=CATALOG), now=late)


def test_end_before_start_refused_at_parse():
    from bubble_manager.study_request import RequestError

    with pytest.raises(RequestError) as caught:
        parse_request(document(starts="2027-01-01", ends="2026-12-31"))
    assert "ends" in str(caught.value) and "after" in str(caught.value)


def test_maximum_study_length():
    policy = Policy(max_study_days=30)
    message = refused("dates", None, CAROL, Create(parse_request(document())), policy=policy)
    assert "at most 30" in message


def test_activate_only_in_the_study_period():
    study = approved()
    refused("not-started", study, ADMIN, Activate(), now=NOW)
    refused("expired", study, ADMIN, Activate(), now=dt.datetime(2027, 6, 1, tzinfo=UTC))
    refused("role", study, CAROL, Activate(), now=dt.datetime(2026, 12, 1, tzinfo=UTC))
    refused("role", study, SAM, Activate(), now=dt.datetime(2026, 12, 1, tzinfo=UTC))
    refused("state", submitted(), ADMIN, Activate(), now=dt.datetime(2026, 12, 1, tzinfo=UTC))


def test_expire_only_after_the_last_day():
    study = active()
    refused("not-ended", study, SYSTEM, Expire(), now=dt.datetime(2027, 5, 31, 23, 59, tzinfo=UTC))
    assert run(study, SYSTEM, Expire(), now=dt.datetime(2027, 6, 1, tzinfo=UTC)).study.state is State.expired
    refused("role", study, CAROL, Expire(), now=dt.datetime(2027, 6, 2, tzinfo=UTC))


def test_purge_waits_for_retention_and_steward_override():
    end = dt.datetime(2027, 6, 1, tzinfo=UTC)
    study = run(run(active(), SYSTEM, Expire(), now=end).study, SYSTEM, Archive(), now=end).study
    message = refused("retention", study, SYSTEM, Purge(), now=end + dt.timedelta(days=30))
    assert "set-retention" in message
    shortened = run(study, SAM, SetRetention(10, "consent withdrawn for reuse"), now=end).study
    assert shortened.retention_until == dt.date(2027, 6, 11)
    assert run(shortened, SYSTEM, Purge(), now=dt.datetime(2027, 6, 12, tzinfo=UTC)).study.state is State.purged
    refused("role", study, CAROL, SetRetention(1, "x"))
    refused("retention-range", study, SAM, SetRetention(POLICY.max_retention_days + 1, "x"))
    refused("comment-required", study, SAM, SetRetention(5, ""))


def test_retention_override_before_archiving_is_used_at_archive():
    study = run(active(), SAM, SetRetention(100, "short study")).study
    end = dt.datetime(2027, 6, 1, tzinfo=UTC)
    archived = run(run(study, SYSTEM, Expire(), now=end).study, SYSTEM, Archive(), now=end).study
    assert archived.retention_until == dt.date(2027, 6, 1) + dt.timedelta(days=100)


def test_acting_on_a_purged_study_refused():
    end = dt.datetime(2027, 6, 1, tzinfo=UTC)
    study = run(run(active(), SYSTEM, Expire(), now=end).study, SYSTEM, Archive(), now=end).study
    study = run(study, SAM, SetRetention(0, "done"), now=end).study
    purged = run(study, SYSTEM, Purge(), now=end + dt.timedelta(days=2)).study
    for actor, action in ((SAM, Approve(catalog=CATALOG)), (SAM, Revoke("x")), (SYSTEM, Archive()),
                          (CAROL, ProposeExtension(dt.date(2030, 1, 1))), (SAM, SetRetention(1, "x"))):
        assert "purged" in refused("purged", purged, actor, action)


# --- catalog checks at submission ---

def test_unknown_columns_and_identifiers_refused_at_submit():
    draft = created(data={"person": ["person_id", "shoe_size"], "identity": ["nir"], "nope": ["x"]})
    message = refused("catalog", draft, CAROL, Submit(CATALOG))
    assert "person.shoe_size is not in the catalog" in message
    assert "identity" in message and "never leaves" in message
    assert "'nope' is not in the catalog" in message


def test_direct_identifier_column_in_clinical_table_refused():
    from bubble_manager.catalog import parse_catalog

    raw = dict(CATALOG.raw)
    raw["tables"] = dict(raw["tables"])
    person = dict(raw["tables"]["person"])
    person["columns"] = {**person["columns"], "ssn": {"type": "VARCHAR", "class": "direct_identifier"}}
    raw["tables"]["person"] = person
    catalog = parse_catalog(raw)
    draft = created(data={"person": ["person_id", "ssn"]})
    assert "direct identifier" in refused("catalog", draft, CAROL, Submit(catalog))


def test_free_text_needs_every_approver_to_name_it():
    policy = Policy(required_approvals=2)
    study = submitted(data={"note": ["person_id", "note_text", "note_date"]})
    refused("free-text", study, SAM, Approve(include_free_text=("person.birth_date",), catalog=CATALOG), policy=policy)
    once = run(study, SAM, Approve(include_free_text=("note.note_text",), catalog=CATALOG), policy=policy).study
    twice = run(once, TOM, Approve(catalog=CATALOG), policy=policy).study
    assert twice.state is State.approved and twice.free_text_approved == ()
    both = run(once, TOM, Approve(include_free_text=("note.note_text",), catalog=CATALOG), policy=policy).study
    assert both.free_text_approved == ("note.note_text",)


# --- amendments ---

def test_extension_is_an_amendment_approved_by_a_steward():
    study = active()
    proposed = run(study, ALICE, ProposeExtension(dt.date(2027, 8, 31))).study
    assert proposed.amendment is not None and proposed.ends == dt.date(2027, 5, 31)
    refused("amendment-pending", proposed, CAROL, ProposeExtension(dt.date(2027, 9, 30)))
    refused("member-review", proposed, ALICE, Approve(catalog=CATALOG))
    result = run(proposed, SAM, Approve(catalog=CATALOG))
    assert result.study.ends == dt.date(2027, 8, 31) and result.study.amendment is None
    assert result.study.state is State.active
    assert "study.amended" in [e.action for e in result.events]


def test_extension_rules():
    study = active()
    refused("extension-shorter", study, CAROL, ProposeExtension(dt.date(2027, 5, 1)))
    refused("dates", study, CAROL, ProposeExtension(dt.date(2030, 1, 1)))
    refused("role", study, Actor("mallory", frozenset({"researcher"})), ProposeExtension(dt.date(2027, 7, 1)))
    refused("state", created(), CAROL, ProposeExtension(dt.date(2027, 7, 1)))


def test_member_change_amendment_and_new_member_cannot_approve():
    study = active()
    proposed = run(study, CAROL, ProposeMembers(add=("tom",), remove=("bob",))).study
    refused("member-review", proposed, TOM, Approve(catalog=CATALOG))
    done = run(proposed, SAM, Approve(catalog=CATALOG)).study
    assert done.members == ("alice", "tom")
    refused("members-present", done, CAROL, ProposeMembers(add=("alice",)))
    refused("members-absent", done, CAROL, ProposeMembers(remove=("bob",)))
    refused("members-none", done, CAROL, ProposeMembers(remove=("alice", "tom")))
    refused("members-empty", done, CAROL, ProposeMembers())


def test_rejecting_an_amendment_keeps_the_study():
    proposed = run(active(), CAROL, ProposeExtension(dt.date(2027, 7, 31))).study
    result = run(proposed, SAM, Reject("not justified"))
    assert result.study.state is State.active and result.study.amendment is None
    assert result.study.ends == dt.date(2027, 5, 31)


def test_amendment_with_two_required_approvals():
    policy = Policy(required_approvals=2)
    proposed = run(approved(policy=policy), CAROL, ProposeExtension(dt.date(2027, 7, 31)), policy=policy).study
    once = run(proposed, SAM, Approve(catalog=CATALOG), policy=policy).study
    assert once.ends == dt.date(2027, 5, 31) and once.amendment is not None
    twice = run(once, TOM, Approve(catalog=CATALOG), policy=policy).study
    assert twice.ends == dt.date(2027, 7, 31)


def test_researcher_role_needed_to_request():
    refused("role", None, SAM, Create(parse_request(document())))


def test_create_twice_refused():
    refused("slug-taken", created(), CAROL, Create(parse_request(document())))


def test_naive_now_refused():
    with pytest.raises(ValueError):
        apply(None, CAROL, Create(parse_request(document())), now=dt.datetime(2026, 11, 23), policy=POLICY)
