"""Claims to hub groups, usernames, second-factor evidence and review outcomes (pure functions)."""

from __future__ import annotations

import pytest

from bubble_manager.auth.mapping import (DEFAULT_SECOND_FACTOR_AMR, ClaimError, check_group_map, hub_groups,
                                         idp_groups, review, second_factor, username_from)

GROUP_MAP = {"eds-researchers": "researchers", "eds-stewards": "stewards", "eds-admins": "admins"}


@pytest.mark.parametrize("claims, expected", [
    ({"groups": ["eds-researchers"]}, ["researchers"]),
    ({"groups": ["eds-stewards", "eds-researchers", "hospital-staff"]}, ["researchers", "stewards"]),
    ({"groups": ["eds-admins", "eds-admins"]}, ["admins"]),
    ({"groups": "eds-stewards"}, ["stewards"]),                      # AD FS: a lone string is one group
    ({"groups": [" eds-researchers "]}, ["researchers"]),
    ({"groups": []}, []),
    ({"groups": ["hospital-staff", "EDS-RESEARCHERS"]}, []),          # names are exact: no case folding
])
def test_groups_claim_maps_to_hub_groups(claims, expected):
    assert hub_groups(claims, "groups", GROUP_MAP) == expected


def test_nested_groups_claim():
    claims = {"realm_access": {"roles": ["eds-admins", "offline_access"]}}
    assert hub_groups(claims, "realm_access.roles", GROUP_MAP) == ["admins"]


@pytest.mark.parametrize("claims, code", [
    ({}, "groups-claim-missing"),
    ({"group": ["eds-researchers"]}, "groups-claim-missing"),
    ({"realm_access": "eds-researchers"}, "groups-claim-missing"),
    ({"groups": None}, "groups-claim-malformed"),
    ({"groups": 42}, "groups-claim-malformed"),
    ({"groups": {"eds-researchers": True}}, "groups-claim-malformed"),
    ({"groups": ["eds-researchers", 7]}, "groups-claim-malformed"),
    ({"groups": ["eds-researchers", None]}, "groups-claim-malformed"),
    ({"groups": ["eds-researchers", ["eds-stewards"]]}, "groups-claim-malformed"),
    ({"groups": ["eds-researchers", ""]}, "groups-claim-malformed"),
    ({"groups": ["x" * 300]}, "groups-claim-malformed"),
    ({"groups": [f"g{i}" for i in range(1001)]}, "groups-claim-malformed"),
])
def test_missing_or_malformed_groups_claim_is_refused_never_defaulted(claims, code):
    claim = "realm_access.roles" if "realm_access" in claims else "groups"
    with pytest.raises(ClaimError) as refused:
        hub_groups(claims, claim, GROUP_MAP)
    assert refused.value.code == code
    assert claim in str(refused.value)          # the message names the claim it could not read


def test_idp_groups_are_kept_as_sent_for_the_audit():
    assert idp_groups({"groups": ["b", "a"]}, "groups") == ["b", "a"]


@pytest.mark.parametrize("group_map, problem", [
    ({}, "empty"),
    ({"eds-admins": "admin"}, "'admin'"),
    ({"eds-ops": "jupyterhub-admins"}, "jupyterhub-admins"),
])
def test_group_map_targets_only_the_three_hub_groups(group_map, problem):
    with pytest.raises(ValueError, match=problem):
        check_group_map(group_map)
    check_group_map(GROUP_MAP)


@pytest.mark.parametrize("claims, expected", [
    ({"preferred_username": "alice@example.org"}, "alice@example.org"),
    ({"preferred_username": " a.martin "}, "a.martin"),
])
def test_username(claims, expected):
    assert username_from(claims, "preferred_username") == expected


@pytest.mark.parametrize("claims, code", [
    ({}, "username-claim-missing"),
    ({"preferred_username": ""}, "username-claim-malformed"),
    ({"preferred_username": None}, "username-claim-malformed"),
    ({"preferred_username": ["alice"]}, "username-claim-malformed"),
    ({"preferred_username": "../admin"}, "username-claim-malformed"),
    ({"preferred_username": "alice bob"}, "username-claim-malformed"),
    ({"preferred_username": "a" * 200}, "username-claim-malformed"),
])
def test_bad_username_claim_is_refused(claims, code):
    with pytest.raises(ClaimError) as refused:
        username_from(claims, "preferred_username")
    assert refused.value.code == code


@pytest.mark.parametrize("claims, ok", [
    ({"amr": ["pwd", "otp"]}, True),
    ({"amr": ["hwk", "user"]}, True),
    ({"amr": ["mfa"]}, True),
    ({"amr": ["pwd"]}, False),
    ({"amr": ["pwd", "kba"]}, False),
    ({"amr": []}, False),
    ({}, False),
    ({"amr": "otp"}, False),                    # malformed amr (not a list) proves nothing
    ({"amr": [{"otp": True}]}, False),
    ({"acr": "urn:hospital:loa:2"}, True),
    ({"acr": "urn:hospital:loa:1", "amr": ["pwd"]}, False),
    ({"acr": ["urn:hospital:loa:2"]}, False),
])
def test_second_factor(claims, ok):
    decision = second_factor(claims, DEFAULT_SECOND_FACTOR_AMR, {"urn:hospital:loa:2"})
    assert decision.ok is ok
    if not ok:
        assert "second factor" in decision.reason


def test_second_factor_refusal_says_what_the_provider_reported():
    decision = second_factor({"amr": ["pwd"], "acr": "urn:dev:pwd"}, DEFAULT_SECOND_FACTOR_AMR, set())
    assert "pwd" in decision.reason and "urn:dev:pwd" in decision.reason


@pytest.mark.parametrize("previous, current, kind, lost, gained", [
    (["researchers"], ["researchers"], "confirmed", (), ()),
    (["researchers"], ["researchers", "stewards"], "gained", (), ("stewards",)),
    (["researchers", "stewards"], ["researchers"], "reduced", ("stewards",), ()),
    (["researchers", "stewards"], ["stewards"], "reduced", ("researchers",), ()),
    (["researchers"], [], "revoked", ("researchers",), ()),
    (["researchers", "admins"], None, "revoked", ("admins", "researchers"), ()),
    ([], ["researchers"], "gained", (), ("researchers",)),
    (["researchers", "jupyterhub-other"], ["researchers"], "confirmed", (), ()),   # only hub groups count
])
def test_review_outcomes(previous, current, kind, lost, gained):
    outcome = review(previous, current)
    assert (outcome.kind, outcome.lost, outcome.gained) == (kind, lost, gained)
    assert outcome.keeps_access is (kind in ("confirmed", "gained"))
    assert outcome.stops_bubbles is ("researchers" in lost)


def test_review_reason_is_kept():
    assert review(["stewards"], None, "provider-unreachable").reason == "provider-unreachable"
