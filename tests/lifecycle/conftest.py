"""Lifecycle fixtures: an activatable home (small warehouse, custodians), studies at chosen dates,
and a recording stand-in for the hub API (the end-to-end tests use the real hub instead)."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bubble_manager import clock
from bubble_manager.config import load_settings
from bubble_manager.lifecycle import Reconciler, TickReport, reconcile
from bubble_manager.lifecycle_hub import HubUnavailable
from bubble_manager.operations import Context, StudyOperations
from bubble_manager.store import AuditEntryRow
from bubble_manager.studies import Actor

from ..hubfixture import request_document

UTC = dt.timezone.utc
CAROL = Actor("carol", frozenset({"researcher"}))
SAM = Actor("sam", frozenset({"steward"}))
TOM = Actor("tom", frozenset({"steward"}))
ADMIN = Actor("admin", frozenset({"admin"}))
START = dt.date(2026, 12, 1)
END = dt.date(2027, 1, 31)
CONFIG = """c.ArchiveSettings.zstd_threads = 0
c.ExtractSettings.cohort_timeout_seconds = 60
c.ExtractSettings.build_threads = 1
c.Reconciler.idle_timeout_seconds = 0
c.Reconciler.stop_timeout_seconds = 5
"""


def at(day: dt.date, hour: int = 9) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@dataclass
class RecordingHub:
    """The hub API as the reconciler sees it: servers that stop when asked; `down` makes every call fail."""

    running: list[dict[str, Any]] = field(default_factory=list)
    stopped: list[tuple[str, str]] = field(default_factory=list)
    started: list[tuple[str, str]] = field(default_factory=list)
    groups: dict[str, list[str]] = field(default_factory=dict)
    down: bool = False

    def _check(self) -> None:
        if self.down:
            raise HubUnavailable("the hub API is unreachable (connection refused)")

    def run(self, user: str, study: str, last_activity: dt.datetime | None = None) -> None:
        moment = clock.isoformat(last_activity or clock.utcnow())
        self.running.append({"user": user, "study": study, "ready": True, "pending": None, "started": moment,
                             "last_activity": moment, "url": f"/user/{user}/{study}/"})

    def servers(self) -> list[dict[str, Any]]:
        self._check()
        return [dict(s) for s in self.running]

    def stop_server(self, user: str, name: str) -> None:
        self._check()
        self.stopped.append((user, name))
        self.running = [s for s in self.running if (s["user"], s["study"]) != (user, name)]

    def start_server(self, user: str, name: str) -> None:
        self._check()
        self.started.append((user, name))
        self.run(user, name)

    def group_members(self, group: str) -> list[str]:
        self._check()
        return list(self.groups.get(group, []))


@pytest.fixture
def home(activatable_home: Path) -> Path:
    (activatable_home / "bubble_manager_config.py").write_text(CONFIG)
    return activatable_home


@pytest.fixture
def ctx(home: Path, frozen_clock):
    context = Context.open(load_settings(home))
    yield context
    context.close()


@pytest.fixture
def hub() -> RecordingHub:
    return RecordingHub(groups={"admins": ["admin"]})


def settings_of(context: Context, **overrides: Any) -> Reconciler:
    settings = Reconciler(config=context.settings.config)
    for name, value in overrides.items():
        setattr(settings, name, value)
    return settings


def tick(context: Context, hub=None, **overrides: Any) -> TickReport:  # noqa: ANN001
    return reconcile(context, hub=hub, settings=settings_of(context, **overrides))


def approved_study(context: Context, slug: str, *, starts: dt.date = START, ends: dt.date = END,
                   members: tuple[str, ...] = ("alice", "bob")) -> None:
    """Request (as carol), submit and approve (as sam) a study with the example request's data."""
    operations = StudyOperations(context)
    operations.request(CAROL, request_document(slug, list(members), starts, ends))
    operations.submit(CAROL, slug)
    operations.approve(SAM, slug, "fine")


def audit(context: Context, slug: str | None = None, action: str | None = None) -> list[tuple[str, dict]]:
    with context.store.transaction() as session:
        query = select(AuditEntryRow).order_by(AuditEntryRow.seq)
        if slug is not None:
            query = query.where(AuditEntryRow.study == slug)
        if action is not None:
            query = query.where(AuditEntryRow.action == action)
        return [(e.action, json.loads(e.detail)) for e in session.scalars(query)]


def steps_of(report: TickReport, outcome: str | None = None) -> list[tuple[str | None, str]]:
    return [(s["study"], s["step"]) for s in report.steps if outcome is None or s["outcome"] == outcome]
