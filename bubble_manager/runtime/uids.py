"""Host ids of local bubbles: one uid per (study, member), one gid per study, recorded in the store.

Hub user names are e-mail-like and have no Unix account: the spawner hands each member of each
study a uid of its own from `LocalBubbles.uid_min..uid_max`, so the same person's bubbles in two
studies cannot read each other's workspaces, and each study a gid its members share for the
study's `shared/` folder. Ids are allocated once and never reused (files and archives keep
them); ids that already name a host account or group are skipped.
"""

from __future__ import annotations

import datetime as dt
import grp
import pwd
from dataclasses import dataclass

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from .. import clock
from ..store import Base, Store, UTCDateTime

MEMBER = "member"
STUDY_GROUP = "study-group"


class BubbleUidRow(Base):
    """One allocated host id: a member's uid in a study (kind 'member') or a study's gid ('study-group')."""

    __tablename__ = "bubble_uids"
    __table_args__ = (UniqueConstraint("slug", "kind", "member"),)

    uid: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    slug: Mapped[str] = mapped_column(ForeignKey("studies.slug"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    member: Mapped[str] = mapped_column(String(100), default="")
    allocated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())


class IdRangeExhausted(RuntimeError):
    """No free id is left in the configured range."""


@dataclass(frozen=True)
class BubbleIds:
    uid: int
    gid: int


def _host_id_taken(value: int) -> bool:
    for lookup in (pwd.getpwuid, grp.getgrgid):
        try:
            lookup(value)
            return True
        except KeyError:
            continue
    return False


def _existing(session: Session, slug: str, kind: str, member: str) -> int | None:
    return session.scalars(select(BubbleUidRow.uid).where(BubbleUidRow.slug == slug, BubbleUidRow.kind == kind,
                                                          BubbleUidRow.member == member)).one_or_none()


def _next_free(session: Session, low: int, high: int) -> int:
    taken = set(session.scalars(select(BubbleUidRow.uid).where(BubbleUidRow.uid >= low, BubbleUidRow.uid <= high)))
    top = max(taken) + 1 if taken else low
    for candidate in [*range(top, high + 1), *range(low, min(top, high + 1))]:
        if candidate not in taken and not _host_id_taken(candidate):
            return candidate
    raise IdRangeExhausted(f"no free bubble uid left in {low}-{high}; widen c.LocalBubbles.uid_max")


def _allocate_one(session: Session, audit, slug: str, kind: str, member: str, low: int, high: int) -> int:  # noqa: ANN001
    found = _existing(session, slug, kind, member)
    if found is not None:
        return found
    value = _next_free(session, low, high)
    session.add(BubbleUidRow(uid=value, slug=slug, kind=kind, member=member, allocated_at=clock.utcnow()))
    session.flush()
    detail = {"kind": kind, "id": value} | ({"member": member} if member else {})
    audit.append(session, actor="bubble-manager", action="bubble.uid-allocated", study=slug, detail=detail)
    return value


def allocate(store: Store, audit, slug: str, member: str, low: int, high: int, *, attempts: int = 5) -> BubbleIds:  # noqa: ANN001
    """The uid of `member` in study `slug` and the study's gid, allocating (and auditing) them once."""
    last_error: Exception | None = None
    for _ in range(attempts):
        try:
            with store.transaction() as session:
                gid = _allocate_one(session, audit, slug, STUDY_GROUP, "", low, high)
                uid = _allocate_one(session, audit, slug, MEMBER, member, low, high)
                return BubbleIds(uid=uid, gid=gid)
        except IntegrityError as error:  # another writer took the same id first: try again
            last_error = error
    raise RuntimeError(f"could not allocate a bubble uid for {member} in {slug}: {last_error}")


def lookup(store: Store, slug: str, member: str) -> BubbleIds | None:
    """The ids already allocated to `member` in `slug`, or None."""
    with store.transaction() as session:
        gid = _existing(session, slug, STUDY_GROUP, "")
        uid = _existing(session, slug, MEMBER, member)
    return BubbleIds(uid, gid) if uid is not None and gid is not None else None


def study_ids(store: Store, slug: str) -> dict[str, int]:
    """Every id of a study: member name to uid, and '' to the study's gid."""
    with store.transaction() as session:
        rows = session.scalars(select(BubbleUidRow).where(BubbleUidRow.slug == slug)).all()
    return {row.member: row.uid for row in rows}
