"""The airlock through the real service: every endpoint as every persona, with real requests; files
leave only as attachments; the two-review rule; the bubble's outbox confirmed by its member."""

from __future__ import annotations

import base64
import datetime as dt
import itertools
import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bubble_manager.airlock.operations import AirlockOperations
from bubble_manager.operations import StudyOperations
from bubble_manager.runtime.spec import StudyPaths
from bubble_manager.studies import Actor

from .flows import ADAM, ALICE, CAROL, SAM, request_document, write_outbox

DOC = Path(__file__).resolve().parents[2] / "docs" / "airlock.md"
PERSONAS = {"anonymous": None, "asker": "alice", "member": "bob", "requester": "carol", "non-member": "mallory",
            "steward": "sam", "member-steward": "tom", "admin": "adam", "outsider": "nobody"}
RITA = Actor("rita", frozenset({"steward"}))  # a second steward involved in nothing (store-side only)
TABLE = b"group,n\na,40\nb,55\n"
_numbers = itertools.count(1)
pytestmark = pytest.mark.slow


def matrix_rows() -> list[dict]:
    text = DOC.read_text().split("## Who may call what", 1)[1]
    rows = []
    for line in text.splitlines():
        if line.startswith(("| GET", "| POST")):
            cells = [c.strip() for c in line.strip("|").split("|")]
            rows.append(dict(zip(["method", "path", *PERSONAS], cells)))
    assert len(rows) == 8, "the airlock table in docs/airlock.md was not found"
    return rows


def new_study(context, members=("alice", "bob", "tom")) -> str:
    slug = f"al{next(_numbers)}-{dt.datetime.now().strftime('%H%M%S%f')[:10]}"
    operations = StudyOperations(context, via={"channel": "tests"})
    operations.request(CAROL, request_document(slug, members))
    operations.submit(CAROL, slug)
    operations.approve(SAM, slug, "fine")
    operations.activate(ADAM, slug)
    StudyPaths(context.home, slug).root.mkdir(parents=True, exist_ok=True)
    return slug


def submitted(context, slug: str, files: dict | None = None) -> tuple[int, int]:
    write_outbox(context, slug, "alice", "tables", files or {"t.csv": TABLE}, counts={"t.csv": ["n"]})
    document = AirlockOperations(context).submit_output(ALICE, slug, "tables")
    return document["id"], document["files"][0]["id"]


def prepare(context, row: dict) -> tuple[str, dict | None]:
    """The study, and the path and body the row's call needs."""
    slug = new_study(context)
    path = row["path"].replace("{slug}", slug)
    body = None
    if path.endswith("/submit"):
        write_outbox(context, slug, "alice", "tables", {"t.csv": TABLE})
        body = {"outbox": "tables"}
    elif path.endswith("/imports"):
        body = {"name": "helper.py", "justification": "a shared helper",
                "content_base64": base64.b64encode(b"def helper():\n    return 1\n").decode()}
    elif path.endswith(("/review", "/file", "/download")):
        request_id, file_id = submitted(context, slug)
        if path.endswith("/download"):
            airlock = AirlockOperations(context)
            airlock.review(SAM, slug, request_id, file_id, "approve", "ok")
            airlock.review(RITA, slug, request_id, file_id, "approve", "agreed")
        if path.endswith("/review"):
            body = {"request": request_id, "file": file_id, "decision": "approve", "comment": "counts of 40 and 55"}
        else:
            path += f"?request={request_id}&file={file_id}"
    return path, body


@pytest.mark.parametrize("row", matrix_rows(), ids=lambda r: f"{r['method']} {r['path']}")
def test_airlock_endpoint_answers_each_persona_as_documented(row, api, tokens, store_context):
    results, expected = {}, {}
    for persona, user in PERSONAS.items():
        path, body = prepare(store_context, row)
        status, answer = api.call(row["method"], path, tokens.get(user) if user else None, body)
        results[persona], expected[persona] = status, int(row[persona])
        if status >= 500:
            pytest.fail(f"server error for {persona}: {answer}")
    assert results == expected


def call(hub, path: str, token: str | None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(hub.service_url + "api/v1" + path,
                                     headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as error:
        return error.code, {k.lower(): v for k, v in error.headers.items()}, error.read()


def test_an_output_leaves_once_as_an_attachment_after_two_reviews(hub, api, tokens, store_context):
    slug = new_study(store_context)
    request_id, file_id = submitted(store_context, slug)
    review = {"request": request_id, "file": file_id, "decision": "approve", "comment": "all counts of 40 or more"}
    status, document = api.call("POST", f"/studies/{slug}/airlock/review", tokens["sam"], review)
    assert status == 200 and document["files"][0]["state"] == "pending"  # required_reviews = 2 here
    status, _, _ = call(hub, f"/studies/{slug}/airlock/download?request={request_id}&file={file_id}", tokens["alice"])
    assert status == 409
    status, document = api.call("POST", f"/studies/{slug}/airlock/review", tokens["sam"], review)
    assert status == 409 and document["problems"] == [{"rule": "already-reviewed"}]
    AirlockOperations(store_context).review(RITA, slug, request_id, file_id, "approve", "agreed")
    status, headers, data = call(hub, f"/studies/{slug}/airlock/download?request={request_id}&file={file_id}",
                                 tokens["alice"])
    assert status == 200 and data == TABLE
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"].startswith('attachment; filename="t.csv"')
    assert headers["content-security-policy"].startswith("sandbox;") and headers["x-content-type-options"] == "nosniff"
    status, _, body = call(hub, f"/studies/{slug}/airlock/download?request={request_id}&file={file_id}", tokens["alice"])
    assert status == 409 and json.loads(body)["problems"] == [{"rule": "already-downloaded"}]
    audit = store_context.audit.entries(study=slug, action="airlock.*")
    assert [(e.action, e.actor) for e in audit] == [
        ("airlock.submitted", "alice"), ("airlock.reviewed", "sam"), ("airlock.refused", "alice"),
        ("airlock.refused", "sam"), ("airlock.reviewed", "rita"), ("airlock.released", "bubble-manager"),
        ("airlock.downloaded", "alice"), ("airlock.refused", "alice")]
    assert audit[-1].detail["rule"] == "already-downloaded" and audit[-1].detail["via"] == {"channel": "api"}


def test_stewards_get_figures_as_images_and_pages_as_attachments(hub, tokens, store_context, acro_outputs):
    slug = new_study(store_context)
    write_outbox(store_context, slug, "alice", "tables", {"figure.png": acro_outputs.parent / "figure.png",
                                                          "page.html": b"<script>alert(document.cookie)</script>"})
    document = AirlockOperations(store_context).submit_output(ALICE, slug, "tables")
    files = {f["path"]: f["id"] for f in document["files"]}
    base = f"/studies/{slug}/airlock/file?request={document['id']}"
    status, headers, data = call(hub, f"{base}&file={files['figure.png']}&as=image", tokens["sam"])
    assert status == 200 and headers["content-type"] == "image/png" and data.startswith(b"\x89PNG")
    assert headers["content-disposition"].startswith("inline") and "sandbox" in headers["content-security-policy"]
    status, headers, data = call(hub, f"{base}&file={files['page.html']}", tokens["sam"])
    assert status == 200 and headers["content-type"] == "application/octet-stream"
    assert headers["content-disposition"].startswith("attachment") and b"<script>" in data
    status, _, body = call(hub, f"{base}&file={files['page.html']}&as=image", tokens["sam"])
    assert status == 409 and json.loads(body)["problems"] == [{"rule": "not-an-image"}]


def test_a_member_confirms_their_outbox_and_a_link_in_it_is_refused(api, tokens, store_context):
    slug = new_study(store_context)
    folder = write_outbox(store_context, slug, "alice", "tables", {"t.csv": TABLE}, counts={"t.csv": ["n"]})
    status, answer = api.call("GET", f"/studies/{slug}/airlock/outbox", tokens["alice"])
    assert status == 200 and [e["name"] for e in answer["outbox"]] == ["tables"]
    assert answer["outbox"][0]["submitted_as"] == [] and answer["outbox"][0]["files"] == 1
    status, answer = api.call("GET", f"/studies/{slug}/airlock/outbox", tokens["bob"])
    assert status == 200 and answer["outbox"] == []
    (folder / "keys.csv").symlink_to(store_context.home / "keys" / "hub-signing.key")
    status, answer = api.call("POST", f"/studies/{slug}/airlock/submit", tokens["alice"], {"outbox": "tables"})
    assert status == 400 and answer["problems"] == [{"path": "keys.csv", "code": "symlink",
                                                     "reason": "a symbolic link (never followed)"}]
    (folder / "keys.csv").unlink()
    status, answer = api.call("POST", f"/studies/{slug}/airlock/submit", tokens["alice"], {"outbox": "tables"})
    assert status == 201 and answer["files"][0]["verdict"] == "pass" and answer["requester"] == "alice"
    status, queue = api.call("GET", "/airlock/queue", tokens["sam"])
    assert answer["id"] in [r["id"] for r in queue["requests"]]


def test_bad_bodies_name_the_field(api, tokens, store_context):
    slug = new_study(store_context)
    status, answer = api.call("POST", f"/studies/{slug}/airlock/review", tokens["sam"],
                              {"request": "x", "file": 1, "decision": "approve", "comment": "c"})
    assert status == 400 and answer["field"] == "request"
    status, answer = api.call("POST", f"/studies/{slug}/airlock/imports", tokens["alice"],
                              {"name": "a.py", "justification": "j", "content_base64": "***"})
    assert status == 400 and answer["field"] == "content_base64"
    status, answer = api.call("POST", f"/studies/{slug}/airlock/imports", tokens["alice"],
                              {"name": "a.exe", "justification": "j", "content_base64": "TVo="})
    assert status == 409 and answer["problems"] == [{"rule": "import-type"}]
    status, answer = api.call("GET", f"/studies/{slug}/airlock/download?request=999999&file=1", tokens["alice"])
    assert status == 404


def test_stewards_hear_of_a_request_and_the_member_of_the_decision(api, tokens, store_context, smtp_sink):
    slug = new_study(store_context)
    write_outbox(store_context, slug, "alice", "tables", {"t.csv": TABLE}, counts={"t.csv": ["n"]})
    status, document = api.call("POST", f"/studies/{slug}/airlock/submit", tokens["alice"], {"outbox": "tables"})
    assert status == 201
    subject = f"Output request #{document['id']} to review for study {slug}"
    told = smtp_sink.wait_for(lambda m: m["Subject"] == subject)
    assert [m["To"] for m in told] == ["sam@chu.example"]  # tom is a member of this study: not asked
    review = {"request": document["id"], "file": document["files"][0]["id"], "decision": "reject",
              "comment": "not needed"}
    status, answer = api.call("POST", f"/studies/{slug}/airlock/review", tokens["sam"], review)
    assert status == 200 and answer["state"] == "decided" and answer["decided_now"] is True
    decided = smtp_sink.wait_for(lambda m: m["Subject"] == f"Your output request #{document['id']} for study "
                                                           f"{slug} is decided")
    assert [m["To"] for m in decided] == ["alice@chu.example"]
    assert "0 of 1 files approved" in decided[0].get_payload()
