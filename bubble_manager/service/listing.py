"""Study summaries for the list endpoint, read with plain SQL rows instead of whole studies.

`GET /api/v1/studies` answers with `studies.study_summary` for each study the caller may see. Building
every `Study` (ORM objects, the request document validated and hashed) made a list of 1,000 studies
several times slower than the hub's own user list; a summary needs none of it: the request hash,
title and dates are columns of the studies table. `tests/service/test_listing.py` checks that these
summaries equal `study_summary` of the loaded studies, so the two cannot drift.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select

from .. import clock
from ..operations import Context
from ..store import AmendmentRow, ApprovalRow, MemberRow, StudyRow
from ..studies import Amendment

COUNTS_DAYS_LEFT = ("approved", "active")


def study_summaries(context: Context, *, states: list[str] | None = None, person: str | None = None,
                    now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Summaries of the studies in `states` (all if none) that `person` requested or belongs to (all if None)."""
    now = now or clock.utcnow()
    studies, members, approvals, amendments = (StudyRow.__table__, MemberRow.__table__, ApprovalRow.__table__,
                                               AmendmentRow.__table__)
    chosen = select(studies.c.slug)
    if states:
        chosen = chosen.where(studies.c.state.in_(states))
    if person:
        chosen = chosen.where((studies.c.requester == person)
                              | studies.c.slug.in_(select(members.c.slug).where(members.c.name == person)))
    with context.store.transaction() as session:
        rows = session.execute(select(studies).where(studies.c.slug.in_(chosen))
                               .order_by(studies.c.created_at, studies.c.slug)).mappings().all()
        names: dict[str, list[str]] = {}
        for slug, name in session.execute(select(members.c.slug, members.c.name).where(members.c.slug.in_(chosen))
                                          .order_by(members.c.position)):
            names.setdefault(slug, []).append(name)
        approved: dict[str, list[dict[str, Any]]] = {}
        for approval in session.execute(select(approvals).where(approvals.c.slug.in_(chosen))
                                        .order_by(approvals.c.id)).mappings():
            approved.setdefault(approval["slug"], []).append({
                "steward": approval["steward"], "at": clock.isoformat(approval["at"]),
                "comment": approval["comment"], "target_hash": approval["target_hash"]})
        pending = {row["slug"]: Amendment(kind=row["kind"], proposer=row["proposer"], proposed_at=row["proposed_at"],
                                          ends=row["ends"], add=tuple(row["add"] or ()), remove=tuple(row["remove"] or ()))
                   for row in session.execute(select(amendments).where(amendments.c.slug.in_(chosen))).mappings()}
    return [_summary(row, names.get(row["slug"], []), approved.get(row["slug"], []), pending.get(row["slug"]), now)
            for row in rows]


def involved(summary: dict[str, Any], name: str) -> bool:
    """`Study.involved` for a summary: the requester and members (present or proposed) never review."""
    proposed = (summary["amendment"] or {}).get("add") or ()
    return name == summary["requester"] or name in summary["members"] or name in proposed


def waiting_for_review(context: Context, now: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Submitted requests and pending amendments of approved or active studies, oldest first."""
    return [s for s in study_summaries(context, states=["submitted", "approved", "active"], now=now)
            if s["state"] == "submitted" or s["amendment"] is not None]


def slugs_of(context: Context, person: str) -> set[str]:
    """The studies a person requested or belongs to."""
    studies, members = StudyRow.__table__, MemberRow.__table__
    with context.store.transaction() as session:
        requested = session.scalars(select(studies.c.slug).where(studies.c.requester == person)).all()
        belongs = session.scalars(select(members.c.slug).where(members.c.name == person)).all()
    return {*requested, *belongs}


def _summary(row: Any, members: list[str], approvals: list[dict[str, Any]], amendment: Amendment | None,
             now: dt.datetime) -> dict[str, Any]:
    """The same dict as `studies.study_summary`, field for field."""
    return {
        "slug": row["slug"], "title": row["title"], "state": row["state"], "requester": row["requester"],
        "members": members, "starts": str(row["starts"]), "ends": str(row["ends"]),
        "days_left": (max(0, (clock.end_of_day(row["ends"]) - now).days) if row["state"] in COUNTS_DAYS_LEFT
                      else None),
        "version": row["version"], "request_hash": row["request_hash"],
        "approvals": approvals,
        "amendment": ({**amendment.body, "proposer": amendment.proposer, "amendment_hash": amendment.amendment_hash}
                      if amendment else None),
        "free_text_approved": list(row["free_text_approved"] or ()),
        "retention_until": str(row["retention_until"]) if row["retention_until"] else None,
        "last_comment": row["last_comment"] or "",
        "created_at": clock.isoformat(row["created_at"]), "updated_at": clock.isoformat(row["updated_at"]),
    }
