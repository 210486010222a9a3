"""Persistence: SQLAlchemy 2 models, SQLite by default, PostgreSQL by URL, alembic migrations.

The store only saves and loads; decisions live in `studies.py`. Writes are serialised: SQLite
transactions start with `BEGIN IMMEDIATE`, PostgreSQL ones that append to the audit chain take
an advisory lock (see `audit.py`), so concurrent writers never interleave half-done changes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from pathlib import Path
from typing import Any, Callable, Iterator

from sqlalchemy import (JSON, BigInteger, Date, DateTime, ForeignKey, Integer, String, Text,
                        UniqueConstraint, create_engine, event, select, delete)
from sqlalchemy.types import TypeDecorator
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from .studies import Amendment, Approval, State, Study
from .study_request import StudyRequest

MIGRATIONS = Path(__file__).parent / "migrations"


class StoreError(RuntimeError):
    """The store cannot be opened or is not at the schema this version needs."""


class UTCDateTime(TypeDecorator):
    """Timestamps stored as UTC and always read back timezone-aware (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):  # noqa: ANN001 - SQLAlchemy signature
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use clock.utcnow()")
        return value.astimezone(dt.timezone.utc) if value is not None else None

    def process_result_value(self, value, dialect):  # noqa: ANN001
        if value is None:
            return None
        return value.replace(tzinfo=dt.timezone.utc) if value.tzinfo is None else value.astimezone(dt.timezone.utc)


class Base(DeclarativeBase):
    pass


class StudyRow(Base):
    __tablename__ = "studies"

    slug: Mapped[str] = mapped_column(String(30), primary_key=True)
    state: Mapped[str] = mapped_column(String(20), index=True)
    title: Mapped[str] = mapped_column(String(200))
    requester: Mapped[str] = mapped_column(String(100), index=True)
    version: Mapped[int] = mapped_column(Integer)
    request_hash: Mapped[str] = mapped_column(String(64))
    starts: Mapped[dt.date] = mapped_column(Date)
    ends: Mapped[dt.date] = mapped_column(Date, index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    free_text_approved: Mapped[list] = mapped_column(JSON, default=list)
    retention_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    retention_until: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    closed_on: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    last_comment: Mapped[str] = mapped_column(Text, default="")


class RequestVersionRow(Base):
    __tablename__ = "study_requests"
    __table_args__ = (UniqueConstraint("slug", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(ForeignKey("studies.slug"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    body: Mapped[dict] = mapped_column(JSON)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class MemberRow(Base):
    __tablename__ = "members"

    slug: Mapped[str] = mapped_column(ForeignKey("studies.slug"), primary_key=True)
    name: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)
    position: Mapped[int] = mapped_column(Integer)


class ApprovalRow(Base):
    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(ForeignKey("studies.slug"), index=True)
    steward: Mapped[str] = mapped_column(String(100))
    target_hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    comment: Mapped[str] = mapped_column(Text, default="")
    include_free_text: Mapped[list] = mapped_column(JSON, default=list)


class AmendmentRow(Base):
    __tablename__ = "amendments"

    slug: Mapped[str] = mapped_column(ForeignKey("studies.slug"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    proposer: Mapped[str] = mapped_column(String(100))
    proposed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    ends: Mapped[dt.date | None] = mapped_column(Date, nullable=True)
    add: Mapped[list] = mapped_column(JSON, default=list)
    remove: Mapped[list] = mapped_column(JSON, default=list)


class ExtractRow(Base):
    __tablename__ = "extracts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(ForeignKey("studies.slug"), index=True)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    request_hash: Mapped[str] = mapped_column(String(64))
    built_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    rows: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(20), default="current")


class ArchiveRow(Base):
    __tablename__ = "archives"
    __table_args__ = (UniqueConstraint("slug", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(ForeignKey("studies.slug"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(20), default="kept")


class AuditEntryRow(Base):
    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))
    actor: Mapped[str] = mapped_column(String(200), index=True)
    action: Mapped[str] = mapped_column(String(100), index=True)
    study: Mapped[str | None] = mapped_column(String(30), nullable=True, index=True)
    detail: Mapped[str] = mapped_column(Text)
    prev_hash: Mapped[str] = mapped_column(String(64), unique=True)
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class Store:
    """Opens the database and hands out transactions."""

    def __init__(self, url: str, *, echo: bool = False):
        self.url = url
        self.engine = make_engine(url, echo=echo)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._after_commit: list[Callable[[], None]] = []

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def on_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` after every committed transaction (audit checkpoints use this)."""
        self._after_commit.append(callback)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One unit of work: committed as a whole, or rolled back as a whole on any error."""
        with self._sessions() as session:
            with session.begin():
                yield session
        for callback in self._after_commit:
            callback()

    def migrate(self) -> None:
        """Bring the schema to the newest alembic revision (creates it on an empty database)."""
        from alembic import command

        with self._reachable():
            with self.engine.begin() as connection:
                config = alembic_config(self.url)
                config.attributes["connection"] = connection
                command.upgrade(config, "head")

    def check_schema(self) -> None:
        """Refuse to work on a database whose schema is not the current revision."""
        from alembic.runtime.migration import MigrationContext
        from alembic.script import ScriptDirectory

        head = ScriptDirectory.from_config(alembic_config(self.url)).get_current_head()
        with self._reachable(), self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        if current != head:
            raise StoreError(f"the database {safe_url(self.url)} is at schema {current or 'none'}, this version needs "
                             f"{head}; run `bubble-manager db upgrade`")

    def dispose(self) -> None:
        self.engine.dispose()

    @contextlib.contextmanager
    def _reachable(self) -> Iterator[None]:
        """Turn a database that cannot be opened into a StoreError naming it (never its password)."""
        from sqlalchemy.exc import OperationalError

        try:
            yield
        except OperationalError as error:
            reason = str(error.orig or error).strip().splitlines()[0]
            raise StoreError(f"cannot open the database {safe_url(self.url)}: {reason}; check --db "
                             "(c.BubbleManager.db_url) and that the database server runs and lets you in") from None


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def make_engine(url: str, *, echo: bool = False) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, echo=echo, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # noqa: ANN001
            dbapi_connection.isolation_level = None  # let SQLAlchemy's begin event issue BEGIN
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=FULL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin_immediate(connection):  # noqa: ANN001
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    if url.startswith("postgresql"):
        return create_engine(url, echo=echo, pool_pre_ping=True)
    raise StoreError(f"unsupported database URL {safe_url(url)}: use sqlite:///PATH or postgresql+psycopg://...")


def safe_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown by its scheme only
        return url.split(":", 1)[0] + ":..."


# --- study persistence -------------------------------------------------------------------------

def load_study(session: Session, slug: str, *, for_update: bool = False) -> Study | None:
    query = select(StudyRow).where(StudyRow.slug == slug)
    if for_update:
        query = query.with_for_update()
    row = session.scalars(query).one_or_none()
    if row is None:
        return None
    return _study_from_rows(session, row)


def list_studies(session: Session, *, states: list[str] | None = None, person: str | None = None) -> list[Study]:
    query = select(StudyRow).order_by(StudyRow.created_at, StudyRow.slug)
    if states:
        query = query.where(StudyRow.state.in_(states))
    if person:
        member_of = select(MemberRow.slug).where(MemberRow.name == person)
        query = query.where((StudyRow.requester == person) | StudyRow.slug.in_(member_of))
    rows = session.scalars(query).all()
    return _studies_from_rows(session, rows)


def save_study(session: Session, study: Study) -> None:
    """Write `study` (new or changed), its members, approvals and pending amendment."""
    row = session.get(StudyRow, study.slug)
    if row is None:
        row = StudyRow(slug=study.slug)
        session.add(row)
    row.state = study.state.value
    row.title = study.title
    row.requester = study.requester
    row.request_hash = study.request_hash
    row.starts = study.starts
    row.ends = study.ends
    row.created_at = study.created_at
    row.updated_at = study.updated_at
    row.free_text_approved = list(study.free_text_approved)
    row.retention_days = study.retention_days
    row.retention_until = study.retention_until
    row.closed_on = study.closed_on
    row.last_comment = study.last_comment
    if row.version != study.version:
        row.version = study.version
        session.flush()
        session.add(RequestVersionRow(slug=study.slug, version=study.version, sha256=study.request_hash,
                                      body=study.request.model_dump(mode="json"), author=study.requester,
                                      created_at=study.updated_at))
    session.flush()
    _replace_children(session, study)


def _replace_children(session: Session, study: Study) -> None:
    session.execute(delete(MemberRow).where(MemberRow.slug == study.slug))
    session.add_all(MemberRow(slug=study.slug, name=name, position=i) for i, name in enumerate(study.members))
    session.execute(delete(ApprovalRow).where(ApprovalRow.slug == study.slug))
    session.add_all(ApprovalRow(slug=study.slug, steward=a.steward, target_hash=a.target_hash, at=a.at,
                                comment=a.comment, include_free_text=list(a.include_free_text))
                    for a in study.approvals)
    session.execute(delete(AmendmentRow).where(AmendmentRow.slug == study.slug))
    if study.amendment is not None:
        a = study.amendment
        session.add(AmendmentRow(slug=study.slug, kind=a.kind, proposer=a.proposer, proposed_at=a.proposed_at,
                                 ends=a.ends, add=list(a.add), remove=list(a.remove)))
    session.flush()


def _studies_from_rows(session: Session, rows: list[StudyRow]) -> list[Study]:
    """Load many studies with one query per child table (not one per study)."""
    if not rows:
        return []
    slugs = [row.slug for row in rows]
    versions = {(v.slug, v.version): v for v in session.scalars(
        select(RequestVersionRow).join(StudyRow, (StudyRow.slug == RequestVersionRow.slug)
                                       & (StudyRow.version == RequestVersionRow.version))
        .where(RequestVersionRow.slug.in_(slugs)))}
    members: dict[str, list[str]] = {slug: [] for slug in slugs}
    for member in session.scalars(select(MemberRow).where(MemberRow.slug.in_(slugs)).order_by(MemberRow.position)):
        members[member.slug].append(member.name)
    approvals: dict[str, list[ApprovalRow]] = {slug: [] for slug in slugs}
    for approval in session.scalars(select(ApprovalRow).where(ApprovalRow.slug.in_(slugs)).order_by(ApprovalRow.id)):
        approvals[approval.slug].append(approval)
    amendments = {a.slug: a for a in session.scalars(select(AmendmentRow).where(AmendmentRow.slug.in_(slugs)))}
    return [_assemble(row, versions[(row.slug, row.version)], members[row.slug], approvals[row.slug],
                      amendments.get(row.slug)) for row in rows]


def _study_from_rows(session: Session, row: StudyRow) -> Study:
    return _studies_from_rows(session, [row])[0]


def _assemble(row: StudyRow, version: RequestVersionRow, members: list[str], approvals: list[ApprovalRow],
              amendment_row: AmendmentRow | None) -> Study:
    request = StudyRequest.model_validate(version.body)
    amendment = None
    if amendment_row is not None:
        amendment = Amendment(kind=amendment_row.kind, proposer=amendment_row.proposer,
                              proposed_at=amendment_row.proposed_at, ends=amendment_row.ends,
                              add=tuple(amendment_row.add), remove=tuple(amendment_row.remove))
    return Study(
        slug=row.slug, state=State(row.state), requester=row.requester, request=request, version=row.version,
        created_at=row.created_at, updated_at=row.updated_at, members=tuple(members), ends=row.ends,
        approvals=tuple(Approval(steward=a.steward, target_hash=a.target_hash, at=a.at, comment=a.comment,
                                 include_free_text=tuple(a.include_free_text)) for a in approvals),
        amendment=amendment, free_text_approved=tuple(row.free_text_approved or ()),
        retention_days=row.retention_days, retention_until=row.retention_until, closed_on=row.closed_on,
        last_comment=row.last_comment or "",
    )


def request_history(session: Session, slug: str) -> list[dict[str, Any]]:
    rows = session.scalars(select(RequestVersionRow).where(RequestVersionRow.slug == slug)
                           .order_by(RequestVersionRow.version)).all()
    return [{"version": r.version, "sha256": r.sha256, "author": r.author, "created_at": r.created_at} for r in rows]
