"""Every airlock API route is in the OpenAPI document with the scopes its handler declares."""

from __future__ import annotations

import re

from bubble_manager.airlock import handlers, pages
from bubble_manager.service import app
from bubble_manager.service.openapi import build_document


def test_every_airlock_route_is_documented_with_its_scopes():
    document = build_document()
    for route, handler in handlers.default_handlers:
        path = re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", route).removeprefix("/api/v1")
        assert path in document["paths"], f"{path} missing from the OpenAPI document"
        for method, scopes in handler.scopes.items():
            operation = document["paths"][path].get(method.lower())
            assert operation is not None, f"{method} {path} missing from the OpenAPI document"
            assert sorted(operation["x-scopes"]) == sorted(scopes), f"{method} {path}"
    documented = {p for p in document["paths"] if "airlock" in p}
    assert documented == {re.sub(r"\(\?P<(\w+)>[^)]*\)", r"{\1}", r).removeprefix("/api/v1")
                          for r, _ in handlers.default_handlers}


def test_the_service_serves_the_airlock_and_finds_its_templates():
    routes = {pattern for pattern, _ in handlers.default_handlers + pages.default_handlers}
    assert all(r.startswith("/") for r in routes)
    environment = app.jinja_environment()
    for name in ("airlock_study.html", "airlock_queue.html", "airlock_request.html"):
        assert environment.get_template(name) is not None
    assert environment.get_template("base.html") is not None  # the panel's own, extended by ours
