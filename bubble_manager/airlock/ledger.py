"""The per-study disclosure ledger: every file decided by the airlock, its hash, checks, reviewers.

Written as one signed JSON document, `studies/<slug>/disclosure-ledger.json` (root-only, never
mounted in a bubble), rebuilt from the store after each release, rejection, download or import
delivery, so it is always whole and always agrees with the store; snapshots put it in the study's
archive. `verify_ledger` checks the hub's signature.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import select

from .. import clock
from ..archive.fsutil import write_atomic
from ..archive.manifest import SignedDocumentError, sign, to_bytes, verify
from ..runtime.spec import StudyPaths
from .models import AirlockFileRow, AirlockRequestRow, AirlockReviewRow

LEDGER_NAME = "disclosure-ledger.json"
LEDGER_FORMAT = "bubble-manager-disclosure-ledger/1"


def ledger_path(home: Path, slug: str) -> Path:
    return StudyPaths(home, slug).root / LEDGER_NAME


def ledger_entries(session, slug: str) -> list[dict[str, Any]]:  # noqa: ANN001 - a SQLAlchemy session
    rows = session.execute(
        select(AirlockRequestRow, AirlockFileRow).join(AirlockFileRow, AirlockFileRow.request_id == AirlockRequestRow.id)
        .where(AirlockRequestRow.slug == slug, AirlockFileRow.state != "pending")
        .order_by(AirlockFileRow.decided_at, AirlockFileRow.id)).all()
    file_ids = [file.id for _, file in rows]
    reviews: dict[int, list[dict[str, Any]]] = {i: [] for i in file_ids}
    if file_ids:
        for review in session.scalars(select(AirlockReviewRow).where(AirlockReviewRow.file_id.in_(file_ids))
                                      .order_by(AirlockReviewRow.at, AirlockReviewRow.id)):
            reviews[review.file_id].append({"reviewer": review.reviewer, "decision": review.decision,
                                            "comment": review.comment, "at": clock.isoformat(review.at)})
    entries = []
    for request, file in rows:
        report = file.report or {}
        entries.append({
            "request": request.id, "kind": request.kind, "requester": request.requester,
            "justification": request.justification, "file_id": file.id, "path": file.path, "size": file.size,
            "sha256": file.sha256, "decision": file.state, "decided_at": clock.isoformat(file.decided_at)
            if file.decided_at else None,
            "checks": {"category": file.category, "verdict": file.verdict,
                       "flags": {f.get("check"): f.get("count") for f in report.get("flags", [])},
                       "acro": (report.get("acro") or {}).get("status")},
            "reviewers": reviews[file.id],
            "downloaded_at": clock.isoformat(file.downloaded_at) if file.downloaded_at else None,
            "delivered_to": file.delivered_to,
        })
    return entries


def write_ledger(context, slug: str) -> Path | None:  # noqa: ANN001 - an operations Context
    """Rebuild the study's ledger from the store (signed); None when the study has no folder."""
    with context.store.transaction() as session:
        entries = ledger_entries(session, slug)
    path = ledger_path(context.home, slug)
    if not path.parent.is_dir():
        return None
    document = {"format": LEDGER_FORMAT, "study": slug, "generated_at": clock.isoformat(clock.utcnow()),
                "released": sum(1 for e in entries if e["decision"] == "approved"), "entries": entries}
    write_atomic(path, to_bytes(sign(document, context.signer)), 0o600)
    return path


def verify_ledger(path: Path, verifier) -> dict[str, Any]:  # noqa: ANN001 - a signing.Verifier
    try:
        document = json.loads(path.read_bytes().decode("utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SignedDocumentError(f"the ledger {path} cannot be read ({error})") from None
    return verify(document, verifier, LEDGER_FORMAT, f"the disclosure ledger {path}")
