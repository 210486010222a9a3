"""The airlock's tables (migration 0004): requests, their files, and each steward's review."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from ..store import Base, UTCDateTime


class AirlockRequestRow(Base):
    """An output request (files from a member's outbox) or an import request (an upload)."""

    __tablename__ = "airlock_requests"
    __table_args__ = (UniqueConstraint("slug", "kind", "requester", "source", "source_sha256"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    slug: Mapped[str] = mapped_column(ForeignKey("studies.slug"), index=True)
    kind: Mapped[str] = mapped_column(String(10))  # "output" | "import"
    requester: Mapped[str] = mapped_column(String(100), index=True)
    state: Mapped[str] = mapped_column(String(20), index=True)  # "review" | "decided"
    justification: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(120))  # outbox folder or uploaded file name
    source_sha256: Mapped[str] = mapped_column(String(64))  # of request.json, or of the uploaded file
    verdict: Mapped[str] = mapped_column(String(20))  # the automatic checks, over all files
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AirlockFileRow(Base):
    __tablename__ = "airlock_files"
    __table_args__ = (UniqueConstraint("request_id", "path"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("airlock_requests.id"), index=True)
    path: Mapped[str] = mapped_column(Text)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(20))
    verdict: Mapped[str] = mapped_column(String(20))
    report: Mapped[dict] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(20))  # "pending" | "approved" | "rejected"
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    downloaded_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    delivered_to: Mapped[str | None] = mapped_column(Text, nullable=True)  # imports: path in shared/


class AirlockReviewRow(Base):
    __tablename__ = "airlock_reviews"
    __table_args__ = (UniqueConstraint("file_id", "reviewer"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("airlock_files.id"), index=True)
    reviewer: Mapped[str] = mapped_column(String(100))
    decision: Mapped[str] = mapped_column(String(10))  # "approve" | "reject"
    comment: Mapped[str] = mapped_column(Text)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
