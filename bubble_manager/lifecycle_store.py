"""The reconciler's tables: its lock, its step journal, warnings sent, closures in progress, state.

- `lifecycle_lock`: one row per lock name; whoever holds an unexpired row acts, nobody else. The
  holder renews it while it works; a holder that died (same host, its process gone) or whose
  row expired is replaced.
- `lifecycle_journal`: every step is recorded before it starts (`running`) and after it ends
  (`done`, `failed`); a row still `running` when the next reconciler takes the lock belonged to a
  reconciler that was killed, and becomes `interrupted`.
- `lifecycle_warnings`: expiry warnings sent, per study, end date and threshold (an extension
  moves the end date, so its warnings are due again).
- `lifecycle_closures`: where each study's closing path (stop, expire, lock, snapshot, verify,
  archive, destroy live key, remove live data) stands; a killed reconciler resumes from it.
- `lifecycle_state`: small named values (the opt-out register's fingerprint, ...).
- three indexes on `studies` (state with starts, ends, retention_until) for the due queries.

The tables are created by migration 0003; `migrations/env.py` imports this module.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import socket
from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, Integer, String, Text, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from . import clock
from .store import Base, Store, StudyRow, UTCDateTime

RECONCILER_LOCK = "reconciler"
RUNNING, DONE, FAILED, INTERRUPTED, CANCELLED = "running", "done", "failed", "interrupted", "cancelled"


class LifecycleLockRow(Base):
    __tablename__ = "lifecycle_lock"

    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class LifecycleStepRow(Base):
    __tablename__ = "lifecycle_journal"
    __table_args__ = (Index("ix_lifecycle_journal_study_step", "study", "step"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    study: Mapped[str | None] = mapped_column(ForeignKey("studies.slug"), nullable=True)
    step: Mapped[str] = mapped_column(String(40))
    holder: Mapped[str] = mapped_column(String(200))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    outcome: Mapped[str] = mapped_column(String(20), index=True)
    detail: Mapped[dict] = mapped_column(JSON, default=dict)


class LifecycleWarningRow(Base):
    __tablename__ = "lifecycle_warnings"

    study: Mapped[str] = mapped_column(ForeignKey("studies.slug"), primary_key=True)
    ends: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    threshold_days: Mapped[int] = mapped_column(Integer, primary_key=True)
    days_told: Mapped[int] = mapped_column(Integer)
    sent_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class LifecycleClosureRow(Base):
    __tablename__ = "lifecycle_closures"

    study: Mapped[str] = mapped_column(ForeignKey("studies.slug"), primary_key=True)
    reason: Mapped[str] = mapped_column(String(20))
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    servers_stopped_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    locked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    snapshot_number: Mapped[int | None] = mapped_column(Integer, nullable=True)
    verified_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    key_destroyed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    live_removed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True, index=True)
    rejected_archives: Mapped[list] = mapped_column(JSON, default=list)


class LifecycleStateRow(Base):
    __tablename__ = "lifecycle_state"

    key: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


# What makes a tick load only what is due: range scans within one state on the date that matters
# (activation on starts, warnings and expiry on ends, purge on retention_until), never all studies.
DUE_INDEXES = (
    Index("ix_lifecycle_studies_state_starts", StudyRow.state, StudyRow.starts),
    Index("ix_lifecycle_studies_state_ends", StudyRow.state, StudyRow.ends),
    Index("ix_lifecycle_studies_state_retention", StudyRow.state, StudyRow.retention_until),
)


# --- the lock ------------------------------------------------------------------------------------

def new_holder() -> str:
    """Who holds the lock: host, pid, the process's start time (pid reuse) and a random token."""
    from .runtime.launcher import process_start_ticks

    return f"{socket.gethostname()}/{os.getpid()}/{process_start_ticks(os.getpid()) or 0}/{secrets.token_hex(4)}"


def holder_is_dead(holder: str) -> bool:
    """True when `holder` was a process of this host that no longer runs (killed, crashed)."""
    from .runtime.launcher import process_alive

    try:
        host, pid, start, _ = holder.split("/")
        pid_number, start_ticks = int(pid), int(start)
    except ValueError:
        return False
    if host != socket.gethostname():
        return False
    return not process_alive(pid_number, start_ticks or None)


@dataclass(frozen=True)
class LockStatus:
    acquired: bool
    holder: str
    expires_at: dt.datetime
    took_over: str | None = None


def acquire_lock(store: Store, holder: str, ttl_seconds: float, name: str = RECONCILER_LOCK) -> LockStatus:
    """Take the lock if it is free, expired, ours, or held by a dead process of this host."""
    now = clock.utcnow()
    expires = now + dt.timedelta(seconds=ttl_seconds)
    try:
        with store.transaction() as session:
            row = session.scalars(select(LifecycleLockRow).where(LifecycleLockRow.name == name)
                                  .with_for_update()).one_or_none()
            if row is None:
                session.add(LifecycleLockRow(name=name, holder=holder, acquired_at=now, expires_at=expires))
                return LockStatus(True, holder, expires)
            if row.holder != holder and row.expires_at > now and not holder_is_dead(row.holder):
                return LockStatus(False, row.holder, row.expires_at)
            previous = row.holder if row.holder != holder else None
            row.holder, row.acquired_at, row.expires_at = holder, now, expires
            return LockStatus(True, holder, expires, took_over=previous)
    except IntegrityError:  # another process inserted the row first (PostgreSQL)
        return LockStatus(False, "another reconciler", now)


def renew_lock(store: Store, holder: str, ttl_seconds: float, name: str = RECONCILER_LOCK) -> bool:
    """Push the lock's expiry forward; False when the lock is no longer ours."""
    expires = clock.utcnow() + dt.timedelta(seconds=ttl_seconds)
    with store.transaction() as session:
        result = session.execute(update(LifecycleLockRow)
                                 .where(LifecycleLockRow.name == name, LifecycleLockRow.holder == holder)
                                 .values(expires_at=expires))
        return result.rowcount == 1


def release_lock(store: Store, holder: str, name: str = RECONCILER_LOCK) -> None:
    with store.transaction() as session:
        row = session.get(LifecycleLockRow, name)
        if row is not None and row.holder == holder:
            session.delete(row)


def lock_holder(store: Store, name: str = RECONCILER_LOCK) -> tuple[str, dt.datetime] | None:
    with store.transaction() as session:
        row = session.get(LifecycleLockRow, name)
        return (row.holder, row.expires_at) if row is not None else None


# --- the journal ---------------------------------------------------------------------------------

def begin_step(store: Store, study: str | None, step: str, holder: str, detail: dict[str, Any] | None = None) -> int:
    """Record that `step` starts (committed before the step acts); returns the journal row id."""
    with store.transaction() as session:
        row = LifecycleStepRow(study=study, step=step, holder=holder, started_at=clock.utcnow(),
                               outcome=RUNNING, detail=_json_clean(detail or {}))
        session.add(row)
        session.flush()
        return row.id


def finish_step(session: Session, step_id: int, outcome: str, detail: dict[str, Any] | None = None) -> None:
    """Record how `step` ended, in the caller's transaction (with the audit entry and state it changed)."""
    row = session.get(LifecycleStepRow, step_id)
    assert row is not None, f"journal row {step_id} vanished"
    row.finished_at = clock.utcnow()
    row.outcome = outcome
    if detail:
        row.detail = {**(row.detail or {}), **_json_clean(detail)}


def mark_interrupted(store: Store, holder: str) -> list[LifecycleStepRow]:
    """Rows other reconcilers left `running` (they were killed): mark them interrupted."""
    with store.transaction() as session:
        rows = list(session.scalars(select(LifecycleStepRow).where(LifecycleStepRow.outcome == RUNNING,
                                                                   LifecycleStepRow.holder != holder)))
        for row in rows:
            row.outcome = INTERRUPTED
            row.finished_at = clock.utcnow()
        return rows


def journal(store: Store, study: str | None = None, *, step: str | None = None) -> list[LifecycleStepRow]:
    """The journal, oldest first (optionally one study's, one step's)."""
    with store.transaction() as session:
        query = select(LifecycleStepRow).order_by(LifecycleStepRow.id)
        if study is not None:
            query = query.where(LifecycleStepRow.study == study)
        if step is not None:
            query = query.where(LifecycleStepRow.step == step)
        return list(session.scalars(query))


def last_outcome(session: Session, study: str | None, step: str) -> str | None:
    """The outcome of the latest finished attempt of `step` for `study` (None if never tried)."""
    query = (select(LifecycleStepRow.outcome)
             .where(LifecycleStepRow.study.is_(None) if study is None else LifecycleStepRow.study == study,
                    LifecycleStepRow.step == step, LifecycleStepRow.outcome != RUNNING)
             .order_by(LifecycleStepRow.id.desc()).limit(1))
    return session.scalar(query)


# --- named values --------------------------------------------------------------------------------

def get_state(session: Session, key: str) -> Any:
    row = session.get(LifecycleStateRow, key)
    return json.loads(row.value) if row is not None else None


def set_state(session: Session, key: str, value: Any) -> None:
    row = session.get(LifecycleStateRow, key)
    text = json.dumps(value, sort_keys=True)
    if row is None:
        session.add(LifecycleStateRow(key=key, value=text, updated_at=clock.utcnow()))
    else:
        row.value, row.updated_at = text, clock.utcnow()


def _json_clean(detail: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(detail, default=str))
