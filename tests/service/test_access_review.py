"""The access review in the panel and the API: who holds which role, when the provider last confirmed it."""

from __future__ import annotations

from .test_pages import page


def test_admins_see_who_holds_which_role_and_who_is_stale(hub, api, tokens, store_context):
    fresh, stale, gone = "rev-fresh@chu.example", "rev-<b>stale</b>@chu.example", "rev-gone@chu.example"
    store_context.audit.record(actor=gone, action="auth.login", detail={"groups": ["researchers"]})
    store_context.audit.record(actor=gone, action="auth.access_revoked",
                               detail={"reason": "no longer in any allowed group", "lost": ["researchers"]})
    store_context.audit.record(actor=stale, action="auth.login", detail={"groups": ["stewards"]})
    store_context.audit.record(actor=fresh, action="auth.login", detail={"groups": ["researchers", "stewards"]})

    status, report = api.call("GET", "/access", tokens["adam"])
    assert status == 200
    people = {p["name"]: p for p in report["people"]}
    assert people[fresh]["roles"] == ["researcher", "steward"] and people[fresh]["status"] == "active"
    assert people[gone]["status"] == "revoked" and people[gone]["roles"] == []
    assert fresh in report["roles"]["steward"] and gone not in report["roles"]["researcher"]
    assert report["stale_after_seconds"] == 24 * 3600 and fresh not in report["stale"]

    status, hourly = api.call("GET", "/access?stale_hours=1", tokens["adam"])
    assert status == 200 and hourly["stale_after_seconds"] == 3600

    status, html, _ = page(hub, "admin/access", tokens["adam"])
    assert status == 200 and 'id="access-people"' in html
    assert "rev-&lt;b&gt;stale&lt;/b&gt;@chu.example" in html and "<b>stale</b>" not in html
    assert f'data-person="{gone}"' in html and "revoked: no longer in any allowed group" in html
    viewed = store_context.audit.entries(action="access.report_viewed", actor="adam")
    assert [e.detail["channel"] for e in viewed[-2:]] == ["api", "panel"]


def test_only_admins_get_the_report_and_bad_thresholds_name_the_field(hub, api, tokens):
    for user in ("carol", "sam", "nobody"):
        assert api.call("GET", "/access", tokens[user])[0] == 403, user
        assert page(hub, "admin/access", tokens[user])[0] == 403, user
    status, body = api.call("GET", "/access?stale_hours=0", tokens["adam"])
    assert status == 400 and body["field"] == "stale_hours"
    status, body = api.call("GET", "/access?stale_hours=soon", tokens["adam"])
    assert status == 400 and body["field"] == "stale_hours"
