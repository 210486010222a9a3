"""The base of every service handler: hub OAuth, declared scopes, JSON errors, security headers.

Each handler class declares `scopes`: for each HTTP method, the custom scopes of which the caller
needs at least one. `prepare()` enforces it before any handler code runs: no identity is a 401
(or a redirect to the hub's login for pages), a missing scope is a 403 with an audit entry.
A method without a declaration is refused (deny by default).
"""

from __future__ import annotations

import json
import logging
import traceback
from typing import Any

from jupyterhub.services.auth import HubOAuthenticated
from tornado import web

from ..operations import Context, StudyOperations, UnknownStudy
from ..studies import Actor, Study, TransitionError
from ..study_request import RequestError
from .authz import actor_from_user_model, can_see, has_any

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


class ApiError(web.HTTPError):
    """An error the client sees as JSON: status, message, and the offending field if any."""

    def __init__(self, status: int, message: str, field: str | None = None, problems: list | None = None):
        super().__init__(status, log_message=message)
        self.message = message
        self.field = field
        self.problems = problems or []


class BaseHandler(HubOAuthenticated, web.RequestHandler):
    scopes: dict[str, tuple[str, ...]] = {}
    is_api = True

    @property
    def context(self) -> Context:
        return self.settings["bm_context"]

    @property
    def operations(self) -> StudyOperations:
        return StudyOperations(self.context, via={"channel": "api" if self.is_api else "panel"})

    @property
    def actor(self) -> Actor:
        return actor_from_user_model(self.current_user)

    def set_default_headers(self) -> None:
        for name, value in SECURITY_HEADERS.items():
            self.set_header(name, value)
        self.set_header("Content-Security-Policy", self.settings["bm_csp"])

    _refused_user: dict | None = None

    def check_hub_user(self, model: dict) -> dict | None:
        """Remember who was refused the service (to answer 403 and audit it, not 401)."""
        try:
            return super().check_hub_user(model)
        except Exception:
            self._refused_user = model
            raise

    _resolving_user = False

    def check_xsrf_cookie(self) -> None:
        """Tornado checks XSRF before `prepare`; resolve the caller first, so that token-authenticated
        API calls (the CLI) skip it as JupyterHub intends, and anonymous calls get a plain 401.

        HubAuth itself calls this method while it resolves a cookie user (on its own worker thread):
        then check directly, never resolve the user again, which would wait on that same thread.
        """
        if self._resolving_user:
            super().check_xsrf_cookie()
            return
        self._resolving_user = True
        try:
            user = self.current_user
        finally:
            self._resolving_user = False
        if user is None:
            return
        super().check_xsrf_cookie()

    def required_scopes(self) -> tuple[str, ...]:
        return self.scopes.get(self.request.method, ())

    def render_page(self, template: str, **values: Any) -> None:
        page = self.settings["bm_jinja"].get_template(template)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(page.render(**self.page_namespace(), **values))

    async def prepare(self) -> None:
        needed = self.required_scopes()
        user = self.current_user
        if user is None and self._refused_user is not None:
            name = self._refused_user.get("name", "?")
            self.context.audit.record(actor=name, action="access.refused", detail={
                "method": self.request.method, "path": self.request.path, "rule": "no-service-access"})
            raise ApiError(403, f"{name} has no access to bubble-manager; ask for a researcher, steward or admin role")
        if user is None:
            if self.is_api or self.request.method != "GET":
                raise ApiError(401, "authentication required: log in to the hub or send a hub API token")
            self.redirect(self.get_login_url())
            return
        if user.get("kind", "user") != "user":
            raise ApiError(403, "only hub users can use bubble-manager")
        if not needed or not has_any(self.actor, needed):
            self.context.audit.record(actor=user["name"], action="access.refused", detail={
                "method": self.request.method, "path": self.request.path,
                "needed_one_of": list(needed or ["(method not allowed)"])})
            raise ApiError(403, f"{user['name']} lacks the permission for this action "
                                f"(needs one of: {', '.join(needed) if needed else 'none: not allowed'})")

    # --- helpers ---

    def json_body(self) -> dict[str, Any]:
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ApiError(400, "the request body is not valid JSON") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the request body must be a JSON object")
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, "the request body holds text that is not valid Unicode (a lone surrogate)") from None
        return body

    def text_field(self, body: dict[str, Any], name: str, *, required: bool = False, max_length: int = 5000) -> str:
        value = body.get(name, "")
        if value is None:
            value = ""
        if not isinstance(value, str):
            raise ApiError(400, f"{name} must be a string", field=name)
        if required and not value.strip():
            raise ApiError(400, f"{name} is required", field=name)
        if len(value) > max_length:
            raise ApiError(400, f"{name} is longer than {max_length} characters", field=name)
        return value

    def query_text(self, name: str, max_length: int = 200) -> str | None:
        """A query parameter as clean text (no control characters or lone surrogates), or a 400."""
        value = self.get_argument(name, "") or None
        if value is None:
            return None
        if len(value) > max_length or not value.isprintable():
            raise ApiError(400, f"{name} must be printable text of at most {max_length} characters", field=name)
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise ApiError(400, f"{name} is not valid text", field=name) from None
        return value

    def query_int(self, name: str, default: int, low: int, high: int) -> int:
        text = self.get_argument(name, "")
        try:
            value = int(text) if text else default
        except ValueError:
            raise ApiError(400, f"{name} must be a whole number", field=name) from None
        if not low <= value <= high:
            raise ApiError(400, f"{name} must be between {low} and {high}", field=name)
        return value

    def send_json(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(json.dumps(data, default=str))

    def visible_study(self, slug: str) -> Study:
        """The study if the caller may see it; a 404 otherwise (no hint that it exists)."""
        try:
            study = self.operations.get(slug)
        except UnknownStudy:
            raise ApiError(404, f"no study {slug!r}") from None
        if not can_see(self.actor, study):
            self.context.audit.record(actor=self.actor.name, action="access.refused", study=slug,
                                      detail={"method": self.request.method, "path": self.request.path,
                                              "rule": "not-involved"})
            raise ApiError(404, f"no study {slug!r}")
        return study

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        error = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(error, ApiError):
            payload = {"error": error.message, "status": status_code}
            if error.field:
                payload["field"] = error.field
            if error.problems:
                payload["problems"] = error.problems
        else:
            payload = {"error": self._reason, "status": status_code}
            if status_code >= 500:
                logging.getLogger("bubble_manager.service").error("unexpected error: %s", "".join(traceback.format_exception(*kwargs["exc_info"]))
                               if "exc_info" in kwargs else self._reason)
        if self.is_api:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.finish(json.dumps(payload))
        else:
            self.set_status(status_code)
            self.render_page("error.html", status=status_code, message=payload["error"])

    def page_namespace(self) -> dict[str, Any]:
        user = getattr(self, "_hub_auth_user_cache", None)
        return {"actor": actor_from_user_model(user) if user else None, "prefix": self.settings["bm_prefix"],
                "hub_prefix": self.settings["bm_hub_prefix"], "xsrf_form_html": self.xsrf_form_html,
                "static": lambda path: self.static_url(path)}


def translate_errors(error: Exception) -> ApiError:
    """Map domain errors to HTTP answers: refusals are 409 with the rule, bad documents 400."""
    if isinstance(error, RequestError):
        field, message = error.problems[0]
        return ApiError(400, str(error), field=field, problems=[{"field": f, "message": m} for f, m in error.problems])
    if isinstance(error, TransitionError):
        status = 403 if error.rule in ("role", "self-review", "member-review", "requester-only",
                                       "requester-mismatch") else 409
        api_error = ApiError(status, str(error))
        api_error.problems = [{"rule": error.rule}]
        return api_error
    if isinstance(error, UnknownStudy):
        return ApiError(404, str(error))
    if isinstance(error, PermissionError):
        return ApiError(403, str(error))
    reason = getattr(error, "reason", None)
    if reason is not None and type(error).__name__ in ("ExtractError", "CohortRefused", "PlanError"):
        api_error = ApiError(409, str(error))  # the message is safe for the caller; `detail` never leaves
        api_error.problems = [{"rule": f"extract-{reason}"}]
        return api_error
    raise error
