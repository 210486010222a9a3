"""Host ids of bubbles: one uid per (study, member), one gid per study, recorded and audited once."""

from __future__ import annotations

import pwd

import pytest

from bubble_manager.runtime import uids
from tests.hubfixture import ALICE, BOB, create_study


@pytest.fixture
def two_studies(context):
    create_study(context, "alpha", [ALICE, BOB])
    create_study(context, "beta", [BOB], requester=BOB)
    return context


def test_each_member_gets_a_uid_per_study_and_each_study_a_gid(two_studies):
    context = two_studies
    alice_alpha = uids.allocate(context.store, context.audit, "alpha", ALICE, 300000, 300099)
    bob_alpha = uids.allocate(context.store, context.audit, "alpha", BOB, 300000, 300099)
    bob_beta = uids.allocate(context.store, context.audit, "beta", BOB, 300000, 300099)
    assert alice_alpha.gid == bob_alpha.gid != bob_beta.gid
    assert len({alice_alpha.uid, bob_alpha.uid, bob_beta.uid, alice_alpha.gid, bob_beta.gid}) == 5
    assert all(300000 <= value <= 300099 for value in (alice_alpha.uid, bob_beta.uid, bob_beta.gid))
    assert uids.study_ids(context.store, "alpha") == {"": alice_alpha.gid, ALICE: alice_alpha.uid, BOB: bob_alpha.uid}


def test_allocation_happens_once_and_is_audited(two_studies):
    context = two_studies
    first = uids.allocate(context.store, context.audit, "alpha", ALICE, 300000, 300099)
    again = uids.allocate(context.store, context.audit, "alpha", ALICE, 300000, 300099)
    assert first == again == uids.lookup(context.store, "alpha", ALICE)
    entries = context.audit.entries(action="bubble.uid-allocated", study="alpha")
    assert [(e.detail["kind"], e.detail["id"]) for e in entries] == [("study-group", first.gid), ("member", first.uid)]
    assert uids.lookup(context.store, "alpha", BOB) is None


def test_ids_of_host_accounts_are_skipped(two_studies):
    context = two_studies
    nobody = pwd.getpwnam("nobody").pw_uid
    ids = uids.allocate(context.store, context.audit, "alpha", ALICE, nobody, nobody + 10)
    assert nobody not in (ids.uid, ids.gid)


def test_an_exhausted_range_is_a_clear_error_and_allocates_nothing(two_studies):
    context = two_studies
    uids.allocate(context.store, context.audit, "alpha", ALICE, 300000, 300001)
    with pytest.raises(uids.IdRangeExhausted, match="widen c.LocalBubbles.uid_max"):
        uids.allocate(context.store, context.audit, "beta", BOB, 300000, 300001)
    assert uids.study_ids(context.store, "beta") == {}
