"""The reconciler's steps: each one journaled before and after, each one checking the world first.

`run_tick` takes the lock, marks what a killed reconciler left running as interrupted, finds what
is due (`lifecycle.find_due`) and runs it through a `TickRunner`. The steps are public methods of
the runner, so an operator (or a test) can run them one at a time with the same journal and audit.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import clock
from .lifecycle import (CLOSURE_STEPS, ClosureView, Reconciler, TickReport, WarningDue, find_due,
                        next_closure_step)
from .lifecycle_hub import HubPort, HubUnavailable, StrayServer, idle_servers, stray_servers
from .lifecycle_store import (CANCELLED, DONE, FAILED, INTERRUPTED, LifecycleClosureRow, LifecycleStepRow,
                              LifecycleWarningRow, acquire_lock, begin_step, finish_step, last_outcome,
                              mark_interrupted, new_holder, release_lock, renew_lock)
from .operations import StudyOperations
from .store import AuditEntryRow, StudyRow, load_study
from .studies import SYSTEM, State, Study

log = logging.getLogger("bubble_manager.lifecycle")
VIA = {"channel": "reconciler"}


class StepPending(RuntimeError):
    """The step cannot finish yet (servers still stopping); retried next tick, no alert."""


class LockLost(RuntimeError):
    """Another reconciler took the lock (ours expired): stop acting at once."""


class HubNotConfigured(HubUnavailable):
    """No hub API was given to this reconciler."""


@dataclass
class StepOutcome:
    detail: dict[str, Any]
    record: Callable[[Session], None] | None = None


# --- the lock, held for the whole tick ------------------------------------------------------------

class LockGuard:
    """Renews the lock every third of its expiry from a background thread while the tick runs."""

    def __init__(self, store, holder: str, ttl: float):
        self.store, self.holder, self.ttl = store, holder, ttl
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew_loop, name="reconciler-lock", daemon=True)

    def __enter__(self) -> "LockGuard":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew_loop(self) -> None:
        while not self._stop.wait(self.ttl / 3):
            try:
                if not renew_lock(self.store, self.holder, self.ttl):
                    self.lost = True
                    return
            except Exception:  # the store is briefly unreachable: try again at the next beat
                log.exception("could not renew the reconciler lock")

    def check(self) -> None:
        if self.lost or not renew_lock(self.store, self.holder, self.ttl):
            self.lost = True
            raise LockLost("the reconciler lock expired and was taken by another reconciler; stopping this tick")


def run_tick(context, settings: Reconciler, hub: HubPort | None, *, dry_run: bool = False,
             holder: str | None = None) -> TickReport:
    started = time.perf_counter()
    now = clock.utcnow()
    holder = holder or new_holder()
    report = TickReport(started_at=now, holder=holder, dry_run=dry_run)
    runner = TickRunner(context, settings, hub, holder, report)
    if dry_run:
        with context.store.transaction() as session:
            report.planned = find_due(session, now, settings).as_actions()
        report.planned += runner.planned_optouts() + runner.planned_servers()
        report.seconds = time.perf_counter() - started
        return report
    status = acquire_lock(context.store, holder, settings.lock_ttl_seconds)
    if not status.acquired:
        report.acquired, report.lock_holder = False, status.holder
        report.notes.append(f"another reconciler ({status.holder}) holds the lock until "
                            f"{clock.isoformat(status.expires_at)}; nothing done")
        report.seconds = time.perf_counter() - started
        return report
    report.took_over_from = status.took_over
    try:
        with LockGuard(context.store, holder, settings.lock_ttl_seconds) as guard:
            runner.guard = guard
            runner.recover_interrupted()
            with context.store.transaction() as session:
                due = find_due(session, now, settings)
            report.planned = due.as_actions()
            runner.run_due(due)
    except LockLost as error:
        report.notes.append(str(error))
    finally:
        release_lock(context.store, holder)
    report.seconds = time.perf_counter() - started
    return report


@contextlib.contextmanager
def runner_holding_lock(context, settings: Reconciler, hub: HubPort | None) -> Iterator["TickRunner"]:
    """A `TickRunner` holding the reconciler lock, to run steps one at a time (operators, tests)."""
    holder = new_holder()
    report = TickReport(started_at=clock.utcnow(), holder=holder)
    status = acquire_lock(context.store, holder, settings.lock_ttl_seconds)
    if not status.acquired:
        raise LockLost(f"another reconciler ({status.holder}) holds the lock")
    try:
        with LockGuard(context.store, holder, settings.lock_ttl_seconds) as guard:
            runner = TickRunner(context, settings, hub, holder, report)
            runner.guard = guard
            runner.recover_interrupted()
            yield runner
    finally:
        release_lock(context.store, holder)


# --- the runner -----------------------------------------------------------------------------------

class TickRunner:
    """Runs the steps of one tick; every step goes through `run_step` (journal, audit, alert)."""

    def __init__(self, context, settings: Reconciler, hub: HubPort | None, holder: str, report: TickReport):
        self.context = context
        self.settings = settings
        self.hub = hub
        self.holder = holder
        self.report = report
        self.guard: LockGuard | None = None
        self._servers: list[dict[str, Any]] | None = None
        self._notifier = None
        self.hub_failure: HubUnavailable | None = None   # the hub failed a step of this tick

    # --- plumbing ---

    def run_step(self, study: str | None, step: str, action: Callable[[], StepOutcome], *,
                 audit_action: str | None = None) -> bool:
        """Journal `step` as started, run it, journal and audit how it ended. True if it was done."""
        if self.guard is not None:
            self.guard.check()
        step_id = begin_step(self.context.store, study, step, self.holder)
        try:
            outcome = action()
        except LockLost:
            raise
        except Exception as error:
            self._failed(step_id, study, step, error)
            return False
        with self.context.store.transaction() as session:
            finish_step(session, step_id, DONE, outcome.detail)
            if outcome.record is not None:
                outcome.record(session)
            self.context.audit.append(session, actor=SYSTEM.name, action=audit_action or f"lifecycle.{step}",
                                      study=study, detail=outcome.detail)
        self.report.steps.append({"study": study, "step": step, "outcome": DONE, "detail": outcome.detail})
        return True

    def _failed(self, step_id: int, study: str | None, step: str, error: Exception) -> None:
        message = f"{type(error).__name__}: {error}"[:500]
        alert = not isinstance(error, StepPending)
        if isinstance(error, HubUnavailable):
            self.hub_failure = error
        with self.context.store.transaction() as session:
            first = last_outcome(session, study, step) != FAILED
            finish_step(session, step_id, FAILED, {"error": message})
            if alert and first:
                self.context.audit.append(session, actor=SYSTEM.name, action="lifecycle.alert", study=study,
                                          detail={"step": step, "error": message, "retry": "next tick"})
        log.warning("reconciler step %s of %s failed: %s", step, study or "-", message)
        self.report.steps.append({"study": study, "step": step, "outcome": FAILED, "detail": {"error": message}})
        if alert and first:
            self._alert_admins(study, step, message)

    def record_failure(self, study: str | None, step: str, error: Exception) -> None:
        """Journal (and alert) a failure found outside a step's action."""
        self._failed(begin_step(self.context.store, study, step, self.holder), study, step, error)

    def notifier(self):  # noqa: ANN201 - service.notifications.Notifier
        if self._notifier is None:
            from .service.app import ServiceSettings
            from .service.notifications import Notifier

            self._notifier = Notifier(self.context, ServiceSettings(config=self.context.settings.config))
        return self._notifier

    def _alert_admins(self, study: str | None, step: str, message: str) -> None:
        notifier = self.notifier()
        people = list(self.settings.alert_addresses)
        if self.hub is not None and self.settings.admin_group:
            try:
                people += self.hub.group_members(self.settings.admin_group)
            except Exception as error:  # the alert still stands in the audit log
                log.warning("could not list the %s group for an alert: %s", self.settings.admin_group, error)
        addresses = [a for a in dict.fromkeys(notifier.address_of(p) for p in people) if a]
        subject = f"bubble-manager: step {step} failed" + (f" for study {study}" if study else "")
        notifier.send(addresses, subject, f"{subject}\n\n{message}\n\nThe reconciler retries it on its next tick; "
                                          "live data is kept until the study's snapshot verifies.\n")

    def require_hub(self) -> HubPort:
        if self.hub is None:
            raise HubNotConfigured("no hub API is configured for this reconciler, so it cannot stop bubbles; it "
                                   "runs in the bubble-manager service, or pass --hub-api-url")
        return self.hub

    def servers(self) -> list[dict[str, Any]]:
        if self._servers is None:
            self._servers = self.require_hub().servers()
        return self._servers

    def operations(self) -> StudyOperations:
        return StudyOperations(self.context, via=VIA)

    def study(self, slug: str) -> Study:
        with self.context.store.transaction() as session:
            study = load_study(session, slug)
        assert study is not None, f"study {slug} vanished"
        return study

    # --- the tick ---

    def recover_interrupted(self) -> None:
        rows = mark_interrupted(self.context.store, self.holder)
        for row in rows:
            self.report.interrupted.append({"study": row.study, "step": row.step, "holder": row.holder})
            self.context.audit.record(actor=SYSTEM.name, action="lifecycle.interrupted", study=row.study,
                                      detail={"step": row.step, "started_at": clock.isoformat(row.started_at)})

    def run_due(self, due) -> None:  # noqa: ANN001 - lifecycle.Due
        for slug in due.cancel:
            self.cancel_closure(slug)
        for slug, reason in due.close_new:
            self.start_closure(slug, reason)
        for slug in due.closing():
            self.close_study(slug)
        for slug in due.activate:
            self.activate(slug)
        for warning in due.warn:
            self.warn(warning)
        for slug in due.purge + due.purge_resume:
            self.purge(slug)
        self.optouts()
        self.check_servers(closing=set(due.closing()))

    # --- activation ---

    def activate(self, slug: str) -> bool:
        def action() -> StepOutcome:
            from .extract.activation import activate_with_extract

            study = activate_with_extract(self.context, SYSTEM, slug, operations=self.operations())
            told = self.notifier().study_event(study, "study.activated")
            return StepOutcome({"members": len(study.members), "emailed": len(told)})

        return self.run_step(slug, "activate", action)

    # --- warnings ---

    def warn(self, warning: WarningDue) -> bool:
        def action() -> StepOutcome:
            study = self.study(warning.study)
            notifier = self.notifier()
            told = notifier.study_event(study, "study.expiry_warning", days=warning.days)
            stewards = [a for a in (notifier.address_of(s) for s in self.responsible_stewards(study.slug)) if a]
            subject = f"Study {study.slug} ends in {warning.days} day(s)"
            told += notifier.send(stewards, subject, f"{subject} (on {study.ends}); you approved it.\n\n"
                                  "Its bubbles stop at the end of that day and are archived; an extension must be "
                                  "approved before then.\n")

            def record(session: Session) -> None:
                now = clock.utcnow()
                for threshold in warning.thresholds:
                    session.add(LifecycleWarningRow(study=study.slug, ends=warning.ends, threshold_days=threshold,
                                                    days_told=warning.days, sent_at=now))

            return StepOutcome({"days": warning.days, "ends": str(warning.ends),
                                "thresholds": list(warning.thresholds), "emailed": len(told)}, record)

        return self.run_step(warning.study, "warn", action, audit_action="study.expiry_warning")

    def responsible_stewards(self, slug: str) -> list[str]:
        """The stewards who approved the study or its amendments (from the audit log)."""
        import json

        with self.context.store.transaction() as session:
            details = session.scalars(select(AuditEntryRow.detail).where(
                AuditEntryRow.study == slug, AuditEntryRow.action.in_(["study.approved", "study.amended"])))
            names = [name for detail in details for name in json.loads(detail).get("approvers", [])]
        return list(dict.fromkeys(names))

    # --- closing ---

    def start_closure(self, slug: str, reason: str) -> None:
        with self.context.store.transaction() as session:
            if session.get(LifecycleClosureRow, slug) is None:
                session.add(LifecycleClosureRow(study=slug, reason=reason, started_at=clock.utcnow(),
                                                rejected_archives=[]))
                self.context.audit.append(session, actor=SYSTEM.name, action="lifecycle.closure-started",
                                          study=slug, detail={"reason": reason})

    def cancel_closure(self, slug: str) -> None:
        """An extension moved the end date before the study was expired: drop its closing path."""
        with self.context.store.transaction() as session:
            row = session.get(LifecycleClosureRow, slug)
            if row is None:
                return
            done = ["stop-servers"] if row.servers_stopped_at is not None else []
            session.delete(row)
            pending = session.execute(update(LifecycleStepRow).where(
                LifecycleStepRow.study == slug, LifecycleStepRow.step.in_(CLOSURE_STEPS),
                LifecycleStepRow.outcome.in_([FAILED, INTERRUPTED])).values(outcome=CANCELLED))
            study = load_study(session, slug)
            self.context.audit.append(session, actor=SYSTEM.name, action="lifecycle.closure-cancelled", study=slug,
                                      detail={"reason": "extended", "ends": str(study.ends) if study else None,
                                              "steps_done": done, "attempts_cancelled": pending.rowcount})
        self.report.steps.append({"study": slug, "step": "cancel-closure", "outcome": DONE, "detail": {}})

    def closure(self, slug: str) -> tuple[ClosureView, LifecycleClosureRow, State]:
        with self.context.store.transaction() as session:
            row = session.get(LifecycleClosureRow, slug)
            state = State(session.scalar(select(StudyRow.state).where(StudyRow.slug == slug)))
        assert row is not None, f"no closure for {slug}"
        return ClosureView.of(row), row, state

    def close_study(self, slug: str) -> bool:
        """Run the study's closing path from where it stands until it is complete or a step fails."""
        for _ in range(len(CLOSURE_STEPS) + 1):
            step = self.step_study(slug)
            if step is None:
                return True
            if step is False:
                return False
        raise RuntimeError(f"the closing path of {slug} does not advance")  # a bug, never a state of the world

    def step_study(self, slug: str) -> str | None | bool:
        """Run the next step of the study's closing path: its name if done, False if it failed,
        None when the path is complete."""
        from .lifecycle_closing import CLOSURE_ACTIONS

        view, row, state = self.closure(slug)
        step = next_closure_step(view, state)
        if step is None:
            self._finish_closure(slug, row)
            return None
        return step if self.run_step(slug, step, lambda: CLOSURE_ACTIONS[step](self, slug, row)) else False

    def _finish_closure(self, slug: str, row: LifecycleClosureRow) -> None:
        if row.finished_at is not None:
            return
        with self.context.store.transaction() as session:
            current = session.get(LifecycleClosureRow, slug)
            current.finished_at = clock.utcnow()

    def set_closure(self, slug: str, **values: Any) -> Callable[[Session], None]:
        def record(session: Session) -> None:
            row = session.get(LifecycleClosureRow, slug)
            for name, value in values.items():
                setattr(row, name, value)
        return record

    # --- purge ---

    def purge(self, slug: str) -> bool:
        def action() -> StepOutcome:
            from .archive.purge import purge

            result = purge(self.context, slug, actor=SYSTEM.name, via=VIA)
            return StepOutcome({"archives": [a["number"] for a in result.archives], "key_files": result.key_files,
                                "vault": result.vault, "certificate": result.certificate.name})

        return self.run_step(slug, "purge", action)

    # --- opt-outs and idle bubbles ---

    def optouts(self) -> None:
        from .lifecycle_optouts import propagate_optouts

        propagate_optouts(self)

    def planned_optouts(self) -> list[dict[str, Any]]:
        from .lifecycle_optouts import optouts_pending

        return [{"study": None, "action": "apply-opt-outs"}] if optouts_pending(self.context) else []

    def check_servers(self, closing: set[str]) -> None:
        """Stop the servers the gate would refuse now, then the idle ones (one listing of the hub's
        servers for both; servers of closing studies are left to their closing path)."""
        if self.hub is None or self.hub_failure is not None:
            return  # no hub, or its failure is already journaled (and alerted) by a step of this tick
        try:
            self.stop_stray(self.servers(), closing)
            if self.settings.idle_timeout_seconds:
                self.stop_idle(self.servers(), closing)   # listed again if a stray server was stopped
        except HubUnavailable as error:
            self.record_failure(None, "list-servers", error)

    def stray(self, servers: list[dict[str, Any]]) -> list[StrayServer]:
        slugs = {server["study"] for server in servers}
        with self.context.store.transaction() as session:
            rows = session.execute(select(StudyRow.slug, StudyRow.state).where(StudyRow.slug.in_(slugs))).all()
            members = {slug: frozenset(load_study(session, slug).members) for slug, state in rows
                       if state == State.active.value}
        studies = {slug: (state, members.get(slug, frozenset())) for slug, state in rows}
        return stray_servers(servers, studies)

    def stop_stray(self, servers: list[dict[str, Any]], closing: set[str]) -> None:
        for stray in self.stray(servers):
            if stray.study in closing:
                continue

            def action(stray=stray) -> StepOutcome:
                self.hub.stop_server(stray.user, stray.study)
                self._servers = None
                return StepOutcome({"user": stray.user, "server": stray.study, "rule": stray.rule,
                                    "state": stray.state})

            # an unknown name is no study of the store: journaled and audited without one
            self.run_step(None if stray.rule == "unknown-study" else stray.study, "stop-stray", action)

    def stop_idle(self, servers: list[dict[str, Any]], closing: set[str]) -> None:
        for idle in idle_servers(servers, clock.utcnow(), self.settings.idle_timeout_seconds):
            if idle.study in closing:
                continue

            def action(idle=idle) -> StepOutcome:
                self.hub.stop_server(idle.user, idle.study)
                self._servers = None
                return StepOutcome({"user": idle.user, "idle_minutes": idle.idle_seconds // 60,
                                    "limit_minutes": self.settings.idle_timeout_seconds // 60})

            self.run_step(idle.study, "idle-stop", action)

    def planned_servers(self) -> list[dict[str, Any]]:
        if self.hub is None:
            return []
        try:
            servers = self.servers()
        except HubUnavailable:
            return [{"study": None, "action": "check-servers", "note": "hub API unavailable"}]
        planned = [{"study": s.study, "action": "stop-stray", "user": s.user, "rule": s.rule}
                   for s in self.stray(servers)]
        if self.settings.idle_timeout_seconds:
            planned += [{"study": i.study, "action": "stop-idle", "user": i.user, "idle_minutes": i.idle_seconds // 60}
                        for i in idle_servers(servers, clock.utcnow(), self.settings.idle_timeout_seconds)]
        return planned
