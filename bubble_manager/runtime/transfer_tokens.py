"""One-time transfer tokens: how a study Job in the bubbles namespace proves it may fetch one extract.

A Job is not a hub user and gets no hub token. The hub makes a random secret for it alone
(`issue`), puts it in the Job's short-lived Kubernetes secret, and keeps only its sha256 here, with
the study it is bound to, what it may do (`purpose`), the manifest version it was issued for, an
expiry a few minutes away and whether it was used. The service's transfer endpoint (`redeem`)
accepts it once: a second use, an expired token, or one presented for another study or purpose is
refused, and a misused token is burnt so that its rightful Job fails visibly too. Every issue, use,
refusal and revocation is in the audit log (token ids only, never the secret).

The table is part of the store's schema (migration 0005).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Integer, String, select
from sqlalchemy.orm import Mapped, mapped_column

from .. import clock
from ..store import Base, UTCDateTime

TOKEN_PREFIX = "bmxfer_"
TOKEN_SHAPE = re.compile(r"^bmxfer_[A-Za-z0-9_-]{43}$")
EXTRACT_DOWNLOAD = "extract-download"
WORKSPACE_UPLOAD = "workspace-upload"
PURPOSES = (EXTRACT_DOWNLOAD, WORKSPACE_UPLOAD)
MAX_TTL_SECONDS = 24 * 3600
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class TransferTokenRow(Base):
    __tablename__ = "transfer_tokens"

    token_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    study: Mapped[str] = mapped_column(String(30), index=True)
    purpose: Mapped[str] = mapped_column(String(30))
    manifest_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    job: Mapped[str] = mapped_column(String(63))
    issued_by: Mapped[str] = mapped_column(String(100))
    issued_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    outcome: Mapped[str | None] = mapped_column(String(30), nullable=True)
    uses: Mapped[int] = mapped_column(Integer, default=0)


class TransferRefused(PermissionError):
    """The presented token does not allow this transfer; `reason` is the audited rule."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class IssuedToken:
    """What the Job's secret carries (`secret`) and what the hub may log (`token_id`)."""

    token_id: str
    secret: str
    study: str
    purpose: str
    expires_at: dt.datetime

    def __repr__(self) -> str:  # never print the secret by accident
        return f"IssuedToken(token_id={self.token_id!r}, study={self.study!r}, purpose={self.purpose!r})"


@dataclass(frozen=True)
class TransferGrant:
    """A redeemed token: what its bearer may now fetch."""

    token_id: str
    study: str
    purpose: str
    manifest_sha256: str | None
    job: str


def token_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def issue(context: Any, *, study: str, purpose: str, job: str, actor: str, ttl_seconds: int,
          manifest_sha256: str | None = None) -> IssuedToken:
    """A new random token for `job`, bound to `study` and `purpose`; only its sha256 is stored."""
    if purpose not in PURPOSES:
        raise ValueError(f"transfer purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
    if not 0 < ttl_seconds <= MAX_TTL_SECONDS:
        raise ValueError(f"a transfer token lives between 1 second and {MAX_TTL_SECONDS} seconds, not {ttl_seconds}; "
                         "set c.KubeStudyJobs.token_ttl_seconds accordingly")
    if manifest_sha256 is not None and not SHA256_HEX.match(manifest_sha256):
        raise ValueError(f"manifest sha256 {manifest_sha256!r} is not 64 lowercase hex digits")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token_id = secrets.token_hex(8)
    now = clock.utcnow()
    expires_at = now + dt.timedelta(seconds=ttl_seconds)
    with context.store.transaction() as session:
        session.add(TransferTokenRow(token_id=token_id, sha256=token_digest(secret), study=study, purpose=purpose,
                                     manifest_sha256=manifest_sha256, job=job, issued_by=actor, issued_at=now,
                                     expires_at=expires_at, uses=0))
        context.audit.append(session, actor=actor, action="transfer.token-issued", study=study, detail={
            "token": token_id, "purpose": purpose, "job": job, "expires_at": clock.isoformat(expires_at),
            **({"manifest_sha256": manifest_sha256} if manifest_sha256 else {})})
    return IssuedToken(token_id, secret, study, purpose, expires_at)


def redeem(context: Any, presented: str | None, *, study: str, purpose: str, client: str = "") -> TransferGrant:
    """Accept `presented` once for (`study`, `purpose`), or raise TransferRefused (audited either way)."""
    where = {"study": study, "purpose": purpose, **({"client": client} if client else {})}
    if not presented or not TOKEN_SHAPE.match(presented):
        context.audit.record(actor="anonymous", action="transfer.refused", study=None,
                             detail={**where, "reason": "malformed"})
        raise TransferRefused("malformed", "a transfer needs a one-time transfer token (Authorization: Bearer "
                                           "bmxfer_...); hub tokens and cookies are not accepted here")
    now = clock.utcnow()
    refusal: TransferRefused | None = None
    with context.store.transaction() as session:
        row = session.scalars(select(TransferTokenRow).where(TransferTokenRow.sha256 == token_digest(presented))
                              .with_for_update()).one_or_none()
        if row is None:
            refusal = TransferRefused("unknown", "this transfer token is not one this hub issued")
            context.audit.append(session, actor="anonymous", action="transfer.refused", study=None,
                                 detail={**where, "reason": "unknown"})
        else:
            refusal = _check(row, study=study, purpose=purpose, now=now)
            row.uses += 1
            if row.used_at is None:
                row.used_at = now
                row.outcome = "redeemed" if refusal is None else f"burnt:{refusal.reason}"
            detail = {**where, "token": row.token_id, "job": row.job}
            if refusal is None:
                context.audit.append(session, actor=f"job:{row.job}", action="transfer.redeemed", study=row.study,
                                     detail={**detail, "manifest_sha256": row.manifest_sha256})
            else:
                context.audit.append(session, actor=f"job:{row.job}", action="transfer.refused", study=row.study,
                                     detail={**detail, "reason": refusal.reason})
            grant = TransferGrant(row.token_id, row.study, row.purpose, row.manifest_sha256, row.job)
    if refusal is not None:
        raise refusal
    return grant


def _check(row: TransferTokenRow, *, study: str, purpose: str, now: dt.datetime) -> TransferRefused | None:
    if row.used_at is not None:
        return TransferRefused("reused", f"transfer token {row.token_id} was already used ({row.outcome}); "
                                         "each Job gets a token for one transfer only")
    if row.expires_at <= now:
        return TransferRefused("expired", f"transfer token {row.token_id} expired at "
                                          f"{clock.isoformat(row.expires_at)}; run the Job again")
    if row.study != study:
        return TransferRefused("other-study", f"transfer token {row.token_id} is not for this study")
    if row.purpose != purpose:
        return TransferRefused("other-purpose", f"transfer token {row.token_id} does not allow {purpose}")
    return None


def complete(context: Any, token_id: str, *, actor: str, action: str, detail: dict[str, Any]) -> None:
    """Record that the transfer a redeemed token allowed went through to its end (audited with it)."""
    with context.store.transaction() as session:
        row = session.get(TransferTokenRow, token_id, with_for_update=True)
        if row is None or row.outcome != "redeemed":
            raise ValueError(f"transfer token {token_id} is not a redeemed one; nothing to complete")
        row.outcome = "completed"
        context.audit.append(session, actor=actor, action=action, study=row.study,
                             detail={"token": token_id, "job": row.job, **detail})


def revoke_unused(context: Any, token_id: str, *, actor: str, reason: str) -> bool:
    """Burn a token its Job never used (the Job failed or timed out); True if there was one to burn."""
    with context.store.transaction() as session:
        row = session.get(TransferTokenRow, token_id, with_for_update=True)
        if row is None or row.used_at is not None:
            return False
        row.used_at = clock.utcnow()
        row.outcome = "revoked"
        context.audit.append(session, actor=actor, action="transfer.token-revoked", study=row.study,
                             detail={"token": token_id, "job": row.job, "reason": reason})
    return True


def token_state(context: Any, token_id: str) -> dict[str, Any] | None:
    """The stored facts about one token (never the secret, which is not stored)."""
    with context.store.transaction() as session:
        row = session.get(TransferTokenRow, token_id)
        if row is None:
            return None
        return {"token": row.token_id, "study": row.study, "purpose": row.purpose, "job": row.job,
                "manifest_sha256": row.manifest_sha256, "issued_at": row.issued_at, "expires_at": row.expires_at,
                "used_at": row.used_at, "outcome": row.outcome, "uses": row.uses}
