"""The panel's pages: rendered for each role, escaped, with security headers and XSRF-protected forms."""

from __future__ import annotations

import urllib.error
import urllib.request

from .conftest import request_document


def page(hub, path: str, token: str | None) -> tuple[int, str, dict]:
    request = urllib.request.Request(hub.service_url + path,
                                     headers={"Authorization": f"token {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read().decode(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace"), error.headers


def test_review_page_shows_plan_cohort_size_and_risk(hub, api, tokens):
    api.call("POST", "/studies", tokens["carol"], request_document("review-me"))
    api.call("POST", "/studies/review-me/submit", tokens["carol"])
    status, html, _ = page(hub, "review/review-me", tokens["sam"])
    assert status == 200, html[:500]
    assert 'id="cohort-size"' in html and 'id="plan"' in html and 'id="risk"' in html
    assert "pseudonym" in html, "the plan shows the transform of the person key"
    status, html, _ = page(hub, "review/review-me", tokens["carol"])
    assert status == 403


def test_user_strings_are_escaped_and_headers_set(hub, api, tokens):
    document = {**request_document("xss-title"), "title": "<script>alert(1)</script> study"}
    assert api.call("POST", "/studies", tokens["carol"], document)[0] == 201
    status, html, headers = page(hub, "studies/xss-title", tokens["carol"])
    assert status == 200
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "default-src 'none'" in csp and "script-src 'self'" in csp
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["X-Frame-Options"] == "DENY"


def test_home_page_for_each_role(hub, tokens):
    for user, marker in (("carol", 'id="nav-new"'), ("sam", 'id="nav-review"'), ("adam", 'id="nav-admin"')):
        status, html, _ = page(hub, "", tokens[user])
        assert status == 200 and marker in html, user
    assert page(hub, "", tokens["nobody"])[0] == 403


def test_forms_carry_an_xsrf_token(hub, tokens):
    status, html, _ = page(hub, "studies/new", tokens["carol"])
    assert status == 200 and 'name="_xsrf"' in html
    assert 'name="col:identity"' not in html, "identity tables are never offered"


def test_a_signed_in_browser_session_submits_a_form(hub):
    """Cookie (OAuth) sessions post forms with their XSRF token; without it the post is refused."""
    import re

    import requests

    from .servicehub import PASSWORD

    session = requests.Session()
    login = session.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', login.text).group(1)
    session.post(f"{hub.url}/hub/login", data={"username": "carol", "password": PASSWORD, "_xsrf": xsrf}, timeout=30)
    form = session.get(hub.service_url + "studies/new", timeout=60)  # the OAuth dance happens here
    assert form.status_code == 200 and 'id="request-form"' in form.text
    token = re.search(r'name="_xsrf" value="([^"]+)"', form.text).group(1)
    fields = {"title": "Cookie session study", "slug": "cookie-form", "purpose": "A study posted from a form.",
              "legal_basis": "public-interest research", "members": "alice", "starts": "2026-12-01",
              "ends": "2027-03-01", "col:person": ["person_id", "birth_date"],
              "cohort": "SELECT person_id FROM person", "cpu": "1", "memory": "2G", "then": "save"}
    refused = session.post(hub.service_url + "studies/new", data=fields, timeout=60, allow_redirects=False)
    # HubAuth treats a cookie without its XSRF token as no identity at all
    assert refused.status_code in (401, 403), "a form without its XSRF token is refused"
    created = session.post(hub.service_url + "studies/new", data={**fields, "_xsrf": token}, timeout=60,
                           allow_redirects=False)
    assert created.status_code == 302 and created.headers["Location"].endswith("/studies/cookie-form")
    assert session.get(hub.service_url + "studies/cookie-form", timeout=60).status_code == 200


def signed_in(hub, user: str):
    """A browser-like session signed in to the hub (cookie) and to the panel (OAuth)."""
    import re

    import requests

    from .servicehub import PASSWORD

    session = requests.Session()
    login = session.get(f"{hub.url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', login.text).group(1)
    session.post(f"{hub.url}/hub/login", data={"username": user, "password": PASSWORD, "_xsrf": xsrf}, timeout=30)
    return session


def test_the_review_page_refuses_a_decision_without_a_comment(hub, api, tokens, store_context):
    import re

    api.call("POST", "/studies", tokens["carol"], request_document("no-comment"))
    api.call("POST", "/studies/no-comment/submit", tokens["carol"])
    session = signed_in(hub, "sam")
    review = session.get(hub.service_url + "review/no-comment", timeout=120)
    assert review.status_code == 200 and 'name="comment" rows="3" required' in review.text
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', review.text).group(1)
    before = store_context.audit.count()
    for action in ("approve", "reject", "request-changes"):
        answer = session.post(hub.service_url + f"studies/no-comment/do/{action}", timeout=60, allow_redirects=False,
                              data={"_xsrf": xsrf, "from": "review", "comment": "  "})
        assert answer.status_code == 302 and "/review/no-comment?error=" in answer.headers["Location"], action
    shown = session.get(hub.service_url + answer.headers["Location"].split("/services/bubble-manager/", 1)[1],
                        timeout=120)
    assert "a comment is required to request changes" in shown.text and 'id="action-error"' in shown.text
    assert api.call("GET", "/studies/no-comment", tokens["sam"])[1]["state"] == "submitted"
    refusals = store_context.audit.entries(since_seq=before, action="access.refused", study="no-comment")
    assert [e.detail["rule"] for e in refusals] == ["comment-required"] * 3
    approved = session.post(hub.service_url + "studies/no-comment/do/approve", timeout=60, allow_redirects=False,
                            data={"_xsrf": xsrf, "from": "review", "comment": "Minimal data."})
    assert approved.status_code == 302
    assert api.call("GET", "/studies/no-comment", tokens["sam"])[1]["state"] == "approved"


def test_stewards_see_what_waits_for_them_and_researchers_their_studies(hub, api, tokens):
    api.call("POST", "/studies", tokens["carol"], request_document("queue-other"))
    api.call("POST", "/studies/queue-other/submit", tokens["carol"])
    api.call("POST", "/studies", tokens["carol"], request_document("queue-mine", members=("alice", "tom")))
    api.call("POST", "/studies/queue-mine/submit", tokens["carol"])
    _, home, _ = page(hub, "", tokens["tom"])
    queue = home.split('id="review-queue"', 1)[1].split("</ul>", 1)[0]
    assert "review/queue-other" in queue and "review/queue-mine" not in queue     # tom is a member of it
    _, rows, _ = page(hub, "review", tokens["tom"])
    row = rows.split('data-slug="queue-mine"', 1)[1].split("</tr>", 1)[0]
    assert "you are involved" in row and "review/queue-mine" not in row
    _, carol_home, _ = page(hub, "", tokens["carol"])
    assert 'data-slug="queue-other"' in carol_home and 'data-slug="queue-mine"' in carol_home
    _, mallory_home, _ = page(hub, "", tokens["mallory"])
    assert 'data-slug="queue-other"' not in mallory_home
