"""REST API for admins: bubbles, the audit log and its integrity, archives.

Admins operate; they never get data. Nothing here serves an extract, a workspace or a bubble.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from .. import clock
from ..store import ArchiveRow
from ..studies import State
from .authz import SCOPE_ADMIN
from .base import ApiError, BaseHandler
from .hub_client import HubApiError

USER = r"(?P<user>[^/]+)"
SLUG = r"(?P<slug>[a-z][a-z0-9-]{0,29})"
BUBBLE_STATUSES = ("running", "idle", "expiring", "expired")


def _age_seconds(timestamp: str | None, now: dt.datetime) -> int | None:
    if not timestamp:
        return None
    return int((now - clock.parse_iso(timestamp)).total_seconds())


def bubble_rows(servers: list[dict[str, Any]], studies: dict[str, Any], now: dt.datetime,
                expiring_within_days: int, idle_after_seconds: int = 3600) -> list[dict[str, Any]]:
    """Join the hub's running servers with their studies; flag idle and expiring bubbles."""
    rows = []
    for server in servers:
        study = studies.get(server["study"])
        idle = _age_seconds(server.get("last_activity"), now)
        days_left = study.days_left(now) if study else None
        status = "running"
        if study is None or study.state is not State.active or now >= study.expires_at:
            status = "expired"
        elif days_left is not None and days_left <= expiring_within_days:
            status = "expiring"
        elif idle is not None and idle >= idle_after_seconds:
            status = "idle"
        rows.append({**server, "status": status, "idle_seconds": idle, "days_left": days_left,
                     "ends": str(study.ends) if study else None,
                     "study_state": study.state.value if study else None})
    return rows


def archive_rows(context) -> list[dict[str, Any]]:  # noqa: ANN001 - operations.Context
    """Every archive the store knows, by study then number (no file names, no content)."""
    with context.store.transaction() as session:
        rows = session.scalars(select(ArchiveRow).order_by(ArchiveRow.slug, ArchiveRow.number)).all()
        return [{"study": r.slug, "number": r.number, "sha256": r.sha256, "size": r.size,
                 "created_at": clock.isoformat(r.created_at), "state": r.state} for r in rows]


class BubblesHandler(BaseHandler):
    scopes = {"GET": (SCOPE_ADMIN,)}

    async def get(self) -> None:
        status = self.get_argument("status", "")
        if status and status not in BUBBLE_STATUSES:
            raise ApiError(400, f"unknown status {status!r}; use one of {', '.join(BUBBLE_STATUSES)}", field="status")
        hub = self.settings.get("bm_hub_api")
        servers = await hub.servers() if hub is not None else []
        studies = {s.slug: s for s in self.operations.list()}
        rows = bubble_rows(servers, studies, clock.utcnow(), self.settings["bm_service"].expiring_within_days)
        if status:
            rows = [r for r in rows if r["status"] == status]
        self.send_json({"bubbles": rows})


async def stop_bubble_as_admin(handler: BaseHandler, user: str, slug: str, reason: str) -> None:
    """Stop a member's bubble through the hub (the API and the admin page), audited with the reason."""
    hub = handler.settings.get("bm_hub_api")
    if hub is None:
        raise ApiError(503, "this service has no hub API connection")
    try:
        await hub.stop_server(user, slug)
    except HubApiError as error:
        if error.status == 404:
            raise ApiError(404, f"{user} has no bubble for study {slug}") from None
        raise
    handler.context.audit.record(actor=handler.actor.name, action="bubble.stopped_by_admin", study=slug,
                                 detail={"member": user, "reason": reason})


class BubbleStopHandler(BaseHandler):
    scopes = {"POST": (SCOPE_ADMIN,)}

    async def post(self, user: str, slug: str) -> None:
        body = self.json_body()
        await stop_bubble_as_admin(self, user, slug, self.text_field(body, "reason", required=True))
        self.send_json({"stopped": {"user": user, "study": slug}})


class AuditHandler(BaseHandler):
    scopes = {"GET": (SCOPE_ADMIN,)}

    def get(self) -> None:
        since = self.query_int("since", 0, 0, 2**62)
        limit = self.query_int("limit", 200, 1, 1000)
        entries = self.context.audit.entries(study=self.query_text("study"), action=self.query_text("action"),
                                             actor=self.query_text("actor"), since_seq=since, limit=limit)
        self.send_json({"entries": [e.as_dict() for e in entries]})


class AuditVerifyHandler(BaseHandler):
    scopes = {"GET": (SCOPE_ADMIN,)}

    def get(self) -> None:
        report = self.context.audit.verify(self.context.verifier())
        self.send_json(report.as_dict())


def access_review(context, stale_hours: int, *, viewer: str, channel: str) -> dict[str, Any]:  # noqa: ANN001
    """Who holds which role and when the identity provider last confirmed it (`auth/report.py`);
    each viewing is audited."""
    from ..auth.report import access_report

    report = access_report(context, stale_after=dt.timedelta(hours=stale_hours))
    context.audit.record(actor=viewer, action="access.report_viewed", detail={
        "channel": channel, "people": len(report["people"]), "stale": len(report["stale"])})
    return report


class AccessReportHandler(BaseHandler):
    """The periodic access review, as `bubble-manager access report` prints it. Names and roles only."""

    scopes = {"GET": (SCOPE_ADMIN,)}

    def get(self) -> None:
        stale_hours = self.query_int("stale_hours", 24, 1, 24 * 366)
        self.send_json(access_review(self.context, stale_hours, viewer=self.actor.name, channel="api"))


class ArchivesHandler(BaseHandler):
    scopes = {"GET": (SCOPE_ADMIN,)}

    def get(self) -> None:
        self.send_json({"archives": archive_rows(self.context)})


default_handlers = [
    (r"/api/v1/bubbles", BubblesHandler),
    (rf"/api/v1/bubbles/{USER}/{SLUG}/stop", BubbleStopHandler),
    (r"/api/v1/audit", AuditHandler),
    (r"/api/v1/audit/verify", AuditVerifyHandler),
    (r"/api/v1/archives", ArchivesHandler),
    (r"/api/v1/access", AccessReportHandler),
]
