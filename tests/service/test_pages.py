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
