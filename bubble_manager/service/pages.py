"""The panel: server-rendered pages for researchers, stewards and admins.

Forms post back here with an XSRF token; each page handler states its scopes like the API's.
Every user-provided string is escaped by Jinja's autoescape; nothing is rendered as raw HTML.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any
from urllib.parse import quote

from .. import clock
from ..studies import State, study_summary
from .admin_api import BUBBLE_STATUSES, access_review, archive_rows, bubble_rows, stop_bubble_as_admin
from .authz import SCOPE_ADMIN, SCOPE_REVIEW, SCOPE_USE
from .base import ApiError, BaseHandler, translate_errors
from .listing import involved, slugs_of, study_summaries, waiting_for_review
from .notifications import feed_for
from .review import steward_report
from .studies_api import notify_in_background

ANY_ROLE = (SCOPE_USE, SCOPE_REVIEW, SCOPE_ADMIN)
SLUG = r"(?P<slug>[a-z][a-z0-9-]{0,29})"
ACTION_SCOPES = {
    "submit": (SCOPE_USE,), "approve": (SCOPE_REVIEW,), "reject": (SCOPE_REVIEW,),
    "request-changes": (SCOPE_REVIEW,), "revoke": (SCOPE_REVIEW, SCOPE_ADMIN), "activate": (SCOPE_ADMIN,),
    "extend": (SCOPE_USE, SCOPE_REVIEW), "members": (SCOPE_USE, SCOPE_REVIEW),
}
COMMENTED_DECISIONS = ("approve", "reject", "request-changes", "revoke")  # a steward always says why


class PageHandler(BaseHandler):
    is_api = False

    def go(self, path: str) -> None:
        self.redirect(self.settings["bm_prefix"] + path.lstrip("/"))


def request_from_form(handler: PageHandler) -> dict[str, Any]:
    """The request document a form describes (same fields as the YAML and JSON forms)."""
    catalog = handler.context.catalog
    data: dict[str, list[str]] = {}
    for table in catalog.extractable_tables:
        chosen = [c for c in handler.get_arguments(f"col:{table.name}") if c in table.columns]
        if chosen:
            data[table.name] = chosen
    members = [m.strip() for m in handler.get_argument("members", "").replace(";", ",").split(",") if m.strip()]
    return {
        "title": handler.get_argument("title", ""), "slug": handler.get_argument("slug", ""),
        "purpose": handler.get_argument("purpose", ""), "legal_basis": handler.get_argument("legal_basis", ""),
        "members": members, "starts": handler.get_argument("starts", ""), "ends": handler.get_argument("ends", ""),
        "data": data, "cohort": handler.get_argument("cohort", ""),
        "resources": {"cpu": handler.get_argument("cpu", "1") or "1", "memory": handler.get_argument("memory", "2G")},
    }


def save_request_form(handler: PageHandler, document: dict[str, Any], editing: str | None) -> None:
    """Create (or edit) the request, submit it when asked; on refusal show the form again with why."""
    operations, actor = handler.operations, handler.actor
    try:
        study = operations.edit(actor, document) if editing else operations.request(actor, document)
        if handler.get_argument("then", "") == "submit":
            draft, study = study, operations.submit(actor, study.slug)
            notify_in_background(handler.settings, draft, study)
    except Exception as error:
        api_error = translate_errors(error)
        handler.set_status(api_error.status_code)
        values = {**document, "members": ", ".join(document["members"])}
        handler.render_page("request_form.html", catalog=handler.context.catalog, values=values,
                            problems=api_error.problems or [{"message": api_error.message}], editing=editing)
        return
    handler.go(f"studies/{study.slug}")


class HomePage(PageHandler):
    scopes = {"GET": ANY_ROLE}

    async def get(self) -> None:
        actor, now = self.actor, clock.utcnow()
        mine = study_summaries(self.context, person=actor.name, now=now) if actor.has("researcher") else []
        queue = []
        if actor.has("steward"):
            waiting = [s for s in waiting_for_review(self.context, now) if not involved(s, actor.name)]
            queue = ([s for s in waiting if s["state"] == "submitted"]
                     + [s for s in waiting if s["state"] != "submitted"])
        notifications = feed_for(self.context, actor.name, actor.has("steward"), slugs_of(self.context, actor.name),
                                 limit=10, is_admin=actor.has("admin"))
        self.render_page("home.html", mine=mine, queue=queue, notifications=notifications,
                         user=self.current_user["name"])


class NewStudyPage(PageHandler):
    scopes = {"GET": (SCOPE_USE,), "POST": (SCOPE_USE,)}

    def get(self) -> None:
        today = clock.utcnow().date()
        self.render_page("request_form.html", catalog=self.context.catalog, values={
            "starts": str(today), "ends": str(today + dt.timedelta(days=180)), "members": self.actor.name,
            "cpu": "1", "memory": "2G", "data": {}}, problems=[], editing=None)

    def post(self) -> None:
        save_request_form(self, request_from_form(self), editing=None)


class EditStudyPage(PageHandler):
    scopes = {"GET": (SCOPE_USE,), "POST": (SCOPE_USE,)}

    def get(self, slug: str) -> None:
        study = self.visible_study(slug)
        request = study.request.model_dump(mode="json")
        values = {**request, "members": ", ".join(request["members"]), **request["resources"]}
        self.render_page("request_form.html", catalog=self.context.catalog, values=values, problems=[],
                         editing=study.slug)

    def post(self, slug: str) -> None:
        self.visible_study(slug)
        save_request_form(self, {**request_from_form(self), "slug": slug}, editing=slug)


class StudyPage(PageHandler):
    scopes = {"GET": ANY_ROLE}

    def get(self, slug: str) -> None:
        study = self.visible_study(slug)
        actor = self.actor
        summary = study_summary(study, clock.utcnow())
        can_open = (actor.name in study.members and study.state is State.active)
        open_url = f"{self.settings['bm_hub_prefix']}spawn/{quote(actor.name, safe='')}/{study.slug}"
        self.render_page("study.html", study=study, summary=summary, can_open=can_open, open_url=open_url,
                         is_requester=actor.name == study.requester, involved=study.involved(actor.name),
                         error=self.get_argument("error", ""))


class StudyActionPage(PageHandler):
    """POST /studies/<slug>/do/<action> from the study and review pages."""

    def required_scopes(self) -> tuple[str, ...]:
        if self.request.method != "POST":
            return ()
        return ACTION_SCOPES.get(self.path_kwargs.get("action", ""), ())

    async def post(self, slug: str, action: str) -> None:
        before = self.visible_study(slug)
        comment = self.get_argument("comment", "")
        operations, actor = self.operations, self.actor
        if action in COMMENTED_DECISIONS and not comment.strip():
            self.context.audit.record(actor=actor.name, action="access.refused", study=slug, detail={
                "method": "POST", "path": self.request.path, "rule": "comment-required"})
            self.go(f"{'review' if self.get_argument('from', '') == 'review' else 'studies'}/{slug}?error="
                    + quote(f"a comment is required to {action.replace('-', ' ')}"))
            return
        try:
            if action == "submit":
                operations.submit(actor, slug)
            elif action == "approve":
                operations.approve(actor, slug, comment, tuple(self.get_arguments("include_free_text")))
            elif action == "reject":
                operations.reject(actor, slug, comment)
            elif action == "request-changes":
                operations.request_changes(actor, slug, comment)
            elif action == "revoke":
                study = operations.revoke(actor, slug, comment)
                stopper = self.settings.get("bm_stop_study_servers")
                if stopper is not None:
                    stopper(study)
            elif action == "activate":  # builds the extract: in a worker thread, not on the event loop
                activate = self.settings.get("bm_activate")
                await asyncio.get_running_loop().run_in_executor(
                    None, lambda: activate(self.context, actor, slug) if activate else operations.activate(actor, slug))
            elif action == "extend":
                operations.extend(actor, slug, dt.date.fromisoformat(self.get_argument("until", "")))
            elif action == "members":
                split = lambda text: tuple(n.strip() for n in text.split(",") if n.strip())  # noqa: E731
                operations.change_members(actor, slug, split(self.get_argument("add", "")),
                                          split(self.get_argument("remove", "")))
            else:
                raise ApiError(404, f"unknown action {action!r}")
        except ApiError:
            raise
        except ValueError as error:
            self.go(f"studies/{slug}?error={quote(str(error))}")
            return
        except Exception as error:
            self.go(f"studies/{slug}?error={quote(translate_errors(error).message)}")
            return
        notify_in_background(self.settings, before, operations.get(slug))
        self.go(f"review/{slug}" if action in ("approve", "reject", "request-changes") and
                self.get_argument("from", "") == "review" else f"studies/{slug}")


class ReviewQueuePage(PageHandler):
    scopes = {"GET": (SCOPE_REVIEW,)}

    def get(self) -> None:
        rows = [{**s, "own": involved(s, self.actor.name)} for s in waiting_for_review(self.context)]
        self.render_page("review_queue.html", rows=rows)


class ReviewPage(PageHandler):
    scopes = {"GET": (SCOPE_REVIEW,)}

    async def get(self, slug: str) -> None:
        study = self.visible_study(slug)
        report, report_error = None, ""
        if study.state is State.submitted and not study.involved(self.actor.name):
            actor = self.actor
            try:  # the dry run queries the warehouse: in a worker thread, not on the event loop
                report = await asyncio.get_running_loop().run_in_executor(
                    None, lambda: steward_report(self.context, actor, study))
            except Exception as error:  # the extract subsystem's messages quote no data values
                report_error = str(error)
        self.render_page("review.html", study=study, summary=study_summary(study, clock.utcnow()),
                         involved=study.involved(self.actor.name), report=report, report_error=report_error,
                         error=self.get_argument("error", ""))


class AdminPage(PageHandler):
    scopes = {"GET": (SCOPE_ADMIN,)}

    async def get(self) -> None:
        hub = self.settings.get("bm_hub_api")
        servers = await hub.servers() if hub is not None else []
        studies = {s.slug: s for s in self.operations.list()}
        now = clock.utcnow()
        rows = bubble_rows(servers, studies, now, self.settings["bm_service"].expiring_within_days)
        status = self.get_argument("status", "")
        if status in BUBBLE_STATUSES:
            rows = [r for r in rows if r["status"] == status]
        ending = sorted((study_summary(s, now) for s in studies.values() if s.state in (State.active, State.expired)),
                        key=lambda s: s["ends"])
        self.render_page("admin.html", rows=rows, status=status, statuses=BUBBLE_STATUSES, studies=ending)


class AdminStopPage(PageHandler):
    scopes = {"POST": (SCOPE_ADMIN,)}

    async def post(self, user: str, slug: str) -> None:
        reason = self.get_argument("reason", "").strip()
        if not reason:
            raise ApiError(400, "a reason is required to stop a bubble", field="reason")
        await stop_bubble_as_admin(self, user, slug, reason)
        self.go("admin")


class AuditPage(PageHandler):
    scopes = {"GET": (SCOPE_ADMIN,)}

    def get(self) -> None:
        filters = {name: self.get_argument(name, "") or None for name in ("study", "action", "actor")}
        entries = self.context.audit.entries(**filters)[-500:]
        report = self.context.audit.verify(self.context.verifier())
        self.render_page("audit.html", entries=list(reversed(entries)), filters=filters, report=report)


class ArchivesPage(PageHandler):
    scopes = {"GET": (SCOPE_ADMIN,)}

    def get(self) -> None:
        self.render_page("archives.html", archives=archive_rows(self.context))


class AccessReviewPage(PageHandler):
    scopes = {"GET": (SCOPE_ADMIN,)}

    def get(self) -> None:
        stale_hours = self.query_int("stale_hours", 24, 1, 24 * 366)
        report = access_review(self.context, stale_hours, viewer=self.actor.name, channel="panel")
        self.render_page("access.html", report=report, stale_hours=stale_hours)


default_handlers = [
    (r"/", HomePage),
    (r"/studies/new", NewStudyPage),
    (rf"/studies/{SLUG}", StudyPage),
    (rf"/studies/{SLUG}/edit", EditStudyPage),
    (rf"/studies/{SLUG}/do/(?P<action>[a-z-]+)", StudyActionPage),
    (r"/review", ReviewQueuePage),
    (rf"/review/{SLUG}", ReviewPage),
    (r"/admin", AdminPage),
    (rf"/admin/bubbles/(?P<user>[^/]+)/{SLUG}/stop", AdminStopPage),
    (r"/admin/audit", AuditPage),
    (r"/admin/archives", ArchivesPage),
    (r"/admin/access", AccessReviewPage),
]


