"""The lifecycle reconciler: brings the world to what the store says, idempotently, one at a time.

Each tick compares what should be (studies and their dates in the store) with what is (servers in
the hub, extracts and archives on disk) and acts:

- activation on the start date of an approved study (extract built and verified, workspaces and
  shared folder created, members told);
- expiry warnings `warning_days` before the end (each threshold once per end date: an approved
  extension moves the date, which cancels a closure not yet past its expiry and re-arms the warnings);
- closing a study that reached its end or was revoked: stop its servers (hub API), mark it
  expired, lock its workspaces, take the final snapshot, verify it, archive the study, destroy its
  live key, and only then remove its extract and workspaces from live storage;
- purge after the retention period (crypto-shredding and a signed deletion certificate);
- opt-outs: when the warehouse's opt-out register changes, every active extract that holds an
  opted-out person is rebuilt (pseudonyms kept) and its running bubbles restarted on it;
- running bubbles the spawner's gate would now refuse are stopped: a member removed by an
  approved amendment, a study no longer active (and not closing) or unknown;
- idle bubbles are stopped after `idle_timeout_seconds` (jupyterhub-idle-culler's rule).

The tick loads only what is due, through indexed queries on study states and dates, never every
study. A lock row in the store (with an expiry, renewed while the tick works) lets only one
reconciler act at a time. Every step is journaled before and after it acts; each step checks the
world before acting, so a reconciler killed anywhere resumes where it stopped, never takes a
second final snapshot and never removes live data whose snapshot did not verify. A step that fails
(hub down, disk full) is recorded, raises one alert (audit entry and e-mail to admins) and is
retried on the next tick; nothing after it runs for that study meanwhile.

The bubble also knows its own deadline (the local launcher, Kubernetes `activeDeadlineSeconds`);
the reconciler does not rely on that and stops servers itself.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.orm import Session
from traitlets import Bool, Float, Integer, List, TraitError, Unicode, validate
from traitlets.config import Configurable

from . import clock
from .lifecycle_store import (CANCELLED, DONE, FAILED, INTERRUPTED, LifecycleClosureRow, LifecycleStepRow,
                              LifecycleWarningRow)
from .store import StudyRow
from .studies import State


class Reconciler(Configurable):
    """Settings of the lifecycle reconciler (`c.Reconciler.*`)."""

    interval_seconds = Float(60.0, help="Seconds between two ticks of the reconciler in the service (and in "
                                        "`bubble-manager reconcile` without --once).").tag(config=True)
    warning_days = List(Integer(), [14, 3, 1], help="Days before a study's end at which its members and the "
                                                    "stewards who approved it are warned; each threshold once "
                                                    "per end date.").tag(config=True)
    idle_timeout_seconds = Integer(4 * 3600, help="A bubble with no activity for this long is stopped (the rule "
                                                  "of jupyterhub-idle-culler); 0 never stops idle bubbles."
                                   ).tag(config=True)
    lock_ttl_seconds = Float(300.0, help="Expiry of the reconciler's lock in the store. The holder renews it "
                                         "every third of this while it works; another reconciler takes the "
                                         "lock only once it expired (or at once if its holder, on this host, "
                                         "is dead).").tag(config=True)
    stop_timeout_seconds = Float(60.0, help="How long one tick waits for the hub to stop a study's servers "
                                            "before leaving the closure for the next tick.").tag(config=True)
    hub_timeout_seconds = Float(60.0, help="Timeout of one call to the hub API.").tag(config=True)
    dry_run = Bool(False, help="Only report what is due; change nothing (the CLI's --dry-run).").tag(config=True)
    admin_group = Unicode("admins", help="Hub group whose members are e-mailed when a step fails (with "
                                         "alert_addresses).").tag(config=True)
    alert_addresses = List(Unicode(), [], help="E-mail addresses (e.g. an operations mailbox) told when a "
                                               "step fails; e-mail needs c.ServiceSettings.smtp_host.").tag(config=True)

    @validate("warning_days")
    def _check_warning_days(self, proposal: dict) -> list[int]:
        days = list(proposal["value"])
        if any(d < 1 for d in days):
            raise TraitError(f"Reconciler.warning_days must hold whole days of 1 or more, got {days}")
        return sorted(set(days), reverse=True)

    @validate("interval_seconds", "lock_ttl_seconds", "stop_timeout_seconds", "hub_timeout_seconds")
    def _check_positive(self, proposal: dict) -> float:
        if proposal["value"] <= 0:
            raise TraitError(f"Reconciler.{proposal['trait'].name} must be more than 0 seconds")
        return proposal["value"]

    @validate("idle_timeout_seconds")
    def _check_idle(self, proposal: dict) -> int:
        if proposal["value"] < 0:
            raise TraitError("Reconciler.idle_timeout_seconds must be 0 (off) or more")
        return proposal["value"]


# --- the closing path -----------------------------------------------------------------------------

CLOSURE_STEPS = ("stop-servers", "expire", "lock-workspaces", "snapshot", "verify-snapshot", "archive",
                 "destroy-live-key", "remove-live-data")
LIVE_STATES = (State.approved, State.active)
CLOSED_STATES = (State.expired, State.revoked)


@dataclass(frozen=True)
class ClosureView:
    """Where a closing study stands (a `lifecycle_closures` row as plain data)."""

    servers_stopped: bool = False
    workspaces_locked: bool = False
    snapshot_number: int | None = None
    verified: bool = False
    key_destroyed: bool = False
    live_removed: bool = False

    @classmethod
    def of(cls, row: LifecycleClosureRow) -> "ClosureView":
        return cls(row.servers_stopped_at is not None, row.locked_at is not None, row.snapshot_number,
                   row.verified_at is not None, row.key_destroyed_at is not None, row.live_removed_at is not None)


def next_closure_step(closure: ClosureView, state: State) -> str | None:
    """The next step of a study's closing path, or None when it is complete. Pure."""
    if state is State.purged:
        return None
    if not closure.servers_stopped:
        return "stop-servers"
    if state in LIVE_STATES:
        return "expire"
    if not closure.workspaces_locked:
        return "lock-workspaces"
    if closure.snapshot_number is None:
        return "snapshot"
    if not closure.verified:
        return "verify-snapshot"
    if state in CLOSED_STATES:
        return "archive"
    if not closure.key_destroyed:
        return "destroy-live-key"
    if not closure.live_removed:
        return "remove-live-data"
    return None


# --- expiry warnings ------------------------------------------------------------------------------

@dataclass(frozen=True)
class WarningDue:
    study: str
    ends: dt.date
    days: int
    thresholds: tuple[int, ...]


def warning_due(slug: str, ends: dt.date, now: dt.datetime, thresholds: list[int],
                sent: set[int]) -> WarningDue | None:
    """The warning to send now, if any. Pure.

    A threshold of d days is crossed once less than d days are left. Thresholds crossed together
    (the reconciler was down) make one warning, and a threshold larger than one already sent for
    this end date is never sent late.
    """
    remaining = clock.end_of_day(ends) - now
    if remaining <= dt.timedelta(0):
        return None
    crossed = [d for d in thresholds if remaining <= dt.timedelta(days=d)]
    smallest_sent = min(sent, default=math.inf)
    unsent = sorted((d for d in crossed if d not in sent and d < smallest_sent), reverse=True)
    if not unsent:
        return None
    return WarningDue(slug, ends, math.ceil(remaining / dt.timedelta(days=1)), tuple(unsent))


# --- what is due ----------------------------------------------------------------------------------

@dataclass
class Due:
    """Everything one tick has to do, found with indexed queries (read-only)."""

    activate: list[str] = field(default_factory=list)
    warn: list[WarningDue] = field(default_factory=list)
    close_new: list[tuple[str, str]] = field(default_factory=list)  # (slug, reason)
    close_open: list[str] = field(default_factory=list)
    cancel: list[str] = field(default_factory=list)
    purge: list[str] = field(default_factory=list)
    purge_resume: list[str] = field(default_factory=list)

    def closing(self) -> list[str]:
        return [slug for slug, _ in self.close_new] + self.close_open

    def as_actions(self) -> list[dict[str, Any]]:
        actions = [{"study": s, "action": "activate"} for s in self.activate]
        actions += [{"study": w.study, "action": "warn", "days": w.days, "thresholds": list(w.thresholds)}
                    for w in self.warn]
        actions += [{"study": s, "action": "close", "reason": r} for s, r in self.close_new]
        actions += [{"study": s, "action": "continue-closing"} for s in self.close_open]
        actions += [{"study": s, "action": "cancel-closing", "reason": "extended"} for s in self.cancel]
        actions += [{"study": s, "action": "purge"} for s in self.purge]
        actions += [{"study": s, "action": "finish-purge"} for s in self.purge_resume]
        return actions


def find_due(session: Session, now: dt.datetime, settings: Reconciler) -> Due:
    today = now.date()
    due = Due()
    due.activate = list(session.scalars(
        select(StudyRow.slug).where(StudyRow.state == State.approved.value, StudyRow.starts <= today,
                                    StudyRow.ends >= today).order_by(StudyRow.starts, StudyRow.slug)))
    due.warn = _due_warnings(session, now, settings)
    for slug, state, ends, reason in session.execute(
            select(StudyRow.slug, StudyRow.state, StudyRow.ends, LifecycleClosureRow.reason)
            .join(LifecycleClosureRow, LifecycleClosureRow.study == StudyRow.slug)
            .where(LifecycleClosureRow.finished_at.is_(None)).order_by(LifecycleClosureRow.started_at)):
        if reason == "expired" and state in (State.approved.value, State.active.value) and ends >= today:
            due.cancel.append(slug)  # an extension moved the end date before the study was expired
        else:
            due.close_open.append(slug)
    has_closure = exists().where(LifecycleClosureRow.study == StudyRow.slug)
    for slug, state in session.execute(
            select(StudyRow.slug, StudyRow.state)
            .where(or_(and_(StudyRow.state.in_([State.approved.value, State.active.value]), StudyRow.ends < today),
                       StudyRow.state.in_([State.expired.value, State.revoked.value])), ~has_closure)
            .order_by(StudyRow.ends, StudyRow.slug)):
        due.close_new.append((slug, "revoked" if state == State.revoked.value else "expired"))
    open_closure = exists().where(LifecycleClosureRow.study == StudyRow.slug, LifecycleClosureRow.finished_at.is_(None))
    due.purge = list(session.scalars(
        select(StudyRow.slug).where(StudyRow.state == State.archived.value, StudyRow.retention_until < today,
                                    ~open_closure).order_by(StudyRow.retention_until, StudyRow.slug)))
    due.purge_resume = _unfinished_purges(session)
    return due


def _due_warnings(session: Session, now: dt.datetime, settings: Reconciler) -> list[WarningDue]:
    if not settings.warning_days:
        return []
    today = now.date()
    horizon = today + dt.timedelta(days=max(settings.warning_days))
    candidates = session.execute(select(StudyRow.slug, StudyRow.ends).where(
        StudyRow.state == State.active.value, StudyRow.ends >= today, StudyRow.ends <= horizon)
        .order_by(StudyRow.ends, StudyRow.slug)).all()
    if not candidates:
        return []
    sent: dict[tuple[str, dt.date], set[int]] = {}
    for study, ends, threshold in session.execute(
            select(LifecycleWarningRow.study, LifecycleWarningRow.ends, LifecycleWarningRow.threshold_days)
            .where(LifecycleWarningRow.study.in_([slug for slug, _ in candidates]))):
        sent.setdefault((study, ends), set()).add(threshold)
    found = (warning_due(slug, ends, now, settings.warning_days, sent.get((slug, ends), set()))
             for slug, ends in candidates)
    return [w for w in found if w is not None]


def _unfinished_purges(session: Session) -> list[str]:
    """Purged studies whose destruction was interrupted or failed after the purge transition."""
    broken = set(session.scalars(select(LifecycleStepRow.study).where(
        LifecycleStepRow.step == "purge", LifecycleStepRow.outcome.in_([INTERRUPTED, FAILED]))))
    if not broken:
        return []
    resumed = []
    for slug in sorted(broken):
        state = session.scalar(select(StudyRow.state).where(StudyRow.slug == slug))
        last = session.scalar(select(LifecycleStepRow.outcome).where(
            LifecycleStepRow.study == slug, LifecycleStepRow.step == "purge",
            LifecycleStepRow.outcome.in_([DONE, INTERRUPTED, FAILED, CANCELLED]))
            .order_by(LifecycleStepRow.id.desc()).limit(1))
        if state == State.purged.value and last != DONE:
            resumed.append(slug)
    return resumed


# --- one tick -------------------------------------------------------------------------------------

@dataclass
class TickReport:
    """What one tick did (or, in a dry run, would do)."""

    started_at: dt.datetime
    holder: str
    acquired: bool = True
    dry_run: bool = False
    lock_holder: str | None = None
    took_over_from: str | None = None
    interrupted: list[dict[str, Any]] = field(default_factory=list)
    planned: list[dict[str, Any]] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def failed(self) -> list[dict[str, Any]]:
        return [s for s in self.steps if s["outcome"] == FAILED]

    def as_dict(self) -> dict[str, Any]:
        return {"started_at": clock.isoformat(self.started_at), "holder": self.holder, "acquired": self.acquired,
                "dry_run": self.dry_run, "lock_holder": self.lock_holder, "took_over_from": self.took_over_from,
                "interrupted": self.interrupted, "planned": self.planned, "steps": self.steps,
                "notes": self.notes, "seconds": round(self.seconds, 4)}


def reconcile(context, *, hub=None, settings: Reconciler | None = None, dry_run: bool | None = None,
              holder: str | None = None) -> TickReport:
    """Run one tick. `hub` is a `lifecycle_hub.HubPort` (None: no hub API, steps needing it fail)."""
    from .lifecycle_steps import run_tick

    settings = settings or Reconciler(config=context.settings.config)
    return run_tick(context, settings, hub, dry_run=settings.dry_run if dry_run is None else dry_run, holder=holder)
