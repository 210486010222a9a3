"""REST API for studies: `/api/v1/studies[/<slug>[/<action>]]`, JSON in and out.

Every handler states the scopes it needs (see `base.BaseHandler`). The requester of a study is
the authenticated caller, never a field of the document.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from .. import clock
from ..studies import State, Study, study_summary
from .authz import SCOPE_ADMIN, SCOPE_REVIEW, SCOPE_USE
from .base import ApiError, BaseHandler, translate_errors
from .listing import study_summaries

ANY_ROLE = (SCOPE_USE, SCOPE_REVIEW, SCOPE_ADMIN)
SLUG = r"(?P<slug>[a-z][a-z0-9-]{0,29})"


def study_document(study: Study, *, with_request: bool = True) -> dict[str, Any]:
    data = study_summary(study, clock.utcnow())
    if with_request:
        data["request"] = study.request.model_dump(mode="json")
    return data


class StudiesHandler(BaseHandler):
    scopes = {"GET": ANY_ROLE, "POST": (SCOPE_USE,)}

    def get(self) -> None:
        states = self.get_arguments("state")
        unknown = [s for s in states if s not in State.__members__]
        if unknown:
            raise ApiError(400, f"unknown state {unknown[0]!r}; use one of {', '.join(State.__members__)}",
                           field="state")
        actor = self.actor
        if actor.has("steward") or actor.has("admin"):
            person = None
        elif actor.has("researcher"):
            person = actor.name                     # those they requested or belong to (authz.can_see)
        else:
            raise ApiError(403, f"{actor.name} may see no study")
        self.send_json({"studies": study_summaries(self.context, states=states or None, person=person)})

    def post(self) -> None:
        body = self.json_body()
        try:
            study = self.operations.request(self.actor, body)
        except Exception as error:
            raise translate_errors(error) from None
        self.set_header("Location", f"{self.settings['bm_prefix']}api/v1/studies/{study.slug}")
        self.send_json(study_document(study), status=201)


class StudyHandler(BaseHandler):
    scopes = {"GET": ANY_ROLE, "PUT": (SCOPE_USE,)}

    def get(self, slug: str) -> None:
        self.send_json(study_document(self.visible_study(slug)))

    def put(self, slug: str) -> None:
        self.visible_study(slug)
        body = self.json_body()
        if body.get("slug", slug) != slug:
            raise ApiError(400, "the slug of a study cannot change", field="slug")
        try:
            study = self.operations.edit(self.actor, {**body, "slug": slug})
        except Exception as error:
            raise translate_errors(error) from None
        self.send_json(study_document(study))


def event_of(before: Study, after: Study) -> str | None:
    """The notification an action's result calls for (submitted, approved, amended...)."""
    if after.state is not before.state:
        return {State.submitted: "study.submitted", State.approved: "study.approved", State.rejected: "study.rejected",
                State.changes_requested: "study.changes_requested", State.active: "study.activated",
                State.revoked: "study.revoked"}.get(after.state)
    if before.amendment is None and after.amendment is not None:
        return "study.amendment_proposed"
    if before.amendment is not None and after.amendment is None:
        return "study.amended" if (after.ends, after.members) != (before.ends, before.members) \
            else "study.amendment_rejected"
    return None


def notify_in_background(settings: dict, before: Study, after: Study) -> None:
    event = event_of(before, after)
    notifier = settings.get("bm_notifier")
    if event is None or notifier is None:
        return

    async def send() -> None:
        stewards: list[str] = []
        hub = settings.get("bm_hub_api")
        if event in ("study.submitted", "study.amendment_proposed") and hub is not None:
            stewards = await hub.group_members(settings["bm_service"].steward_group)
        await asyncio.get_running_loop().run_in_executor(None, lambda: notifier.study_event(
            after, event, stewards=stewards))

    asyncio.ensure_future(send())


class _ActionHandler(BaseHandler):
    """POST /studies/<slug>/<action>: one lifecycle action, answered with the updated study."""

    def act(self, slug: str, body: dict[str, Any]) -> Study:  # pragma: no cover - abstract
        raise NotImplementedError

    def post(self, slug: str) -> None:
        self.visible_study(slug)
        body = self.json_body()
        before = self.operations.get(slug)
        try:
            study = self.act(slug, body)
        except ApiError:
            raise
        except Exception as error:
            raise translate_errors(error) from None
        self.send_json(study_document(study))
        notify_in_background(self.settings, before, study)


class SubmitHandler(_ActionHandler):
    scopes = {"POST": (SCOPE_USE,)}

    def act(self, slug: str, body: dict[str, Any]) -> Study:
        return self.operations.submit(self.actor, slug)


class ApproveHandler(_ActionHandler):
    scopes = {"POST": (SCOPE_REVIEW,)}

    def act(self, slug: str, body: dict[str, Any]) -> Study:
        comment = self.text_field(body, "comment", required=True)
        include = body.get("include_free_text", [])
        if not isinstance(include, list) or not all(isinstance(c, str) for c in include):
            raise ApiError(400, "include_free_text must be a list of 'table.column' strings", field="include_free_text")
        return self.operations.approve(self.actor, slug, comment, tuple(include))


class RejectHandler(_ActionHandler):
    scopes = {"POST": (SCOPE_REVIEW,)}

    def act(self, slug: str, body: dict[str, Any]) -> Study:
        return self.operations.reject(self.actor, slug, self.text_field(body, "comment", required=True))


class RequestChangesHandler(_ActionHandler):
    scopes = {"POST": (SCOPE_REVIEW,)}

    def act(self, slug: str, body: dict[str, Any]) -> Study:
        return self.operations.request_changes(self.actor, slug, self.text_field(body, "comment", required=True))


class RevokeHandler(_ActionHandler):
    scopes = {"POST": (SCOPE_REVIEW, SCOPE_ADMIN)}

    def act(self, slug: str, body: dict[str, Any]) -> Study:
        study = self.operations.revoke(self.actor, slug, self.text_field(body, "reason", required=True))
        stopper = self.settings.get("bm_stop_study_servers")
        if stopper is not None:
            stopper(study)
        return study


class ActivateHandler(_ActionHandler):
    """Activation builds the extract (and, on Kubernetes, waits for the Job that copies it into its
    volume from this very service): it runs in a worker thread, never on the event loop."""

    scopes = {"POST": (SCOPE_ADMIN,)}

    async def post(self, slug: str) -> None:
        self.visible_study(slug)
        before = self.operations.get(slug)
        activate = self.settings.get("bm_activate")
        actor = self.actor
        try:
            study = await asyncio.get_running_loop().run_in_executor(
                None, lambda: activate(self.context, actor, slug) if activate else self.operations.activate(actor, slug))
        except Exception as error:
            raise translate_errors(error) from None
        self.send_json(study_document(study))
        notify_in_background(self.settings, before, study)


class ExtendHandler(_ActionHandler):
    scopes = {"POST": (SCOPE_USE, SCOPE_REVIEW)}

    def act(self, slug: str, body: dict[str, Any]) -> Study:
        until = body.get("until")
        try:
            day = dt.date.fromisoformat(until) if isinstance(until, str) else None
        except ValueError:
            day = None
        if day is None:
            raise ApiError(400, "until must be a date written YYYY-MM-DD", field="until")
        return self.operations.extend(self.actor, slug, day)


class MembersHandler(_ActionHandler):
    scopes = {"POST": (SCOPE_USE, SCOPE_REVIEW)}

    def act(self, slug: str, body: dict[str, Any]) -> Study:
        names = {}
        for key in ("add", "remove"):
            value = body.get(key, [])
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ApiError(400, f"{key} must be a list of user names", field=key)
            names[key] = tuple(value)
        return self.operations.change_members(self.actor, slug, names["add"], names["remove"])


class RetentionHandler(_ActionHandler):
    scopes = {"POST": (SCOPE_REVIEW,)}

    def act(self, slug: str, body: dict[str, Any]) -> Study:
        days = body.get("days")
        if not isinstance(days, int) or isinstance(days, bool):
            raise ApiError(400, "days must be a whole number of days", field="days")
        return self.operations.set_retention(self.actor, slug, days, self.text_field(body, "reason", required=True))


class MeHandler(BaseHandler):
    scopes = {"GET": ANY_ROLE}

    def get(self) -> None:
        self.send_json({"name": self.actor.name, "roles": sorted(self.actor.roles)})


class CatalogHandler(BaseHandler):
    scopes = {"GET": (SCOPE_USE, SCOPE_REVIEW)}

    def get(self) -> None:
        catalog = self.context.catalog
        tables = []
        for table in catalog.extractable_tables:
            tables.append({"name": table.name, "description": table.description, "columns": [
                {"name": c.name, "type": c.type, "class": c.column_class, "cohort": c.cohort,
                 "description": c.description, "requestable": c.column_class != "direct_identifier"}
                for c in table.columns.values()]})
        self.send_json({"warehouse": catalog.warehouse, "tables": tables})


default_handlers = [
    (r"/api/v1/me", MeHandler),
    (r"/api/v1/catalog", CatalogHandler),
    (r"/api/v1/studies", StudiesHandler),
    (rf"/api/v1/studies/{SLUG}", StudyHandler),
    (rf"/api/v1/studies/{SLUG}/submit", SubmitHandler),
    (rf"/api/v1/studies/{SLUG}/approve", ApproveHandler),
    (rf"/api/v1/studies/{SLUG}/reject", RejectHandler),
    (rf"/api/v1/studies/{SLUG}/request-changes", RequestChangesHandler),
    (rf"/api/v1/studies/{SLUG}/revoke", RevokeHandler),
    (rf"/api/v1/studies/{SLUG}/activate", ActivateHandler),
    (rf"/api/v1/studies/{SLUG}/extend", ExtendHandler),
    (rf"/api/v1/studies/{SLUG}/members", MembersHandler),
    (rf"/api/v1/studies/{SLUG}/retention", RetentionHandler),
]
