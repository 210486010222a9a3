"""One-time transfer tokens on SQLite and real PostgreSQL: used once, for one study, before expiry; audited."""

from __future__ import annotations

import threading

import pytest

from bubble_manager.runtime import transfer_tokens as tt

pytestmark = pytest.mark.kube
SHA = "ab" * 32


def issue(context, study="t2d-statins", ttl=600, **overrides):
    return tt.issue(context, study=study, purpose=tt.EXTRACT_DOWNLOAD, job="extract-t2d-statins-r1", actor="system",
                    ttl_seconds=ttl, manifest_sha256=SHA, **overrides)


def actions(context) -> list[tuple[str, str | None, dict]]:
    return [(e.action, e.study, e.detail) for e in context.audit.entries(limit=1000) if
            e.action.startswith("transfer.")]


def test_a_token_works_once_for_its_study(context, frozen_clock):
    token = issue(context)
    grant = tt.redeem(context, token.secret, study="t2d-statins", purpose=tt.EXTRACT_DOWNLOAD, client="10.1.2.3")
    assert grant == tt.TransferGrant(token.token_id, "t2d-statins", tt.EXTRACT_DOWNLOAD, SHA,
                                     "extract-t2d-statins-r1")
    with pytest.raises(tt.TransferRefused) as refused:
        tt.redeem(context, token.secret, study="t2d-statins", purpose=tt.EXTRACT_DOWNLOAD)
    assert refused.value.reason == "reused"
    state = tt.token_state(context, token.token_id)
    assert state["outcome"] == "redeemed" and state["uses"] == 2
    assert [(a, s, d.get("reason")) for a, s, d in actions(context)] == [
        ("transfer.token-issued", "t2d-statins", None), ("transfer.redeemed", "t2d-statins", None),
        ("transfer.refused", "t2d-statins", "reused")]


def test_only_the_hash_is_stored_and_the_secret_never_audited(context):
    token = issue(context)
    assert token.secret.startswith("bmxfer_") and tt.TOKEN_SHAPE.match(token.secret)
    with context.store.transaction() as session:
        row = session.get(tt.TransferTokenRow, token.token_id)
        stored = [str(getattr(row, column.key)) for column in tt.TransferTokenRow.__table__.columns]
    assert row.sha256 == tt.token_digest(token.secret)
    assert not any(token.secret in value for value in stored)
    tt.redeem(context, token.secret, study="t2d-statins", purpose=tt.EXTRACT_DOWNLOAD)
    assert token.secret not in repr(token)
    assert not any(token.secret in str(detail) for _, _, detail in actions(context))
    assert context.audit.verify(context.verifier()).as_dict()["ok"]


def test_an_expired_token_is_refused_and_burnt(context, frozen_clock):
    token = issue(context, ttl=60)
    frozen_clock.advance(seconds=61)
    with pytest.raises(tt.TransferRefused, match="expired") as refused:
        tt.redeem(context, token.secret, study="t2d-statins", purpose=tt.EXTRACT_DOWNLOAD)
    assert refused.value.reason == "expired"
    assert tt.token_state(context, token.token_id)["outcome"] == "burnt:expired"


def test_a_token_shown_for_another_study_is_burnt_for_its_own_too(context):
    token = issue(context)
    with pytest.raises(tt.TransferRefused) as refused:
        tt.redeem(context, token.secret, study="other-study", purpose=tt.EXTRACT_DOWNLOAD)
    assert refused.value.reason == "other-study"
    with pytest.raises(tt.TransferRefused) as again:
        tt.redeem(context, token.secret, study="t2d-statins", purpose=tt.EXTRACT_DOWNLOAD)
    assert again.value.reason == "reused"
    refusals = [d["reason"] for a, _, d in actions(context) if a == "transfer.refused"]
    assert refusals == ["other-study", "reused"]


@pytest.mark.parametrize("presented", [None, "", "token abc", "bmxfer_short", "bmxfer_" + "A" * 42 + "!",
                                       "bmxfer_" + "A" * 43])
def test_malformed_or_unknown_tokens_are_refused_and_audited(context, presented):
    issue(context)
    with pytest.raises(tt.TransferRefused) as refused:
        tt.redeem(context, presented, study="t2d-statins", purpose=tt.EXTRACT_DOWNLOAD)
    expected = "unknown" if presented and tt.TOKEN_SHAPE.match(presented) else "malformed"
    assert refused.value.reason == expected
    assert actions(context)[-1][0] == "transfer.refused" and actions(context)[-1][2]["reason"] == expected


def test_an_unused_token_can_be_revoked_and_then_never_works(context):
    token = issue(context)
    assert tt.revoke_unused(context, token.token_id, actor="system", reason="job failed")
    assert not tt.revoke_unused(context, token.token_id, actor="system", reason="again")
    with pytest.raises(tt.TransferRefused, match="already used"):
        tt.redeem(context, token.secret, study="t2d-statins", purpose=tt.EXTRACT_DOWNLOAD)
    used = issue(context)
    tt.redeem(context, used.secret, study="t2d-statins", purpose=tt.EXTRACT_DOWNLOAD)
    assert not tt.revoke_unused(context, used.token_id, actor="system", reason="late")
    assert tt.token_state(context, used.token_id)["outcome"] == "redeemed"


@pytest.mark.parametrize("bad, message", [
    ({"purpose": "anything"}, "purpose"), ({"ttl_seconds": 0}, "between"), ({"ttl_seconds": 10**6}, "between"),
    ({"manifest_sha256": "XYZ"}, "hex")])
def test_bad_issue_requests_are_refused_and_store_nothing(context, bad, message):
    arguments = {"study": "t2d-statins", "purpose": tt.EXTRACT_DOWNLOAD, "job": "j", "actor": "system",
                 "ttl_seconds": 60, "manifest_sha256": SHA, **bad}
    with pytest.raises(ValueError, match=message):
        tt.issue(context, **arguments)
    with context.store.transaction() as session:
        assert session.query(tt.TransferTokenRow).count() == 0
    assert actions(context) == []


def test_two_jobs_racing_with_one_token_get_one_transfer(context):
    token = issue(context)
    results: list[str] = []

    def attempt() -> None:
        try:
            tt.redeem(context, token.secret, study="t2d-statins", purpose=tt.EXTRACT_DOWNLOAD)
            results.append("ok")
        except tt.TransferRefused as refused:
            results.append(refused.reason)

    threads = [threading.Thread(target=attempt) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok"] + ["reused"] * 5
