"""Study operations shared by the CLI and the service: load, decide, save and audit in one go.

Each operation runs the pure transition (`studies.apply`) inside one store transaction and
appends its audit events there, so a study never changes without its audit entry. A refused
action is audited too, in a transaction of its own, and the error is raised again.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import clock, studies
from .audit import AuditLog, FileCheckpointSink, SyslogCheckpointSink
from .catalog import Catalog, load_catalog
from .config import BubbleManager
from .signing import Signer, load_signer, load_verifier, Verifier
from .store import Store, list_studies, load_study, save_study
from .studies import Action, Actor, Study, TransitionError
from .study_request import parse_request


class UnknownStudy(LookupError):
    def __init__(self, slug: str):
        super().__init__(f"no study {slug!r}; `bubble-manager studies list` shows the studies you may see")
        self.slug = slug


@dataclass
class Context:
    """Everything an operation needs, built once from the settings."""

    settings: BubbleManager
    store: Store
    audit: AuditLog
    signer: Signer | None
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def open(cls, settings: BubbleManager, *, migrate: bool = True, require_signer: bool = True) -> "Context":
        home = settings.home_path
        home.mkdir(parents=True, exist_ok=True)
        signer = load_signer(home) if require_signer else _maybe_signer(home)
        store = Store(settings.db_url)
        if migrate:
            store.migrate()
        else:
            store.check_schema()
        sink = (SyslogCheckpointSink() if settings.audit_sink == "syslog"
                else FileCheckpointSink(Path(settings.audit_checkpoint_path)))
        audit = AuditLog(store, signer, sink, settings.audit_checkpoint_interval)
        return cls(settings=settings, store=store, audit=audit, signer=signer)

    @property
    def home(self) -> Path:
        return self.settings.home_path

    @functools.cached_property
    def catalog(self) -> Catalog:
        return load_catalog(self.settings.catalog_path)

    @property
    def policy(self) -> studies.Policy:
        return self.settings.policy()

    def verifier(self) -> Verifier:
        return self.signer.verifier if self.signer else load_verifier(self.home)

    def close(self) -> None:
        self.audit.close()
        self.store.dispose()


def cohort_checker():
    """The extract subsystem's parse-time cohort check, so bad cohort SQL is refused at submission."""
    try:
        from .extract.cohort import cohort_sql_problems
    except ImportError:
        return None
    return cohort_sql_problems


def _maybe_signer(home: Path) -> Signer | None:
    try:
        return load_signer(home)
    except Exception:
        return None


class StudyOperations:
    """The study commands, whoever calls them (CLI, API)."""

    def __init__(self, context: Context, *, via: dict[str, Any] | None = None):
        self.context = context
        self.via = via or {}

    # --- reading ---

    def get(self, slug: str) -> Study:
        with self.context.store.transaction() as session:
            study = load_study(session, slug)
        if study is None:
            raise UnknownStudy(slug)
        return study

    def list(self, *, states: list[str] | None = None, person: str | None = None) -> list[Study]:
        with self.context.store.transaction() as session:
            return list_studies(session, states=states, person=person)

    # --- writing ---

    def request(self, actor: Actor, document: dict[str, Any]) -> Study:
        """Create a draft from a request document; the requester is the actor, never a field."""
        document = dict(document)
        claimed = document.pop("requester", None)
        if claimed is not None and claimed != actor.name:
            self._refused(actor, document.get("slug") if isinstance(document.get("slug"), str) else None,
                          "request", "requester-mismatch")
            raise TransitionError("requester-mismatch", f"the requester is whoever submits the request ({actor.name}), "
                                  f"not {claimed!r}; remove the requester field")
        request = parse_request(document)
        return self._apply(request.slug, actor, studies.Create(request), creating=True)

    def edit(self, actor: Actor, document: dict[str, Any]) -> Study:
        request = parse_request({k: v for k, v in document.items() if k != "requester"})
        return self._apply(request.slug, actor, studies.Edit(request))

    def submit(self, actor: Actor, slug: str) -> Study:
        return self._apply(slug, actor, studies.Submit(self.context.catalog, cohort_checker=cohort_checker()))

    def approve(self, actor: Actor, slug: str, comment: str = "", include_free_text: tuple[str, ...] = ()) -> Study:
        return self._apply(slug, actor, studies.Approve(comment, tuple(include_free_text), self.context.catalog))

    def reject(self, actor: Actor, slug: str, comment: str) -> Study:
        return self._apply(slug, actor, studies.Reject(comment))

    def request_changes(self, actor: Actor, slug: str, comment: str) -> Study:
        return self._apply(slug, actor, studies.RequestChanges(comment))

    def activate(self, actor: Actor, slug: str) -> Study:
        return self._apply(slug, actor, studies.Activate())

    def revoke(self, actor: Actor, slug: str, reason: str) -> Study:
        return self._apply(slug, actor, studies.Revoke(reason))

    def extend(self, actor: Actor, slug: str, until) -> Study:  # noqa: ANN001 - a date
        return self._apply(slug, actor, studies.ProposeExtension(until))

    def change_members(self, actor: Actor, slug: str, add: tuple[str, ...] = (), remove: tuple[str, ...] = ()) -> Study:
        return self._apply(slug, actor, studies.ProposeMembers(tuple(add), tuple(remove)))

    def set_retention(self, actor: Actor, slug: str, days: int, reason: str) -> Study:
        return self._apply(slug, actor, studies.SetRetention(days, reason))

    def transition(self, actor: Actor, slug: str, action: Action) -> Study:
        """Apply any lifecycle action (the reconciler's expire, archive and purge use this)."""
        return self._apply(slug, actor, action)

    def _apply(self, slug: str, actor: Actor, action: Action, *, creating: bool = False) -> Study:
        name = studies.action_name(action)
        try:
            with self.context.store.transaction() as session:
                current = load_study(session, slug, for_update=True)
                if current is None and not creating:
                    raise UnknownStudy(slug)
                result = studies.apply(current, actor, action, now=clock.utcnow(), policy=self.context.policy)
                save_study(session, result.study)
                for event in result.events:
                    self.context.audit.append(session, actor=actor.name, action=event.action, study=event.study,
                                              detail={**event.detail, **self._via()})
                return result.study
        except TransitionError as error:
            self._refused(actor, slug, name, error.rule)
            raise
        except UnknownStudy:
            self._refused(actor, slug, name, "unknown-study")
            raise

    def _refused(self, actor: Actor, slug: str | None, action: str, rule: str) -> None:
        self.context.audit.record(actor=actor.name, action="study.refused", study=slug if self._exists(slug) else None,
                                  detail={"attempted": action, "rule": rule, "slug": slug, **self._via()})

    def _exists(self, slug: str | None) -> bool:
        if not slug:
            return False
        with self.context.store.transaction() as session:
            return load_study(session, slug) is not None

    def _via(self) -> dict[str, Any]:
        return {"via": self.via} if self.via else {}

