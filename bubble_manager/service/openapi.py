"""The OpenAPI 3 document of the REST API, served at `api/v1/openapi.json`.

A test checks that every route and method of the handlers appears here with the scopes the
handler declares, and nothing else, so the document cannot drift from the implementation.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from .authz import CUSTOM_SCOPES, SCOPE_ADMIN, SCOPE_REVIEW, SCOPE_USE
from .base import BaseHandler

ANY = [SCOPE_USE, SCOPE_REVIEW, SCOPE_ADMIN]
DATE = {"type": "string", "format": "date"}
NAME = {"type": "string", "minLength": 1, "maxLength": 100, "pattern": r"^[A-Za-z0-9][A-Za-z0-9._@+-]*$"}
SLUG = {"type": "string", "pattern": r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,29}$", "maxLength": 30}

SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "status"], "properties": {
        "error": {"type": "string"}, "status": {"type": "integer"}, "field": {"type": "string"},
        "problems": {"type": "array", "items": {"type": "object"}}}},
    "StudyRequest": {"type": "object", "additionalProperties": False,
                     "required": ["title", "slug", "purpose", "legal_basis", "members", "starts", "ends", "data",
                                  "cohort"],
                     "properties": {
                         "title": {"type": "string", "minLength": 3, "maxLength": 200},
                         "slug": SLUG,
                         "purpose": {"type": "string", "minLength": 10, "maxLength": 10000},
                         "legal_basis": {"type": "string", "minLength": 3, "maxLength": 2000},
                         "members": {"type": "array", "items": NAME, "minItems": 1, "maxItems": 100,
                                     "uniqueItems": True},
                         "starts": DATE, "ends": DATE,
                         "data": {"type": "object", "minProperties": 1,
                                  "additionalProperties": {"type": "array", "minItems": 1,
                                                           "items": {"type": "string"}}},
                         "cohort": {"type": "string", "minLength": 1, "maxLength": 20000},
                         "resources": {"type": "object", "additionalProperties": False, "properties": {
                             "cpu": {"type": "number", "exclusiveMinimum": 0, "maximum": 64},
                             "memory": {"type": "string", "pattern": r"^[1-9][0-9]*([KMGT]i?)?$"}}},
                         "requester": {"type": "string", "description": "ignored if equal to the caller, "
                                                                        "refused otherwise"}}},
    "Study": {"type": "object", "required": ["slug", "title", "state", "requester", "members", "starts", "ends"],
              "properties": {
                  "slug": SLUG, "title": {"type": "string"},
                  "state": {"type": "string", "enum": ["draft", "submitted", "changes_requested", "approved",
                                                       "rejected", "active", "expired", "revoked", "archived",
                                                       "purged"]},
                  "requester": {"type": "string"}, "members": {"type": "array", "items": {"type": "string"}},
                  "starts": DATE, "ends": DATE, "days_left": {"type": ["integer", "null"]},
                  "version": {"type": "integer"}, "request_hash": {"type": "string"},
                  "approvals": {"type": "array", "items": {"type": "object"}},
                  "amendment": {"type": ["object", "null"]},
                  "request": {"$ref": "#/components/schemas/StudyRequest"}}},
    "Comment": {"type": "object", "properties": {"comment": {"type": "string", "maxLength": 5000}}},
    "RequiredComment": {"type": "object", "required": ["comment"],
                        "properties": {"comment": {"type": "string", "minLength": 1, "maxLength": 5000}}},
}


def _body(schema: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}}}


def _inline_body(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": {
        "type": "object", "required": required, "properties": properties}}}}


def _op(summary: str, scopes: list[str], *, body: dict | None = None, ok: str | None = "Study",
        params: list | None = None, status: str = "200") -> dict[str, Any]:
    responses: dict[str, Any] = {
        status: {"description": "OK", "content": {"application/json": {"schema": (
            {"$ref": f"#/components/schemas/{ok}"} if ok else {"type": "object"})}}},
        "400": {"description": "invalid input, the field is named",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
        "401": {"description": "not authenticated"},
        "403": {"description": "missing scope or refused by a separation-of-duties rule"},
        "404": {"description": "no such study (or not visible to the caller)"},
        "409": {"description": "refused by a lifecycle rule (the rule is named)"},
    }
    operation = {"summary": summary, "security": [{"hub": scopes}], "x-scopes": scopes, "responses": responses}
    if body:
        operation["requestBody"] = body
    if params:
        operation["parameters"] = params
    return operation


SLUG_PARAM = {"name": "slug", "in": "path", "required": True, "schema": SLUG}


def _action(summary: str, scopes: list[str], body: dict | None = None) -> dict[str, Any]:
    return {"parameters": [SLUG_PARAM], "post": _op(summary, scopes, body=body or {"required": False, "content": {
        "application/json": {"schema": {"type": "object"}}}})}


ID = {"type": "integer", "minimum": 1, "maximum": 2**62}


def _file_op(summary: str, scopes: list[str], params: list) -> dict[str, Any]:
    operation = _op(summary, scopes, ok=None, params=params)
    operation["responses"]["200"] = {"description": "the file, as an attachment (Content-Disposition: attachment, "
                                                    "a sandboxing CSP); images for stewards with as=image",
                                     "content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                         "format": "binary"}}}}
    return operation


def airlock_paths() -> dict[str, Any]:
    """The airlock's routes (bubble_manager/airlock/handlers.py): requests and files named by id."""
    ids = [{"name": "request", "in": "query", "required": True, "schema": ID},
           {"name": "file", "in": "query", "required": True, "schema": ID}]
    return {
        "/studies/{slug}/airlock": {"parameters": [SLUG_PARAM], "get": _op(
            "the study's output and import requests, with each file's checks and reviews",
            [SCOPE_USE, SCOPE_REVIEW], ok=None, params=[{"name": "state", "in": "query", "required": False,
                                                          "schema": {"type": "string", "enum": ["review", "decided"]}}])},
        "/studies/{slug}/airlock/outbox": {"parameters": [SLUG_PARAM], "get": _op(
            "the caller's folders in work/outbox/ of their bubble, waiting to be submitted", [SCOPE_USE], ok=None)},
        "/studies/{slug}/airlock/submit": _action(
            "submit one outbox folder: copied into quarantine, checked, queued for review (members)", [SCOPE_USE],
            _inline_body({"outbox": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"}}, ["outbox"])),
        "/studies/{slug}/airlock/imports": _action(
            "upload a file for the study's shared folder, delivered once stewards approve it (members)", [SCOPE_USE],
            _inline_body({"name": {"type": "string", "maxLength": 100}, "justification": {"type": "string"},
                          "content_base64": {"type": "string", "contentEncoding": "base64"}},
                         ["name", "justification", "content_base64"])),
        "/studies/{slug}/airlock/review": _action(
            "approve or reject one file, with a comment (stewards who are not involved in the study)", [SCOPE_REVIEW],
            _inline_body({"request": ID, "file": ID, "decision": {"type": "string", "enum": ["approve", "reject"]},
                          "comment": {"type": "string", "minLength": 1, "maxLength": 5000}},
                         ["request", "file", "decision", "comment"])),
        "/studies/{slug}/airlock/file": {"parameters": [SLUG_PARAM], "get": _file_op(
            "a file under review, for a steward (as=image shows PNG, JPEG and GIF figures as images)", [SCOPE_REVIEW],
            ids + [{"name": "as", "in": "query", "required": False,
                    "schema": {"type": "string", "enum": ["attachment", "image"]}}])},
        "/studies/{slug}/airlock/download": {"parameters": [SLUG_PARAM], "get": _file_op(
            "an approved output, for the member who asked for it, once", [SCOPE_USE], ids)},
        "/airlock/queue": {"get": _op("requests waiting for review", [SCOPE_REVIEW], ok=None)},
    }


def build_document(server_prefix: str = "/services/bubble-manager/") -> dict[str, Any]:
    paths: dict[str, Any] = {
        "/me": {"get": _op("who am I and my roles", ANY, ok=None)},
        "/catalog": {"get": _op("the requestable tables and columns with their classes", [SCOPE_USE, SCOPE_REVIEW],
                                ok=None)},
        "/studies": {
            "get": _op("studies visible to the caller", ANY, ok=None, params=[
                {"name": "state", "in": "query", "required": False, "schema": {"type": "string", "enum": list(
                    SCHEMAS["Study"]["properties"]["state"]["enum"])}}]),
            "post": _op("request a study (creates a draft; the requester is the caller)", [SCOPE_USE],
                        body=_body("StudyRequest"), status="201")},
        "/studies/{slug}": {
            "parameters": [SLUG_PARAM],
            "get": _op("one study", ANY),
            "put": _op("replace the request of a draft or of a study with changes requested", [SCOPE_USE],
                       body=_body("StudyRequest"))},
        "/studies/{slug}/submit": _action("submit for review", [SCOPE_USE]),
        "/studies/{slug}/approve": _action("approve the request or the pending amendment (comment required)",
                                           [SCOPE_REVIEW], _inline_body({
                                               "comment": {"type": "string", "minLength": 1, "maxLength": 5000},
                                               "include_free_text": {"type": "array", "items": {"type": "string"}}},
                                               ["comment"])),
        "/studies/{slug}/reject": _action("reject (comment required)", [SCOPE_REVIEW], _body("RequiredComment")),
        "/studies/{slug}/request-changes": _action("send back to the requester (comment required)", [SCOPE_REVIEW],
                                                   _body("RequiredComment")),
        "/studies/{slug}/revoke": _action("revoke at once (reason required)", [SCOPE_REVIEW, SCOPE_ADMIN],
                                          _inline_body({"reason": {"type": "string", "minLength": 1}}, ["reason"])),
        "/studies/{slug}/activate": _action("build and verify the extract, then activate", [SCOPE_ADMIN]),
        "/studies/{slug}/extend": _action("propose a later end date", [SCOPE_USE, SCOPE_REVIEW],
                                          _inline_body({"until": DATE}, ["until"])),
        "/studies/{slug}/members": _action("propose member changes", [SCOPE_USE, SCOPE_REVIEW], _inline_body(
            {"add": {"type": "array", "items": NAME}, "remove": {"type": "array", "items": NAME}}, [])),
        "/studies/{slug}/retention": _action("override the retention period", [SCOPE_REVIEW], _inline_body(
            {"days": {"type": "integer", "minimum": 0}, "reason": {"type": "string", "minLength": 1}},
            ["days", "reason"])),
        "/bubbles": {"get": _op("running bubbles with status", [SCOPE_ADMIN], ok=None, params=[
            {"name": "status", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["running", "idle", "expiring", "expired"]}}])},
        "/bubbles/{user}/{slug}/stop": {"parameters": [
            {"name": "user", "in": "path", "required": True, "schema": NAME}, SLUG_PARAM],
            "post": _op("stop one bubble (reason required)", [SCOPE_ADMIN], ok=None,
                        body=_inline_body({"reason": {"type": "string", "minLength": 1}}, ["reason"]))},
        "/audit": {"get": _op("audit entries, filtered", [SCOPE_ADMIN], ok=None, params=[
            {"name": name, "in": "query", "required": False, "schema": schema} for name, schema in (
                ("study", {"type": "string"}), ("action", {"type": "string"}), ("actor", {"type": "string"}),
                ("since", {"type": "integer", "minimum": 0, "maximum": 2**62}), ("limit", {"type": "integer", "minimum": 1,
                                                                          "maximum": 1000}))])},
        "/audit/verify": {"get": _op("integrity of the audit chain", [SCOPE_ADMIN], ok=None)},
        "/archives": {"get": _op("archives", [SCOPE_ADMIN], ok=None)},
        "/access": {"get": _op("access review: who holds which role, when the identity provider last confirmed it",
                               [SCOPE_ADMIN], ok=None, params=[
                                   {"name": "stale_hours", "in": "query", "required": False,
                                    "schema": {"type": "integer", "minimum": 1, "maximum": 24 * 366}}])},
        "/notifications": {"get": _op("what concerns me", ANY, ok=None)},
        **airlock_paths(),
        "/openapi.json": {"get": {"summary": "this document", "responses": {"200": {"description": "OK"}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "bubble-manager API", "version": __version__,
                 "description": "Study requests, reviews and bubble operations. Authenticate with a JupyterHub "
                                "API token (Authorization: token ...) or the hub's OAuth cookie."},
        "servers": [{"url": f"{server_prefix.rstrip('/')}/api/v1"}],
        "components": {"schemas": SCHEMAS, "securitySchemes": {"hub": {
            "type": "apiKey", "in": "header", "name": "Authorization",
            "description": "JupyterHub token: 'token <value>'. Custom scopes: " + "; ".join(
                f"{k}: {v['description']}" for k, v in CUSTOM_SCOPES.items())}}},
        "paths": paths,
    }


class OpenApiHandler(BaseHandler):
    scopes = {"GET": ()}

    async def prepare(self) -> None:
        """The document is public: it describes the API, not data."""

    def get(self) -> None:
        self.send_json(build_document(self.settings["bm_prefix"]))


default_handlers = [(r"/api/v1/openapi.json", OpenApiHandler)]
