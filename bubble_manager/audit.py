"""Append-only, hash-chained audit log with signed checkpoints outside the database.

Each entry is `{seq, at, actor, action, study, detail, prev_hash, hash}`, where `hash` is the
sha256 of the canonical JSON of the other fields: changing, removing or reordering an entry
breaks the chain. A writer with database access could still rehash the whole chain or cut its
tail, so the chain head (seq, hash) is signed with the hub's Ed25519 key after every committed
batch and appended to a sink outside the database (a file by default, syslog optionally).
`verify` recomputes the chain and compares it with every checkpoint. What it cannot see: entries
cut after the last checkpoint, since no signature ever covered them.

Audit entries never hold patient data: callers pass ids, counts and decisions, never values.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import logging
import os
import re
import syslog
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Protocol, TextIO

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from . import clock
from .signing import Signer, Verifier
from .store import AuditEntryRow, Store
from .study_request import canonical_json

GENESIS = "0" * 64
SYSLOG_LINE = re.compile(r"bubble-manager-audit(?:\[\d+\])?: checkpoint (\{.*\})\s*$")  # ident[pid]: ...
PG_AUDIT_LOCK = 0x6275626C  # "bubl": one advisory lock id serialises appends on PostgreSQL
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    actor: str
    action: str
    study: str | None
    detail: dict[str, Any]
    prev_hash: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "at": self.at, "actor": self.actor, "action": self.action, "study": self.study,
                "detail": self.detail, "prev_hash": self.prev_hash, "hash": self.hash}


def entry_hash(seq: int, at: str, actor: str, action: str, study: str | None, detail: dict[str, Any],
               prev_hash: str) -> str:
    body = {"seq": seq, "at": at, "actor": actor, "action": action, "study": study, "detail": detail,
            "prev_hash": prev_hash}
    return hashlib.sha256(canonical_json(body).encode("utf-8")).hexdigest()


# --- checkpoint sinks --------------------------------------------------------------------------

class CheckpointSinkError(RuntimeError):
    """The checkpoints cannot be read back from the configured sink."""


class CheckpointSink(Protocol):
    def write(self, record: dict[str, Any]) -> None: ...
    def read(self) -> list[dict[str, Any]]: ...


class FileCheckpointSink:
    """Appends one JSON line per checkpoint, fsynced. Put it on another volume than the database."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def write(self, record: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        try:
            os.write(fd, (canonical_json(record) + "\n").encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    def read(self) -> list[dict[str, Any]]:
        """The checkpoints, one per line: our own JSON lines, or syslog lines collected into a file
        (`... bubble-manager-audit: checkpoint {...}`, other programs' lines skipped). A damaged
        line of ours counts as an unreadable checkpoint."""
        if not self.path.exists():
            return []
        records = []
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            if not line.strip():
                continue
            text = line
            if not line.lstrip().startswith("{"):
                if "bubble-manager-audit" not in line:
                    continue  # another program's line in a collected syslog file
                syslogged = SYSLOG_LINE.search(line)
                text = syslogged.group(1) if syslogged else line
            try:
                record = json.loads(text)
            except json.JSONDecodeError:
                record = None
            records.append(record if isinstance(record, dict) else {"unreadable_line": number})
        return records

    def describe(self) -> str:
        return str(self.path)


class SyslogCheckpointSink:
    """Sends checkpoints to the local syslog, from where a collector ships them off the host."""

    def __init__(self, facility: int = syslog.LOG_AUTHPRIV):
        self.facility = facility

    def write(self, record: dict[str, Any]) -> None:
        syslog.openlog("bubble-manager-audit", 0, self.facility)
        syslog.syslog(syslog.LOG_NOTICE, "checkpoint " + canonical_json(record))

    def read(self) -> list[dict[str, Any]]:
        raise CheckpointSinkError("checkpoints were sent to syslog: collect the 'bubble-manager-audit: checkpoint "
                                  "{...}' lines into a file (as syslog wrote them) and pass it with "
                                  "`bubble-manager audit verify --checkpoints FILE`")

    def describe(self) -> str:
        return "syslog"


def checkpoint_message(seq: int, head_hash: str, at: str) -> bytes:
    return canonical_json({"seq": seq, "hash": head_hash, "at": at}).encode("utf-8")


# --- the log -----------------------------------------------------------------------------------

@dataclass
class VerifyReport:
    ok: bool
    entries: int
    checkpoints: int
    last_checkpoint_seq: int | None = None
    first_broken_seq: int | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "entries": self.entries, "checkpoints": self.checkpoints,
                "last_checkpoint_seq": self.last_checkpoint_seq, "first_broken_seq": self.first_broken_seq,
                "problems": self.problems, "notes": self.notes}


class AuditLog:
    """Appends entries inside the caller's transaction and checkpoints the head after commit.

    With `checkpoint_interval` > 0, batches committed within the interval of the last checkpoint
    share the next one, which a timer writes when the interval is up (and `close` at the latest):
    checkpoints of a moving chain are never more than the interval apart.
    """

    def __init__(self, store: Store, signer: Signer | None, sink: CheckpointSink | None,
                 checkpoint_interval: float = 0.0):
        self.store = store
        self.signer = signer
        self.sink = sink
        self.checkpoint_interval = checkpoint_interval
        self._last_checkpoint_seq = 0
        self._last_checkpoint_time: float | None = None
        self._checkpoint_lock = threading.RLock()
        self._appending = threading.local()  # per thread: this transaction appended entries
        self._timer: threading.Timer | None = None
        self._closed = False
        # How this process was reached, added as `via` to entries that do not say it themselves
        # (the CLI sets it: its --actor is an assertion, recorded with the OS user who ran it).
        self.channel: dict[str, Any] | None = None
        store.on_commit(self._after_commit)
        _open_logs.add(self)

    def append(self, session: Session, *, actor: str, action: str, study: str | None = None,
               detail: dict[str, Any] | None = None) -> AuditEntry:
        """Add one entry to the chain, in `session`'s transaction (serialised across writers)."""
        detail = json.loads(canonical_json(detail or {}))  # JSON-clean and detached from the caller
        if self.channel and "via" not in detail:
            detail["via"] = dict(self.channel)
        self._lock(session)
        head = session.execute(select(AuditEntryRow.seq, AuditEntryRow.hash)
                               .order_by(AuditEntryRow.seq.desc()).limit(1)).first()
        seq, prev_hash = (head.seq + 1, head.hash) if head else (1, GENESIS)
        at = clock.isoformat(clock.utcnow())
        digest = entry_hash(seq, at, actor, action, study, detail, prev_hash)
        session.add(AuditEntryRow(seq=seq, at=at, actor=actor, action=action, study=study,
                                  detail=canonical_json(detail), prev_hash=prev_hash, hash=digest))
        session.flush()
        self._appending.pending = True
        return AuditEntry(seq, at, actor, action, study, detail, prev_hash, digest)

    def record(self, *, actor: str, action: str, study: str | None = None,
               detail: dict[str, Any] | None = None) -> AuditEntry:
        """Append one entry in a transaction of its own (for refusals and other lone events)."""
        with self.store.transaction() as session:
            return self.append(session, actor=actor, action=action, study=study, detail=detail)

    def _lock(self, session: Session) -> None:
        if self.store.dialect == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_AUDIT_LOCK})
        # SQLite: every transaction of the Store already holds the write lock (BEGIN IMMEDIATE).

    # --- checkpoints ---

    def _after_commit(self) -> None:
        # Only the committing thread's own appends count: another thread's uncommitted entries are
        # checkpointed after their own commit, which reads the head again.
        if not getattr(self._appending, "pending", False):
            return
        self._appending.pending = False
        wait = 0.0 if self._closed else self._seconds_until_due()
        if wait > 0:
            self._schedule(wait)
        else:
            self.checkpoint()

    def _seconds_until_due(self) -> float:
        if not self.checkpoint_interval or self._last_checkpoint_time is None:
            return 0.0
        return self._last_checkpoint_time + self.checkpoint_interval - time.monotonic()

    def _schedule(self, wait: float) -> None:
        with self._checkpoint_lock:
            if self._closed or (self._timer is not None and self._timer.is_alive()):
                return
            self._timer = threading.Timer(wait, self._checkpoint_from_timer)
            self._timer.daemon = True
            self._timer.start()

    def _checkpoint_from_timer(self) -> None:
        try:
            self.checkpoint()
        except Exception:  # a timer thread has no caller to raise to; the next commit tries again
            log.exception("the deferred audit checkpoint failed")

    def checkpoint(self) -> dict[str, Any] | None:
        """Sign the current chain head and send it to the sink, if it moved since the last one."""
        if self.signer is None or self.sink is None:
            return None
        self._appending.pending = False  # this reads the head: appends of a rolled-back transaction are gone
        with self._checkpoint_lock:
            with self.store.transaction() as session:
                head = session.execute(select(AuditEntryRow.seq, AuditEntryRow.hash)
                                       .order_by(AuditEntryRow.seq.desc()).limit(1)).first()
            if head is None or head.seq <= self._last_checkpoint_seq:
                return None
            at = clock.isoformat(clock.utcnow())
            record = {"seq": head.seq, "hash": head.hash, "at": at, "key_id": self.signer.key_id,
                      "signature": self.signer.sign(checkpoint_message(head.seq, head.hash, at))}
            self.sink.write(record)
            self._last_checkpoint_seq = head.seq
            self._last_checkpoint_time = time.monotonic()
            return record

    def close(self) -> None:
        """Write the checkpoint a deferred batch is waiting for, and stop the timer."""
        with self._checkpoint_lock:
            if self._closed:
                return
            self._closed = True
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
            if timer.is_alive() and timer is not threading.current_thread():
                timer.join()
            self.checkpoint()
        _open_logs.discard(self)

    # --- reading ---

    def entries(self, *, study: str | None = None, action: str | None = None, actor: str | None = None,
                since_seq: int = 0, limit: int | None = None) -> list[AuditEntry]:
        with self.store.transaction() as session:
            query = select(AuditEntryRow).where(AuditEntryRow.seq > since_seq).order_by(AuditEntryRow.seq)
            if study:
                query = query.where(AuditEntryRow.study == study)
            if action:
                query = query.where(AuditEntryRow.action.like(action.replace("*", "%")))
            if actor:
                query = query.where(AuditEntryRow.actor == actor)
            if limit:
                query = query.limit(limit)
            return [_entry_from_row(row) for row in session.scalars(query)]

    def iter_all(self, batch: int = 5000) -> Iterator[AuditEntry]:
        last = 0
        while True:
            chunk = self.entries(since_seq=last, limit=batch)
            if not chunk:
                return
            yield from chunk
            last = chunk[-1].seq

    def export_jsonl(self, out: TextIO, **filters: Any) -> int:
        count = 0
        for entry in (self.entries(**filters) if filters else self.iter_all()):
            out.write(canonical_json(entry.as_dict()) + "\n")
            count += 1
        return count

    def count(self) -> int:
        with self.store.transaction() as session:
            return session.scalar(select(func.count()).select_from(AuditEntryRow)) or 0

    # --- verification ---

    def verify(self, verifier: Verifier, checkpoints: list[dict[str, Any]] | None = None) -> VerifyReport:
        """Recompute the chain and compare it with the signed checkpoints."""
        if checkpoints is None:
            checkpoints = self.sink.read() if self.sink is not None else []
        hashes: dict[int, str] = {}
        report = VerifyReport(ok=True, entries=0, checkpoints=len(checkpoints))
        chain_break = _first_chain_break(self.iter_all(), hashes)
        report.entries = len(hashes)
        candidates: list[tuple[int, str]] = []
        if chain_break:
            candidates.append(chain_break)
        candidates.extend(_checkpoint_problems(checkpoints, hashes, verifier, report))
        if hashes and not checkpoints:
            candidates.append((1, "no signed checkpoint was found: the chain cannot be checked against a rewrite; "
                                  "check the checkpoint sink configuration"))
        if candidates:
            candidates.sort(key=lambda item: item[0])
            report.ok = False
            report.first_broken_seq = candidates[0][0]
            report.problems = [message for _, message in candidates]
        last = max(hashes) if hashes else 0
        if report.last_checkpoint_seq is not None and last > report.last_checkpoint_seq:
            report.notes.append(f"entries {report.last_checkpoint_seq + 1}..{last} come after the last checkpoint: "
                                "their removal could not be detected until the next checkpoint covers them")
        return report


_open_logs: "weakref.WeakSet[AuditLog]" = weakref.WeakSet()


@atexit.register
def _close_open_logs() -> None:
    """A process leaving without `Context.close()` (a CLI command) still writes its last checkpoint."""
    for audit_log in list(_open_logs):
        try:
            audit_log.close()
        except Exception:
            log.exception("the last audit checkpoint before exit failed")


def _entry_from_row(row: AuditEntryRow) -> AuditEntry:
    return AuditEntry(row.seq, row.at, row.actor, row.action, row.study, json.loads(row.detail),
                      row.prev_hash, row.hash)


def _first_chain_break(entries: Iterable[AuditEntry], hashes: dict[int, str]) -> tuple[int, str] | None:
    """Walk the chain; record each entry's stored hash; return (seq, message) of the first break."""
    expected_seq, prev_hash = 1, GENESIS
    found: tuple[int, str] | None = None
    for entry in entries:
        hashes[entry.seq] = entry.hash
        if found:
            continue
        if entry.seq != expected_seq:
            found = (expected_seq, f"entry {expected_seq} is missing: the chain jumps from seq {expected_seq - 1} "
                                   f"to seq {entry.seq} (entries removed)")
        elif entry.prev_hash != prev_hash:
            found = (entry.seq, f"entry {entry.seq} does not follow entry {entry.seq - 1}: its prev_hash differs "
                                "(an entry was removed, reordered or altered)")
        elif entry_hash(entry.seq, entry.at, entry.actor, entry.action, entry.study, entry.detail,
                        entry.prev_hash) != entry.hash:
            found = (entry.seq, f"entry {entry.seq} was altered: its content does not match its hash")
        expected_seq, prev_hash = entry.seq + 1, entry.hash
    return found


def _checkpoint_problems(checkpoints: list[dict[str, Any]], hashes: dict[int, str], verifier: Verifier,
                         report: VerifyReport) -> list[tuple[int, str]]:
    problems: list[tuple[int, str]] = []
    valid: list[dict[str, Any]] = []
    for number, record in enumerate(checkpoints, start=1):
        try:
            seq, head_hash, at = int(record["seq"]), str(record["hash"]), str(record["at"])
            signed = verifier.verify(str(record["signature"]), checkpoint_message(seq, head_hash, at))
        except (KeyError, TypeError, ValueError):
            problems.append((1, f"checkpoint #{number} is unreadable"))
            continue
        if not signed:
            problems.append((max(seq, 1), f"checkpoint #{number} (seq {seq}) has no valid hub signature: "
                                          "forged, or signed by another key"))
            continue
        valid.append({"seq": seq, "hash": head_hash, "at": at})
    last_entry = max(hashes) if hashes else 0
    matched_upto = 0
    for record in sorted(valid, key=lambda r: r["seq"]):
        seq = record["seq"]
        report.last_checkpoint_seq = max(report.last_checkpoint_seq or 0, seq)
        if seq > last_entry:
            problems.append((last_entry + 1, f"the chain ends at seq {last_entry} but a checkpoint signed at "
                                             f"{record['at']} covers seq {seq}: entries {last_entry + 1}..{seq} "
                                             "were removed (tail cut)"))
            break
        if hashes.get(seq) != record["hash"]:
            first = matched_upto + 1
            where = f"entry {seq}" if first == seq else f"one of entries {first}..{seq}"
            problems.append((first, f"{where} was rewritten: the chain hash at seq {seq} differs from the checkpoint "
                                    f"signed at {record['at']}"))
            break
        matched_upto = seq
    return problems
