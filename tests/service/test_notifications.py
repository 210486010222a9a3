"""Stewards hear of new requests, researchers of decisions: in the panel feed and by e-mail."""

from __future__ import annotations

from .conftest import request_document


def test_submission_mails_stewards_and_decision_mails_participants(api, tokens, smtp_sink):
    assert api.call("POST", "/studies", tokens["carol"], request_document("notify-me"))[0] == 201
    assert api.call("POST", "/studies/notify-me/submit", tokens["carol"])[0] == 200
    to_stewards = smtp_sink.wait_for(lambda m: "notify-me" in m["Subject"] and "review" in m["Subject"])
    assert to_stewards, "no e-mail reached the stewards"
    assert set(to_stewards[0]["To"].split(", ")) == {"sam@chu.example", "tom@chu.example"}
    assert api.call("POST", "/studies/notify-me/request-changes", tokens["sam"], {"comment": "state the period"})[0] == 200
    decision = smtp_sink.wait_for(lambda m: m["Subject"] == "Changes requested on study notify-me")
    assert decision and set(decision[0]["To"].split(", ")) == {"carol@chu.example", "alice@chu.example",
                                                                "bob@chu.example"}
    assert "state the period" in decision[0].get_payload()


def test_panel_feed_shows_what_concerns_each_person(api, tokens):
    api.call("POST", "/studies", tokens["carol"], request_document("feed-one"))
    api.call("POST", "/studies/feed-one/submit", tokens["carol"])
    api.call("POST", "/studies/feed-one/approve", tokens["sam"], {"comment": "fine"})
    _, alice_feed = api.call("GET", "/notifications", tokens["alice"])
    assert any(n["study"] == "feed-one" and n["action"] == "study.approved" for n in alice_feed["notifications"])
    _, tom_feed = api.call("GET", "/notifications", tokens["tom"])
    assert any(n["study"] == "feed-one" and n["action"] == "study.submitted" for n in tom_feed["notifications"])
    _, mallory_feed = api.call("GET", "/notifications", tokens["mallory"])
    assert not any(n["study"] == "feed-one" for n in mallory_feed["notifications"])


def test_the_stewards_who_approved_a_study_see_its_expiry_warnings_and_no_one_else_s(context):
    from bubble_manager.service.notifications import feed_for

    context.audit.record(actor="sam", action="study.approved", study="diab", detail={"approvers": ["sam"]})
    context.audit.record(actor="tom", action="study.approved", study="onco", detail={"approvers": ["tom"]})
    context.audit.record(actor="tom", action="study.amended", study="diab", detail={"approvers": ["tom"]})
    for slug in ("diab", "onco"):
        context.audit.record(actor="system", action="study.expiry_warning", study=slug, detail={"days": 3})

    def warned(name: str, is_steward: bool = True, mine: frozenset = frozenset()) -> set[str]:
        return {n["study"] for n in feed_for(context, name, is_steward, set(mine)) if n["action"] == "study.expiry_warning"}

    assert warned("sam") == {"diab"}
    assert warned("tom") == {"diab", "onco"}, "approving an amendment counts too"
    assert warned("sam", is_steward=False) == set(), "only as a steward"
    assert warned("ursula") == set()
    assert warned("alice", is_steward=False, mine=frozenset({"onco"})) == {"onco"}, "members still see theirs"
    text = next(n["text"] for n in feed_for(context, "sam", True, set()) if n["action"] == "study.expiry_warning")
    assert text == "Study diab ends in 3 day(s)"
