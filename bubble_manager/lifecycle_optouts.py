"""Opt-outs: a person added to the warehouse's opt-out register leaves every active extract.

Each tick looks at the warehouse file's identity (device, inode, size, modification time); only
when it changed is the register read (DuckDB, read-only) and fingerprinted (sha256 of its sorted
person ids). When the fingerprint differs from the one last applied, every active study's vault
(read with its live key) is checked for an opted-out person; a study that holds one has its
running bubbles stopped, its extract rebuilt (pseudonyms of everyone else kept; the build leaves
out opted-out persons) and its bubbles started again on the new extract, and its members are
told why. The fingerprint is recorded as applied only once every active study was handled, so a
failure is retried on the next tick. Nothing recorded names the person: not the audit log (which
says only that the register changed), nor the e-mails; the fingerprint stays in the store.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .lifecycle_hub import HubUnavailable, stop_and_wait, study_servers
from .runtime.site_hooks import publish_extract
from .lifecycle_store import get_state, set_state
from .runtime.spec import StudyPaths
from .store import list_studies
from .studies import SYSTEM, State

if TYPE_CHECKING:
    from .lifecycle_steps import StepOutcome, TickRunner

SIGNATURE_KEY = "optouts.warehouse"
FINGERPRINT_KEY = "optouts.fingerprint"
APPLIED_KEY = "optouts.applied"


def warehouse_signature(warehouse: Path) -> list[int] | None:
    try:
        status = warehouse.stat()
    except FileNotFoundError:
        return None
    return [status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns]


def read_register(warehouse: Path, table: str, key: str) -> np.ndarray:
    """The opted-out person ids, sorted (read-only; the warehouse is never written)."""
    import duckdb

    from .extract.cohort import quote

    with duckdb.connect(str(warehouse), read_only=True) as connection:
        ids = connection.execute(f"SELECT DISTINCT {quote(key)} AS person_id FROM {quote(table)} "
                                 f"WHERE {quote(key)} IS NOT NULL ORDER BY 1").fetchnumpy()["person_id"]
    return np.asarray(ids, dtype=np.int64)


def fingerprint(ids: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(ids, dtype="<i8").tobytes()).hexdigest()


def _register(context) -> tuple[Path, str, str] | None:  # noqa: ANN001
    table = context.catalog.opt_out_table
    warehouse = Path(context.settings.warehouse_path)
    if table is None or table.person_key is None or not warehouse.exists():
        return None
    return warehouse, table.name, table.person_key.name


def optouts_pending(context) -> bool:  # noqa: ANN001
    """Read-only: would the next tick apply a changed opt-out register?"""
    register = _register(context)
    if register is None:
        return False
    warehouse, table, key = register
    with context.store.transaction() as session:
        seen, known, applied = (get_state(session, k) for k in (SIGNATURE_KEY, FINGERPRINT_KEY, APPLIED_KEY))
    current = known if warehouse_signature(warehouse) == seen else fingerprint(read_register(warehouse, table, key))
    return current != applied


def propagate_optouts(runner: "TickRunner") -> None:
    context = runner.context
    try:
        register = _register(context)
    except Exception as error:  # an unreadable catalog: alert, retry next tick
        runner.record_failure(None, "opt-outs", error)
        return
    if register is None:
        return
    warehouse, table, key = register
    signature = warehouse_signature(warehouse)
    with context.store.transaction() as session:
        seen, known, applied = (get_state(session, k) for k in (SIGNATURE_KEY, FINGERPRINT_KEY, APPLIED_KEY))
    ids = None
    if signature != seen or known is None:
        try:
            ids = read_register(warehouse, table, key)
        except Exception as error:
            runner.record_failure(None, "opt-outs", error)
            return
        known = fingerprint(ids)
        with context.store.transaction() as session:
            set_state(session, SIGNATURE_KEY, signature)
            set_state(session, FINGERPRINT_KEY, known)
    if known == applied:
        return
    if ids is None:
        ids = read_register(warehouse, table, key)
    with context.store.transaction() as session:
        active = [s.slug for s in list_studies(session, states=[State.active.value])]
    affected, all_handled = [], True
    for slug in active:
        try:
            holds = study_holds_any(runner, slug, ids)
        except Exception as error:
            runner.record_failure(slug, "opt-out-check", error)
            all_handled = False
            continue
        if holds:
            affected.append(slug)
            all_handled &= runner.run_step(slug, "opt-out-rebuild", lambda slug=slug: rebuild(runner, slug),
                                           audit_action="study.extract_refreshed")
    if all_handled:
        with context.store.transaction() as session:
            set_state(session, APPLIED_KEY, known)
            context.audit.append(session, actor=SYSTEM.name, action="lifecycle.opt-outs-applied", study=None,
                                 detail={"active_studies_checked": len(active), "studies_rebuilt": len(affected)})


def study_holds_any(runner: "TickRunner", slug: str, ids: np.ndarray) -> bool:
    """True if the study's vault maps a pseudonym to one of `ids` (read with the live key)."""
    from .archive.keys import load_live_identity
    from .extract.vault import read_vault

    paths = StudyPaths(runner.context.home, slug)
    if not paths.vault.exists():
        return False
    identity = load_live_identity(runner.context, slug, actor=SYSTEM.name, purpose="opt-out check")
    vault = read_vault(paths.vault, slug, [identity])
    return bool(np.isin(vault.person_ids, ids).any())


def rebuild(runner: "TickRunner", slug: str) -> "StepOutcome":
    """Stop the study's bubbles, rebuild its extract without the opted-out, start the bubbles again."""
    from .extract.build import build_extract
    from .extract.manifest import verify_extract
    from .lifecycle_steps import StepOutcome, StepPending

    context = runner.context
    running: list[dict[str, Any]] = []
    if runner.hub is not None:
        running = study_servers(runner.servers(), slug)
        asked, left = stop_and_wait(runner.hub, running, slug, runner.settings.stop_timeout_seconds)
        runner._servers = None
        if left:
            raise StepPending(f"{left} bubbles of study {slug} are still stopping before its rebuild")
    build_extract(context, SYSTEM, slug)
    verification = verify_extract(StudyPaths(context.home, slug).root, context.verifier())
    if not verification.ok:
        raise RuntimeError(f"the rebuilt extract of {slug} does not verify: {'; '.join(verification.problems)}")
    publish_extract(context, slug, actor=SYSTEM.name)  # Kubernetes sites: refill the extract volume
    restarted, not_restarted = 0, 0
    for server in running:
        try:
            runner.hub.start_server(server["user"], slug)
            restarted += 1
        except (HubUnavailable, Exception):  # the member restarts it from the panel; they are told so
            not_restarted += 1
    study = runner.study(slug)
    notifier = runner.notifier()
    subject = f"The data of study {slug} was refreshed"
    body = (f"{subject}: a person withdrew their consent to the reuse of their data (the warehouse's opt-out "
            "register), so the study's extract was rebuilt without them. Everyone else keeps the same pseudonym.\n"
            + ("Your running bubble was restarted on the new extract; unsaved notebook state was lost.\n"
               if running else "") +
            ("If your bubble is not running, start it again from the panel.\n" if not_restarted else ""))
    addresses = [a for a in (notifier.address_of(p) for p in dict.fromkeys([study.requester, *study.members])) if a]
    told = notifier.send(addresses, subject, body)
    return StepOutcome({"reason": "opt-out register changed", "bubbles_restarted": restarted,
                        "bubbles_not_restarted": not_restarted, "emailed": len(told)})
