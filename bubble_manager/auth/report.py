"""Who holds which role, and when the identity provider last confirmed it: for periodic access review.

Built from the audit log, the record the authenticator writes at every sign-in (`auth.login`),
confirmation (`auth.confirmed`, at most every `confirmation_audit_seconds` per person),
change (`auth.roles_changed`, `auth.access_reduced`, `auth.access_revoked`), refusal
(`auth.refused`) and logout. `build_report` is pure; `access_report(context)` reads the entries.

    from bubble_manager.auth.report import access_report
    access_report(context)          # JSON-ready dict, for the panel and `bubble-manager access report`
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Iterable

from .. import clock
from ..audit import AuditEntry
from .mapping import ROLE_OF_GROUP

GRANTING = {"auth.login", "auth.confirmed", "auth.roles_changed", "auth.access_reduced"}
DEFAULT_STALE_AFTER = dt.timedelta(days=1)


def build_report(entries: Iterable[AuditEntry], *, now: dt.datetime,
                 stale_after: dt.timedelta = DEFAULT_STALE_AFTER) -> dict[str, Any]:
    """One row per person seen by the authenticator, from their `auth.*` audit entries in order."""
    people: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if not entry.action.startswith("auth.") or entry.actor == "unknown":
            continue
        person = people.setdefault(entry.actor, {"name": entry.actor, "groups": [], "roles": [], "status": "never-admitted",
                                                 "last_login": None, "last_confirmed": None, "last_change": None,
                                                 "last_refusal": None})
        detail = entry.detail
        if entry.action in GRANTING:
            person["groups"] = sorted(detail.get("groups") or [])
            person["status"] = "active"
            person["last_confirmed"] = entry.at
            if entry.action == "auth.login":
                person["last_login"] = entry.at
            if entry.action in ("auth.roles_changed", "auth.access_reduced"):
                person["last_change"] = {"at": entry.at, "action": entry.action, "reason": detail.get("reason", ""),
                                         "lost": detail.get("lost", []), "gained": detail.get("gained", [])}
        elif entry.action == "auth.access_revoked":
            person.update(groups=[], status="revoked",
                          last_change={"at": entry.at, "action": entry.action, "reason": detail.get("reason", ""),
                                       "lost": detail.get("lost", []), "gained": []})
        elif entry.action == "auth.refused":
            person["last_refusal"] = {"at": entry.at, "reason": detail.get("reason", "")}
        person["roles"] = [ROLE_OF_GROUP[group] for group in person["groups"] if group in ROLE_OF_GROUP]
    rows = []
    for person in sorted(people.values(), key=lambda p: p["name"]):
        confirmed = person["last_confirmed"]
        person["stale"] = bool(person["status"] == "active" and
                               (confirmed is None or now - clock.parse_iso(confirmed) > stale_after))
        rows.append(person)
    by_role = {role: [p["name"] for p in rows if p["status"] == "active" and role in p["roles"]]
               for role in ROLE_OF_GROUP.values()}
    return {"generated_at": clock.isoformat(now), "stale_after_seconds": int(stale_after.total_seconds()),
            "people": rows, "roles": by_role,
            "stale": [p["name"] for p in rows if p["stale"]]}


def access_report(context: Any, *, now: dt.datetime | None = None,
                  stale_after: dt.timedelta = DEFAULT_STALE_AFTER) -> dict[str, Any]:
    """The report for an opened `Context` (its audit log), as a JSON-ready dict."""
    return build_report(context.audit.entries(action="auth.*"), now=now or clock.utcnow(), stale_after=stale_after)


def format_report(report: dict[str, Any]) -> str:
    """A plain-text table for the terminal."""
    lines = [f"access review at {report['generated_at']} (stale after {report['stale_after_seconds'] // 3600} h)",
             f"{'person':<32} {'status':<15} {'roles':<28} {'last confirmed':<28} note"]
    for person in report["people"]:
        note = "STALE: not confirmed recently" if person["stale"] else ""
        if person["status"] == "revoked" and person["last_change"]:
            note = f"revoked: {person['last_change']['reason']}"
        elif person["status"] == "never-admitted" and person["last_refusal"]:
            note = f"refused: {person['last_refusal']['reason']}"
        lines.append(f"{person['name']:<32} {person['status']:<15} {', '.join(person['roles']) or '-':<28} "
                     f"{person['last_confirmed'] or '-':<28} {note}".rstrip())
    if not report["people"]:
        lines.append("(nobody has signed in through the identity provider yet)")
    return "\n".join(lines)
