"""The closing path of a study, one function per step, each safe to run again after a crash.

    stop-servers -> expire -> lock-workspaces -> snapshot -> verify-snapshot -> archive
                 -> destroy-live-key -> remove-live-data

Each function acts and returns a `StepOutcome` whose `record` writes the step's mark on the
study's `lifecycle_closures` row in the same transaction as the journal's "done" and the audit
entry. A crash between the act and that transaction is safe: the next run acts again, and every
act is idempotent or first looks at the world (the snapshot step adopts an archive a killed
snapshot left behind and reuses any kept archive taken since the workspaces were locked, so a
study never gets a second final snapshot). Live data is removed only after the final snapshot
was verified, and verified again just before the removal.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from sqlalchemy import select, update

from . import clock, studies
from .archive.fsutil import fsync_dir, locked, shred_file
from .archive.keys import destroy_live_key, load_study_keys
from .archive.manifest import SignedDocumentError
from .archive.snapshot import adopt_orphans, archive_dir, remove_leftovers, snapshot, verify_envelope
from .lifecycle_hub import stop_and_wait
from .lifecycle_store import LifecycleClosureRow
from .airlock.quarantine import remove_study_quarantine
from .runtime.site_hooks import collect_workspaces, remove_volumes
from .runtime.spec import StudyPaths
from .store import ArchiveRow, ExtractRow
from .studies import SYSTEM

if TYPE_CHECKING:
    from .lifecycle_steps import StepOutcome, TickRunner

LOCKED_STUDY_MODE = 0o700   # the study folder: root only, no bubble uid can reach anything in it
LOCKED_TREE_MODE = 0o500    # workspaces/ and shared/: read-only


class SnapshotUnverified(RuntimeError):
    """The final snapshot does not verify; a new one is taken on the next tick, live data kept."""


class LiveDataAppeared(RuntimeError):
    """Live data exists that no verified snapshot covers; it is not removed."""


def _outcome(detail: dict, record=None) -> "StepOutcome":  # noqa: ANN001
    from .lifecycle_steps import StepOutcome

    return StepOutcome(detail, record)


def stop_servers(runner: "TickRunner", slug: str, row: LifecycleClosureRow) -> "StepOutcome":
    from .lifecycle_steps import StepPending

    hub = runner.require_hub()
    asked, left = stop_and_wait(hub, runner.servers(), slug, runner.settings.stop_timeout_seconds)
    runner._servers = None
    if left:
        raise StepPending(f"{left} of {asked} servers of study {slug} are still stopping; checked again next tick")
    return _outcome({"servers_stopped": asked}, runner.set_closure(slug, servers_stopped_at=clock.utcnow()))


def expire(runner: "TickRunner", slug: str, row: LifecycleClosureRow) -> "StepOutcome":
    study = runner.operations().transition(SYSTEM, slug, studies.Expire())
    return _outcome({"state": study.state.value, "ends": str(study.ends)})


def lock_workspaces(runner: "TickRunner", slug: str, row: LifecycleClosureRow) -> "StepOutcome":
    """Take the study folder from the bubbles: root-owned, root-only; workspaces and shared read-only."""
    paths = StudyPaths(runner.context.home, slug)
    locked_folders = []
    for folder, mode in ((paths.root, LOCKED_STUDY_MODE), (paths.workspaces, LOCKED_TREE_MODE),
                         (paths.shared, LOCKED_TREE_MODE)):
        if folder.is_symlink() or not folder.is_dir():
            continue
        if os.geteuid() == 0:
            os.chown(folder, 0, 0, follow_symlinks=False)
        os.chmod(folder, mode)
        locked_folders.append(folder.name)
    if paths.workspaces.is_dir() and not paths.workspaces.is_symlink():
        for workspace in paths.workspaces.iterdir():
            if workspace.is_dir() and not workspace.is_symlink():
                os.chmod(workspace, LOCKED_TREE_MODE)
    return _outcome({"locked": locked_folders}, runner.set_closure(slug, locked_at=clock.utcnow()))


def take_snapshot(runner: "TickRunner", slug: str, row: LifecycleClosureRow) -> "StepOutcome":
    context = runner.context
    paths = StudyPaths(context.home, slug)
    if not paths.root.exists():
        return _outcome({"archive": None, "reason": "no live data: the study was never activated"},
                        runner.set_closure(slug, snapshot_number=0))
    existing = final_archive(runner, slug, row)
    if existing is not None:
        return _outcome({"archive": existing.number, "sha256": existing.sha256, "reused": True},
                        runner.set_closure(slug, snapshot_number=existing.number))
    collect_workspaces(context, slug, actor=SYSTEM.name)  # Kubernetes sites: bring the claims' files here first
    result = snapshot(context, slug, actor=SYSTEM.name)
    return _outcome({"archive": result.number, "sha256": result.sha256, "size": result.size,
                     "members": result.members, "skipped": result.skipped, "reused": False},
                    runner.set_closure(slug, snapshot_number=result.number))


def final_archive(runner: "TickRunner", slug: str, row: LifecycleClosureRow) -> ArchiveRow | None:
    """A kept archive of the study taken since its workspaces were locked (adopting one a killed
    snapshot left unrecorded), not rejected by a failed verification."""
    context = runner.context
    folder = archive_dir(context.home, slug)
    if folder.is_dir():
        with locked(folder / ".lock"):
            remove_leftovers(folder)
            adopt_orphans(context, slug, folder, SYSTEM.name)
    rejected = set(row.rejected_archives or [])
    with context.store.transaction() as session:
        candidates = session.scalars(select(ArchiveRow).where(
            ArchiveRow.slug == slug, ArchiveRow.state == "kept", ArchiveRow.created_at >= row.locked_at)
            .order_by(ArchiveRow.number.desc()))
        return next((a for a in candidates if a.number not in rejected), None)


def verify_snapshot(runner: "TickRunner", slug: str, row: LifecycleClosureRow) -> "StepOutcome":
    number = row.snapshot_number
    if not number:
        return _outcome({"archive": None}, runner.set_closure(slug, verified_at=clock.utcnow()))
    document = check_archive(runner, slug, number)
    return _outcome({"archive": number, "sha256": document["sha256"], "size": document["size"]},
                    runner.set_closure(slug, verified_at=clock.utcnow()))


def check_archive(runner: "TickRunner", slug: str, number: int) -> dict:
    """Verify archive `number` (signed envelope, sha256, size); on failure reject it for a new snapshot."""
    context = runner.context
    with context.store.transaction() as session:
        archive = session.scalar(select(ArchiveRow).where(ArchiveRow.slug == slug, ArchiveRow.number == number))
    try:
        if archive is None:
            raise FileNotFoundError(f"archive {number} is not in the store")
        document = verify_envelope(context.verifier(), Path(archive.path))
        if document.get("study") != slug or document.get("number") != number:
            raise SignedDocumentError(f"the envelope of archive {number} names study {document.get('study')} "
                                      f"number {document.get('number')}")
    except (SignedDocumentError, OSError) as error:
        with context.store.transaction() as session:
            closure = session.get(LifecycleClosureRow, slug)
            closure.rejected_archives = [*(closure.rejected_archives or []), number]
            closure.snapshot_number = None
            closure.verified_at = None
        raise SnapshotUnverified(f"the final snapshot {number} of study {slug} does not verify ({error}); live "
                                 "data is kept and a new snapshot is taken on the next tick") from None
    return document


def archive(runner: "TickRunner", slug: str, row: LifecycleClosureRow) -> "StepOutcome":
    study = runner.operations().transition(SYSTEM, slug, studies.Archive())
    return _outcome({"state": study.state.value, "retention_until": str(study.retention_until)})


def destroy_key(runner: "TickRunner", slug: str, row: LifecycleClosureRow) -> "StepOutcome":
    if load_study_keys(runner.context.home, slug) is None:
        detail = {"live_key": "none: the study never had keys"}
    else:
        detail = {"live_key": "destroyed" if destroy_live_key(runner.context, slug, actor=SYSTEM.name)
                  else "already destroyed"}
    return _outcome(detail, runner.set_closure(slug, key_destroyed_at=clock.utcnow()))


def remove_live_data(runner: "TickRunner", slug: str, row: LifecycleClosureRow) -> "StepOutcome":
    """Remove the extract, vault, workspaces and shared folder, the airlock's quarantine (and on
    Kubernetes the study's claims), once the final snapshot verifies."""
    context = runner.context
    paths = StudyPaths(context.home, slug)
    if row.verified_at is None:
        raise SnapshotUnverified(f"study {slug} has no verified final snapshot; live data is kept")
    if row.snapshot_number:
        check_archive(runner, slug, row.snapshot_number)
    elif paths.root.exists():
        with context.store.transaction() as session:
            closure = session.get(LifecycleClosureRow, slug)
            closure.snapshot_number = None
            closure.verified_at = None
        raise LiveDataAppeared(f"study {slug} had no live data at its snapshot but {paths.root} exists now; it is "
                               "kept and snapshotted on the next tick")
    # Kubernetes sites: the study's claims too (first: a failure leaves everything for the next tick)
    volumes = remove_volumes(context, slug, archive_number=row.snapshot_number or None, actor=SYSTEM.name)
    vault = shred_file(paths.vault) if paths.vault.exists() else False
    quarantine = remove_study_quarantine(context.home, slug)
    removed = paths.root.exists()
    if removed:
        shutil.rmtree(paths.root)  # never follows links
        fsync_dir(paths.root.parent)
    with context.store.transaction() as session:
        extracts = session.execute(update(ExtractRow).where(ExtractRow.slug == slug, ExtractRow.state == "current")
                                   .values(state="removed")).rowcount
    now = clock.utcnow()
    detail = {"study_folder": removed, "vault_shredded": vault, "quarantine": quarantine, "extracts": extracts,
              "archive": row.snapshot_number or None}
    if volumes is not None:
        detail.update(claims_removed=len(volumes.removed), claims_kept=len(volumes.kept))
    return _outcome(detail, runner.set_closure(slug, live_removed_at=now, finished_at=now))


CLOSURE_ACTIONS: dict[str, Callable[["TickRunner", str, LifecycleClosureRow], "StepOutcome"]] = {
    "stop-servers": stop_servers,
    "expire": expire,
    "lock-workspaces": lock_workspaces,
    "snapshot": take_snapshot,
    "verify-snapshot": verify_snapshot,
    "archive": archive,
    "destroy-live-key": destroy_key,
    "remove-live-data": remove_live_data,
}
