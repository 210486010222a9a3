"""Build a study's extract: cohort, minimise, pseudonymise, shift dates, generalise, sign.

One build at a time per study (a lock file in the study folder). The extract is written under a
temporary name in the study folder, with DuckDB's spill files in a private folder beside it;
then it is checkpointed, fsynced, made read-only (0444), hashed, and renamed into place after
the vault; the signed manifest is written last and is the commit point: an extract that does
not match its manifest is not an extract. Whatever a failed or killed build left behind (the
temporary file, the spill folder, an unmatched extract) is removed by the next run, which says
so in the audit log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import secrets
import shutil
import time
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
from sqlalchemy import select, update
from tqdm import tqdm

from .. import clock
from ..archive.fsutil import fsync_dir, write_atomic
from ..archive.keys import KeyStoreError, ensure_study_keys, load_live_identity, study_recipients
from ..operations import Context, StudyOperations
from ..runtime.spec import StudyPaths
from ..store import ExtractRow
from ..studies import Actor, State, Study
from ..study_request import canonical_json
from .cohort import CohortRefused, ensure_cohort_database, exclusive_lock, fsync_path, start_cohort, \
    warehouse_fingerprint
from .manifest import Verification, build_manifest, manifest_bytes, sha256_file, sign_manifest, verify_extract
from .pipeline import RecordKeyOutOfRange, attach_warehouse, build_connection, register_person_map, resolve_cohort, write_tables
from .plan import ExtractPlan, PlanError, make_plan
from .pseudonyms import new_date_offsets, new_pseudonyms
from .risk import risk_report
from .settings import ExtractSettings, cohort_database_folder, extract_settings
from .vault import Vault, VaultError, commit_vault, read_vault, stage_vault

BUILD_STATES = {State.approved, State.active}
LEFTOVER_PATTERNS = (".extract.duckdb.*", ".manifest.json.*.tmp", ".vault.age.*.tmp")


class ExtractError(ValueError):
    """The extract was not built. `reason` is a stable code; the message says what to do;
    `detail` (which may quote data) is for stewards only and never logged. A ValueError, so the
    CLI prints it as `error: ...` like any other refused input."""

    def __init__(self, reason: str, message: str, detail: str | None = None):
        self.reason = reason
        self.detail = detail
        super().__init__(message)


@dataclass(frozen=True)
class BuildResult:
    slug: str
    extract: Path
    manifest: Path
    sha256: str
    request_hash: str
    rows: dict[str, int]
    persons: int
    risk: dict[str, Any] | None
    seconds: float
    leftovers_removed: tuple[str, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return {"study": self.slug, "extract": str(self.extract), "manifest": str(self.manifest),
                "sha256": self.sha256, "request_hash": self.request_hash, "rows": self.rows,
                "persons": self.persons, "seconds": round(self.seconds, 3),
                "leftovers_removed": list(self.leftovers_removed)}


def build_extract(context: Context, actor: Actor, slug: str, *, progress: bool = False) -> BuildResult:
    """Build (or rebuild) the extract of an approved or active study; audited either way."""
    study = StudyOperations(context).get(slug)
    _require_builder(context, actor, study)
    settings = extract_settings(context)
    try:
        plan = make_plan(study, context.catalog, date_shift_days=settings.date_shift_days)
    except PlanError as error:
        _audit_failure(context, actor, slug, "plan", "plan-refused")
        raise ExtractError("plan", str(error)) from None
    if context.signer is None:
        raise ExtractError("no-signer", "the hub signing key is needed to sign the manifest; run "
                           "`bubble-manager keys init` first")
    paths = StudyPaths(context.home, slug)
    paths.root.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(paths.root / ".build.lock"), ThreadPoolExecutor(2, thread_name_prefix="extract") as background:
        removed = remove_temporary_leftovers(paths)
        # hashing the previous extract takes a while: it runs beside the cohort query
        unmatched = background.submit(remove_unmatched_extract, paths, context.verifier())
        try:
            result = _build_locked(context, actor, study, plan, settings, paths, progress, background, unmatched)
        except CohortRefused as refused:
            _audit_failure(context, actor, slug, "cohort", refused.reason)
            raise ExtractError(f"cohort-{refused.reason}", f"cohort query refused: {refused}",
                               detail=refused.detail) from None
        except ExtractError as error:
            _audit_failure(context, actor, slug, "build", error.reason)
            raise
        except (KeyStoreError, VaultError) as error:
            _audit_failure(context, actor, slug, "keys", type(error).__name__)
            raise ExtractError("keys", f"the study's keys or vault are not usable: {error}") from None
        except BaseException as error:
            _audit_failure(context, actor, slug, "build", type(error).__name__)
            raise
        finally:
            removed = sorted(removed + _names_removed(unmatched))
            if removed:
                context.audit.record(actor=actor.name, action="extract.leftovers-removed", study=slug,
                                     detail={"files": removed})
    return dataclasses.replace(result, leftovers_removed=tuple(removed))


def _names_removed(unmatched: Future) -> list[str]:
    """What the stale-extract check removed; its failure, if any, already failed the build."""
    try:
        return unmatched.result()
    except Exception:  # noqa: BLE001
        return []


def _require_builder(context: Context, actor: Actor, study: Study) -> None:
    if not actor.has("admin"):
        context.audit.record(actor=actor.name, action="extract.refused", study=study.slug,
                             detail={"attempted": "build", "rule": "admin-only"})
        raise PermissionError(f"{actor.name} may not build extracts: it takes the admin role")
    if study.state not in BUILD_STATES:
        context.audit.record(actor=actor.name, action="extract.refused", study=study.slug,
                             detail={"attempted": "build", "rule": "state", "state": study.state.value})
        raise ExtractError("state", f"study {study.slug} is {study.state.value}; only approved or active studies get "
                           "an extract")


def _audit_failure(context: Context, actor: Actor, slug: str, stage: str, reason: str) -> None:
    context.audit.record(actor=actor.name, action="extract.failed", study=slug,
                         detail={"stage": stage, "reason": reason})


def _build_locked(context: Context, actor: Actor, study: Study, plan: ExtractPlan, settings: ExtractSettings,
                  paths: StudyPaths, progress: bool, background: Executor, unmatched: Future) -> BuildResult:
    bar = tqdm(total=2 + len(plan.tables), desc=f"extract {study.slug}", unit="step", disable=not progress,
               leave=False)

    def step(label: str) -> None:
        bar.set_postfix_str(label)
        bar.update(1)

    try:
        return _build_steps(context, actor, study, plan, settings, paths, step, background, unmatched)
    finally:
        bar.close()


def _build_steps(context: Context, actor: Actor, study: Study, plan: ExtractPlan, settings: ExtractSettings,
                 paths: StudyPaths, step: Callable[[str], None], background: Executor, unmatched: Future) -> BuildResult:
    started = time.perf_counter()
    catalog = context.catalog
    warehouse = Path(context.settings.warehouse_path)
    fingerprint = warehouse_fingerprint(warehouse, catalog)
    database = ensure_cohort_database(warehouse, catalog, cohort_database_folder(context, settings))
    running = start_cohort(database, plan.cohort_sql, catalog.cohort_tables(), timeout=settings.cohort_timeout_seconds,
                           memory_limit=settings.cohort_memory_limit, threads=settings.cohort_threads)
    token = secrets.token_hex(6)
    temporary = paths.root / f".extract.duckdb.{token}.tmp"
    spill = paths.root / f".spill-{token}"
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(_remove_build_files, temporary, spill)
        try:  # keys, vault and the output database while the child starts up and runs the query
            ensure_study_keys(context, study.slug, actor=actor.name)
            recipients = study_recipients(context, study.slug)
            previous = None
            if paths.vault.exists():
                identity = load_live_identity(context, study.slug, actor=actor.name, purpose="rebuild")
                previous = read_vault(paths.vault, study.slug, [identity])
            spill.mkdir(mode=0o700)
            connection = cleanup.enter_context(build_connection(
                str(temporary), memory_limit=settings.build_memory_limit, threads=settings.build_threads, spill=spill))
            attach_warehouse(connection, warehouse, catalog)
        except BaseException:
            running.cancel()
            raise
        selected = running.result()
        step("cohort query")
        persons = resolve_cohort(connection, plan, selected)
        if len(persons) == 0:
            raise ExtractError("empty-cohort", "the cohort query selects nobody the warehouse knows (after "
                               "removing opted-out persons); amend the request's cohort")
        pseudonyms, offsets = assign_pseudonyms(persons, previous, settings.date_shift_days)
        vault = Vault(study.slug, persons, pseudonyms, offsets)
        staged_vault = background.submit(stage_vault, paths.vault, vault, recipients)  # beside the table writes
        cleanup.callback(_discard_staged_vault, staged_vault)
        register_person_map(connection, persons, pseudonyms, offsets)
        try:
            rows = write_tables(connection, plan, step)
        except RecordKeyOutOfRange as error:
            raise ExtractError("catalog", str(error)) from None
        connection.execute("DETACH wh")
        connection.execute("CHECKPOINT")
        hashed = background.submit(_fingerprint, temporary)  # the risk report only reads: they run side by side
        risk = risk_report(connection, plan, len(persons), k=settings.k_anonymity, rarest=settings.rarest_codes)
        connection.close()
        os.chmod(temporary, 0o444)
        fsync_path(temporary)
        sha256, size, written = hashed.result()
        if _file_state(temporary) != written:  # DuckDB wrote again on close: hash what is there now
            sha256, size, _ = _fingerprint(temporary)
        unmatched.result()  # a stale extract is gone before the new one takes its name
        commit_vault(staged_vault.result(), paths.vault)
        os.replace(temporary, paths.extract)
        fsync_dir(paths.root)
        body = build_manifest(plan=plan, request_version=study.version, warehouse_fingerprint=fingerprint, rows=rows,
                              persons=len(persons), risk=risk, sha256=sha256, size=size,
                              created_at=clock.isoformat(clock.utcnow()), built_by=actor.name,
                              recipients=[r.to_string() for r in recipients])
        write_atomic(paths.manifest, manifest_bytes(sign_manifest(body, context.signer)), 0o644)
        step("signed")
    seconds = time.perf_counter() - started
    _record(context, actor, study, paths, sha256, rows, seconds, rebuild=previous is not None)
    return BuildResult(study.slug, paths.extract, paths.manifest, sha256, plan.request_hash, rows, len(persons),
                       risk, seconds)


def _file_state(path: Path) -> tuple[int, int, int]:
    status = path.stat()
    return status.st_size, status.st_mtime_ns, status.st_ino


def _fingerprint(path: Path) -> tuple[str, int, tuple[int, int, int]]:
    """sha256 and size of the file, and the state (size, mtime, inode) it had when hashing began."""
    state = _file_state(path)
    return sha256_file(path), state[0], state


def _remove_build_files(temporary: Path, spill: Path) -> None:
    for leftover in (temporary, Path(f"{temporary}.wal")):
        leftover.unlink(missing_ok=True)
    shutil.rmtree(spill, ignore_errors=True)


def _discard_staged_vault(staged: Future) -> None:
    """Remove the staged vault file unless it was committed (once staging is done)."""
    try:
        staged.result().unlink(missing_ok=True)
    except BaseException:  # noqa: BLE001 - staging failed: it removed its own file; the build's error is reported
        pass


def assign_pseudonyms(persons: np.ndarray, previous: Vault | None, max_days: int) -> tuple[list[str], np.ndarray]:
    """Each person's pseudonym and date offset: kept from the previous vault, fresh otherwise."""
    pseudonyms: list[str | None] = [None] * len(persons)
    offsets = np.zeros(len(persons), dtype=np.int32)
    fresh = np.ones(len(persons), dtype=bool)
    taken: set[str] = set()
    if previous is not None and len(previous):
        order = np.argsort(previous.person_ids)
        known_ids = previous.person_ids[order]
        where = np.clip(np.searchsorted(known_ids, persons), 0, len(known_ids) - 1)
        found = known_ids[where] == persons
        source = order[where]
        offsets[found] = previous.offsets[source[found]]
        for index in np.flatnonzero(found):
            pseudonyms[index] = previous.pseudonyms[source[index]]
        fresh = ~found
        taken = set(previous.pseudonyms)
    count = int(fresh.sum())
    if count:
        for index, pseudonym in zip(np.flatnonzero(fresh), new_pseudonyms(count, taken)):
            pseudonyms[index] = pseudonym
        offsets[fresh] = new_date_offsets(count, max_days)
    return pseudonyms, offsets  # type: ignore[return-value]


def _record(context: Context, actor: Actor, study: Study, paths: StudyPaths, sha256: str, rows: dict[str, int],
            seconds: float, *, rebuild: bool) -> None:
    now = clock.utcnow()
    with context.store.transaction() as session:
        session.execute(update(ExtractRow).where(ExtractRow.slug == study.slug, ExtractRow.state == "current")
                        .values(state="replaced"))
        session.add(ExtractRow(slug=study.slug, path=str(paths.extract), sha256=sha256,
                               request_hash=study.request_hash, built_at=now, rows=rows, state="current"))
        context.audit.append(session, actor=actor.name, action="extract.built", study=study.slug,
                             detail={"sha256": sha256, "request_hash": study.request_hash,
                                     "tables": sorted(rows), "rebuild": rebuild, "seconds": round(seconds, 3)})


def remove_leftovers(paths: StudyPaths, verifier) -> list[str]:  # noqa: ANN001 - a signing.Verifier
    """Remove what an interrupted build left: temporary files, spill folders, and an extract that
    does not match its signed manifest. Returns the names removed (call it under the build lock)."""
    return sorted(remove_temporary_leftovers(paths) + remove_unmatched_extract(paths, verifier))


def remove_temporary_leftovers(paths: StudyPaths) -> list[str]:
    """Temporary files and spill folders of an interrupted build (under the build lock)."""
    removed: list[str] = []
    if not paths.root.is_dir():
        return removed
    for pattern in LEFTOVER_PATTERNS:
        for path in paths.root.glob(pattern):
            path.unlink(missing_ok=True)
            removed.append(path.name)
    for folder in paths.root.glob(".spill-*"):
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder.name + "/")
    if removed:
        fsync_dir(paths.root)
    return removed


def remove_unmatched_extract(paths: StudyPaths, verifier) -> list[str]:  # noqa: ANN001 - a signing.Verifier
    """The extract and manifest, if the extract is missing or does not match its signed manifest."""
    removed: list[str] = []
    if paths.extract.exists() or paths.manifest.exists():
        if not paths.extract.exists() or not verify_extract(paths.root, verifier).ok:
            for path in (paths.extract, paths.manifest):
                if path.exists():
                    path.unlink()
                    removed.append(path.name)
    if removed:
        fsync_dir(paths.root)
    return removed


def current_extract(context: Context, study: Study) -> Verification | None:
    """The study's extract if it verifies and was built from this request, plan and warehouse."""
    paths = StudyPaths(context.home, study.slug)
    if not paths.extract.exists():
        return None
    verification = verify_extract(paths.root, context.verifier())
    if not verification.ok or verification.manifest is None:
        return None
    manifest = verification.manifest
    settings = extract_settings(context)
    try:
        plan = make_plan(study, context.catalog, date_shift_days=settings.date_shift_days)
        fingerprint = warehouse_fingerprint(Path(context.settings.warehouse_path), context.catalog)
    except (PlanError, FileNotFoundError):
        return None
    if (manifest.get("request_hash") != study.request_hash
            or canonical_json(manifest.get("plan")) != canonical_json(plan.as_dict())
            or (manifest.get("warehouse") or {}).get("fingerprint") != fingerprint):
        return None
    return verification


def extract_rows(context: Context, slug: str) -> list[ExtractRow]:
    with context.store.transaction() as session:
        return list(session.scalars(select(ExtractRow).where(ExtractRow.slug == slug).order_by(ExtractRow.id)))

