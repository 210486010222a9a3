"""Every API endpoint called as every persona, checked against the table in docs/api.md."""

from __future__ import annotations

import datetime as dt
import itertools
import re
from pathlib import Path

import pytest

from bubble_manager.studies import Actor

from .conftest import request_document

DOC = Path(__file__).resolve().parents[2] / "docs" / "api.md"
PERSONAS = {"anonymous": None, "researcher": "carol", "non-member": "mallory", "steward": "sam", "admin": "adam",
            "outsider": "nobody"}
CAROL = Actor("carol", frozenset({"researcher"}))
SAM = Actor("sam", frozenset({"steward"}))
ADAM = Actor("adam", frozenset({"admin"}))
_numbers = itertools.count(1)


def matrix_rows() -> list[dict]:
    lines = [line for line in DOC.read_text().splitlines() if line.startswith("| GET") or line.startswith("| POST")
             or line.startswith("| PUT")]
    header = ["method", "path", "state", *PERSONAS]
    rows = []
    for line in lines:
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append(dict(zip(header, cells)))
    assert len(rows) >= 20, "the table in docs/api.md was not found"
    return rows


def prepare(context, state: str) -> str:
    slug = f"mx{next(_numbers)}-{dt.datetime.now().strftime('%H%M%S%f')[:10]}"
    operations = __import__("bubble_manager.operations", fromlist=["StudyOperations"]).StudyOperations(context)
    operations.request(CAROL, request_document(slug))
    if state in ("submitted", "approved", "active"):
        operations.submit(CAROL, slug)
    if state in ("approved", "active"):
        operations.approve(SAM, slug, "fine")
    if state == "active":
        operations.activate(ADAM, slug)
    return slug


def body_for(path: str, slug: str, caller: str | None) -> dict | None:
    if path == "/studies":
        return request_document(f"new{next(_numbers)}-{(caller or 'anon')[:5]}")
    if path.endswith("}"):
        return {**request_document(slug), "title": "Edited title"} if path == "/studies/{slug}" else None
    action = path.rsplit("/", 1)[1]
    return {
        "approve": {"comment": "ok"}, "reject": {"comment": "no"}, "request-changes": {"comment": "clarify"},
        "revoke": {"reason": "matrix"}, "extend": {"until": str(dt.date.today() + dt.timedelta(days=90))},
        "members": {"add": ["dora"]}, "retention": {"days": 100, "reason": "matrix"}, "stop": {"reason": "matrix"},
        "submit": {}, "activate": {},
    }.get(action)


@pytest.mark.parametrize("row", matrix_rows(), ids=lambda r: f"{r['method']} {r['path']}")
def test_endpoint_answers_each_persona_as_documented(row, api, tokens, hub, store_context):
    results, expected = {}, {}
    for persona, user in PERSONAS.items():
        slug = prepare(store_context, row["state"]) if row["state"] != "-" else "none"
        path = row["path"].replace("{slug}", slug).replace("{user}", "alice")
        if "/bubbles/" in row["path"]:
            hub.hub_api("POST", f"users/alice/servers/{slug}")
        status, body = api.call(row["method"], path, tokens.get(user) if user else None,
                                body_for(row["path"], slug, user) if row["method"] != "GET" else None)
        results[persona] = status
        expected[persona] = int(row[persona])
        if status >= 500:
            pytest.fail(f"server error for {persona}: {body}")
    assert results == expected


def test_refusals_are_audited(api, tokens, store_context):
    before = store_context.audit.count()
    status, _ = api.call("GET", "/audit", tokens["mallory"])
    assert status == 403
    entries = store_context.audit.entries(since_seq=before, action="access.refused")
    assert entries and entries[-1].actor == "mallory"
    assert entries[-1].detail["needed_one_of"] == ["custom:bubbles:admin"]


def test_requester_field_cannot_name_someone_else(api, tokens):
    document = {**request_document("claimed-x"), "requester": "alice"}
    status, body = api.call("POST", "/studies", tokens["carol"], document)
    assert status == 403 and "not 'alice'" in body["error"]


def test_validation_errors_name_the_field(api, tokens):
    document = {**request_document("bad-dates"), "ends": "2020-01-01"}
    status, body = api.call("POST", "/studies", tokens["carol"], document)
    assert status == 400 and body["field"] == "ends"
    status, body = api.call("POST", "/studies", tokens["carol"], {**request_document("x"), "slug": "Not A Slug"})
    assert status == 400 and body["field"] == "slug"
    status, body = api.call("POST", "/studies", tokens["carol"], {**request_document("ok-x"), "extra": 1})
    assert status == 400 and body["field"] == "extra"


def test_steward_sees_all_researcher_only_theirs(api, tokens, store_context):
    slug = prepare(store_context, "draft")
    _, mine = api.call("GET", "/studies", tokens["carol"])
    _, theirs = api.call("GET", "/studies", tokens["mallory"])
    _, all_of_them = api.call("GET", "/studies", tokens["sam"])
    assert slug in [s["slug"] for s in mine["studies"]]
    assert slug not in [s["slug"] for s in theirs["studies"]]
    assert slug in [s["slug"] for s in all_of_them["studies"]]


def test_steward_cannot_review_a_study_they_belong_to(api, tokens, store_context):
    from bubble_manager.operations import StudyOperations

    operations = StudyOperations(store_context)
    slug = f"own{next(_numbers)}"
    operations.request(CAROL, request_document(slug, members=("alice", "sam")))
    operations.submit(CAROL, slug)
    status, body = api.call("POST", f"/studies/{slug}/approve", tokens["sam"], {"comment": "mine"})
    assert status == 403 and "member" in body["error"]


def test_openapi_document_lists_every_route_with_its_scopes_and_nothing_else():
    from bubble_manager.airlock import handlers as airlock_api
    from bubble_manager.service import admin_api, notifications, openapi, studies_api
    from bubble_manager.service.openapi import build_document

    document = build_document()
    implemented: dict[str, set[str]] = {}
    for module in (studies_api, admin_api, notifications, openapi, airlock_api):
        for route, handler in module.default_handlers:
            path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route).removeprefix("/api/v1")
            assert path in document["paths"], f"{path} missing from the OpenAPI document"
            implemented[path] = {method.lower() for method in handler.scopes}
            for method, scopes in handler.scopes.items():
                operation = document["paths"][path].get(method.lower())
                assert operation is not None, f"{method} {path} missing from the OpenAPI document"
                if scopes:
                    assert sorted(operation["x-scopes"]) == sorted(scopes), f"{method} {path}"
    for path, item in document["paths"].items():
        documented = {key for key in item if key in ("get", "put", "post", "patch", "delete")}
        assert documented <= implemented.get(path, set()), f"{path}: {documented} documented, not implemented"


def test_every_steward_decision_needs_a_comment(api, tokens, store_context):
    slug = prepare(store_context, "submitted")
    for action in ("approve", "reject", "request-changes"):
        for body in (None, {}, {"comment": "   "}):
            status, answer = api.call("POST", f"/studies/{slug}/{action}", tokens["sam"], body)
            assert status == 400 and answer["field"] == "comment", (action, body, answer)
    assert api.call("GET", f"/studies/{slug}", tokens["sam"])[1]["state"] == "submitted"
    assert api.call("POST", f"/studies/{slug}/approve", tokens["sam"], {"comment": "Minimal data."})[0] == 200
