"""Purge a study after its retention period: crypto-shredding and a signed deletion certificate.

The study moves to `purged` through the lifecycle (`studies.Purge`, which refuses before the
retention date), then its key files are shredded (the custodians' encrypted shares, the live key
if still there), its vault and any files left under `studies/<slug>/` are removed, and every
archive file and envelope is deleted. Without the shares no quorum can rebuild the archive key,
so any copy of an archive left elsewhere is unreadable, once the key store's own backups have
rotated (docs/archives.md). A deletion certificate signed with the hub key is written to
`archives/<slug>/deletion-certificate.json` and kept. Re-running a purge that was interrupted
finishes the destruction.
"""

from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from .. import clock, studies
from ..operations import StudyOperations
from ..runtime.spec import StudyPaths
from ..store import ArchiveRow, load_study
from ..studies import Actor, State
from .fsutil import fsync_dir, locked, private_dir, shred_file, write_atomic
from .keys import destroy_study_keys
from .manifest import build_certificate, sign, to_bytes
from .snapshot import archive_dir

CERTIFICATE_NAME = "deletion-certificate.json"


class PurgeError(RuntimeError):
    """The study cannot be purged (unknown, or not archived yet)."""


@dataclass
class PurgeResult:
    study: str
    certificate: Path
    archives: list[dict]
    key_files: int
    vault: bool
    study_files: bool

    def as_dict(self) -> dict[str, object]:
        return {"study": self.study, "certificate": str(self.certificate), "archives": self.archives,
                "key_files_destroyed": self.key_files, "vault_destroyed": self.vault,
                "study_folder_removed": self.study_files}


def purge(context, slug: str, *, actor: str, via: dict | None = None) -> PurgeResult:
    """Purge `slug` (archived, past retention); audited; returns the certificate written."""
    with context.store.transaction() as session:
        study = load_study(session, slug)
    if study is None:
        raise PurgeError(f"no study {slug!r}; `bubble-manager studies list` shows them")
    if study.state is State.archived:
        StudyOperations(context, via=via).transition(Actor(actor, frozenset({"admin"})), slug, studies.Purge())
    elif study.state is not State.purged:
        raise PurgeError(f"study {slug} is {study.state.value}: only archived studies are purged, after their "
                         "retention date")
    folder = archive_dir(context.home, slug)
    private_dir(folder.parent)
    private_dir(folder)
    with locked(folder / ".lock"):
        return _destroy(context, slug, folder, actor)


def _destroy(context, slug: str, folder: Path, actor: str) -> PurgeResult:
    paths = StudyPaths(context.home, slug)
    with context.store.transaction() as session:
        rows = list(session.scalars(select(ArchiveRow).where(ArchiveRow.slug == slug).order_by(ArchiveRow.number)))
    archives = [{"number": r.number, "sha256": r.sha256, "size": r.size,
                 "created_at": clock.isoformat(r.created_at)} for r in rows]
    key_files = len(destroy_study_keys(context, slug))
    vault = shred_file(paths.vault)
    study_files = paths.root.exists()
    if study_files:
        shutil.rmtree(paths.root)  # never follows links
        fsync_dir(paths.root.parent)
    for path in sorted(folder.iterdir()):
        if not path.name.startswith(CERTIFICATE_NAME) and path.name != ".lock":
            path.unlink()
    fsync_dir(folder)
    certificate_path = folder / CERTIFICATE_NAME
    previous = certificate_path.read_bytes() if certificate_path.exists() else None
    destroyed = {"key_files": key_files, "vault": vault, "study_folder": study_files,
                 "archive_files": [a["number"] for a in archives]}
    certificate = sign(build_certificate(study=slug, purged_at=clock.isoformat(clock.utcnow()), purged_by=actor,
                                         archives=archives, destroyed=destroyed), context.signer)
    data = to_bytes(certificate)
    with context.store.transaction() as session:
        for row in session.scalars(select(ArchiveRow).where(ArchiveRow.slug == slug)):
            row.state = "purged"
        context.audit.append(session, actor=actor, action="archive.purged", study=slug, detail={
            "archives": [{"number": a["number"], "sha256": a["sha256"]} for a in archives],
            "key_files": key_files, "vault": vault, "study_folder": study_files,
            "certificate_sha256": hashlib.sha256(data).hexdigest(), "again": previous is not None})
        if previous is not None:
            # An earlier, interrupted purge left a certificate: keep it beside the new one.
            write_atomic(folder / f"{CERTIFICATE_NAME}.{hashlib.sha256(previous).hexdigest()[:12]}", previous, 0o644)
        write_atomic(certificate_path, data, 0o644)
    return PurgeResult(study=slug, certificate=certificate_path, archives=archives, key_files=key_files,
                       vault=vault, study_files=study_files)
