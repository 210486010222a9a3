"""Notifications: stewards hear of new requests, researchers of decisions and approaching expiry,
and the stewards who approved a study of its approaching end too.

The panel's feed is read from the audit log itself (the entries that concern the caller), so
nothing is recorded twice. E-mails go out through SMTP when `ServiceSettings.smtp_host` is set,
to hub user names that are e-mail addresses; a failed e-mail is logged, never fatal.
"""

from __future__ import annotations

import logging
import smtplib
from email.message import EmailMessage
from typing import Any, Iterable

from ..operations import Context
from ..studies import Study
from .authz import SCOPE_ADMIN, SCOPE_REVIEW, SCOPE_USE
from .base import BaseHandler

log = logging.getLogger("bubble_manager.service")
FOR_PARTICIPANTS = ("study.approved", "study.rejected", "study.changes_requested", "study.amended",
                    "study.amendment_rejected", "study.activated", "study.revoked", "study.expired",
                    "study.expiry_warning", "study.extract_refreshed")
FOR_STEWARDS = ("study.submitted", "study.amendment_proposed")
FOR_APPROVERS = ("study.expiry_warning",)  # the stewards who approved the study or an amendment of it
APPROVALS = ("study.approved", "study.amended")
SUBJECTS = {
    "study.submitted": "New study request to review: {slug}",
    "study.amendment_proposed": "Amendment to review for study {slug}",
    "study.approved": "Study {slug} approved",
    "study.rejected": "Study {slug} rejected",
    "study.changes_requested": "Changes requested on study {slug}",
    "study.amended": "Amendment approved for study {slug}",
    "study.amendment_rejected": "Amendment rejected for study {slug}",
    "study.activated": "Study {slug} is active: its bubble can be opened",
    "study.revoked": "Study {slug} was revoked",
    "study.expired": "Study {slug} has ended",
    "study.expiry_warning": "Study {slug} ends in {days} day(s)",
    "study.extract_refreshed": "The data of study {slug} was refreshed (opt-out register)",
    "lifecycle.alert": "Reconciler alert for study {slug}: a step failed and is retried",
}
FOR_ADMINS = ("lifecycle.alert",)


class Notifier:
    def __init__(self, context: Context, settings: Any):
        self.context = context
        self.settings = settings

    def study_event(self, study: Study, action: str, *, stewards: Iterable[str] = (), **values: Any) -> list[str]:
        """E-mail the people an event concerns; returns the addresses written to."""
        if action in FOR_STEWARDS:
            people = [s for s in stewards if not study.involved(s)]
        elif action in FOR_PARTICIPANTS:
            people = [study.requester, *study.members]
        else:
            return []
        subject = SUBJECTS[action].format(slug=study.slug, **values)
        body = (f"{subject}\n\nStudy: {study.title}\nState: {study.state.value}\nEnds: {study.ends}\n"
                f"{('Comment: ' + study.last_comment) if study.last_comment else ''}\n\n"
                "Open the bubble-manager panel in JupyterHub for details.\n")
        return self.send([a for a in (self.address_of(p) for p in dict.fromkeys(people)) if a], subject, body)

    def address_of(self, name: str) -> str | None:
        if "@" in name:
            return name
        return f"{name}@{self.settings.email_domain}" if self.settings.email_domain else None

    def send(self, addresses: list[str], subject: str, body: str) -> list[str]:
        if not self.settings.smtp_host or not addresses:
            return []
        message = EmailMessage()
        message["From"] = self.settings.smtp_sender
        message["To"] = ", ".join(addresses)
        message["Subject"] = subject
        message.set_content(body)
        try:
            with smtplib.SMTP(self.settings.smtp_host, self.settings.smtp_port, timeout=10) as smtp:
                smtp.send_message(message)
        except (OSError, smtplib.SMTPException) as error:
            log.warning("could not send notification e-mail %r: %s", subject, error)
            return []
        return addresses


def feed_for(context: Context, actor_name: str, is_steward: bool, my_studies: set[str], limit: int = 50,
             is_admin: bool = False) -> list[dict]:
    """The audit entries that concern a person, newest first."""
    entries = []
    candidates = context.audit.entries(action="study.*")
    if is_admin:
        candidates = sorted(candidates + context.audit.entries(action="lifecycle.alert"), key=lambda e: e.seq)
    approved_by_me = {e.study for e in candidates
                      if is_steward and e.action in APPROVALS and actor_name in (e.detail.get("approvers") or ())}
    for entry in reversed(candidates):
        if entry.action in FOR_PARTICIPANTS and entry.study in my_studies:
            entries.append(entry)
        elif is_steward and entry.action in FOR_STEWARDS and entry.study not in my_studies:
            entries.append(entry)
        elif entry.action in FOR_APPROVERS and entry.study in approved_by_me:
            entries.append(entry)
        elif is_admin and entry.action in FOR_ADMINS:
            entries.append(entry)
        if len(entries) >= limit:
            break
    return [{"seq": e.seq, "at": e.at, "study": e.study, "action": e.action, "by": e.actor,
             "text": SUBJECTS.get(e.action, e.action).format(slug=e.study, days=e.detail.get("days", "?"))}
            for e in entries]


class NotificationsHandler(BaseHandler):
    scopes = {"GET": (SCOPE_USE, SCOPE_REVIEW, SCOPE_ADMIN)}

    def get(self) -> None:
        from .listing import slugs_of

        mine = slugs_of(self.context, self.actor.name)
        self.send_json({"notifications": feed_for(self.context, self.actor.name, self.actor.has("steward"), mine,
                                                  is_admin=self.actor.has("admin"))})


default_handlers = [(r"/api/v1/notifications", NotificationsHandler)]
