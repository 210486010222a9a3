"""Snapshot a study into `archives/<slug>/<slug>-<n>.tar.zst.age` plus its signed envelope.

`tar` (pax) | zstd (`zstandard`, multi-threaded) | age (`AgeWriter`, to the study's archive
recipient), streamed in constant memory into a temporary file in the archive folder, fsynced,
then renamed into place with its envelope, and the folder fsynced; the store row and the audit
entry are written in the same transaction as the renames. A crash at any point leaves either a
complete archive or only a temporary file, which the next snapshot of the study removes. The
AgeWriter is the outermost writer, so an exception never seals a half archive.

Inside, under `<slug>/`: `extract.duckdb`, `manifest.json`, `vault.age` and the airlock's
`disclosure-ledger.json` (each if present), the
`workspaces/` and `shared/` trees (walked with `walk.py`: links never followed), and `_archive/`
holding `environment.json` (package list), `audit.jsonl` (the study's audit entries) and, last,
`archive-manifest.json`, signed. Researchers' file names appear only inside the encrypted archive:
audit entries, the envelope and command output carry counts, never names.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

import zstandard
from sqlalchemy import select

from .. import clock
from ..store import ArchiveRow, load_study
from ..studies import State
from ..study_request import SLUG_PATTERN, canonical_json
from ..runtime.spec import StudyPaths
from .age import AgeWriter, Recipient
from .fsutil import fsync_dir, locked, private_dir
from .keys import SYSTEM_ACTOR, ensure_study_keys
from .manifest import (ENVELOPE_FORMAT, MANIFEST_NAME, SignedDocumentError, build_envelope, build_manifest,
                       member_record, parse, sign, to_bytes, verify)
from .settings import ArchiveSettings
from .walk import Entry, Limits, TreeWalker, WalkReport

SNAPSHOT_STATES = {State.approved, State.active, State.expired, State.revoked, State.archived}
META_DIR = "_archive"
HUB_WRITTEN_FILES = ("extract.duckdb", "manifest.json", "vault.age", "disclosure-ledger.json")  # the airlock's ledger
COPY_BUFFER = 1 << 20
WRITEBACK_BYTES = 32 * 2**20  # start writing the archive to disk every 32 MiB
ZSTD_JOB_BYTES = 1 << 20
ENVELOPE_SUFFIX = ".envelope.json"


class SnapshotError(RuntimeError):
    """The study cannot be snapshotted now; the message says why and what to do."""


@dataclass
class SnapshotResult:
    slug: str
    number: int
    path: Path
    envelope_path: Path
    sha256: str
    size: int
    members: int
    plaintext_bytes: int
    skipped: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    adopted: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {"study": self.slug, "number": self.number, "path": str(self.path),
                "envelope": str(self.envelope_path), "sha256": self.sha256, "size": self.size,
                "members": self.members, "plaintext_bytes": self.plaintext_bytes, "skipped": self.skipped,
                "seconds": round(self.seconds, 3), "adopted": self.adopted}


def archive_dir(home: Path, slug: str) -> Path:
    if not SLUG_PATTERN.match(slug):
        raise SnapshotError(f"{slug!r} is not a study slug")
    return Path(home) / "archives" / slug


def archive_name(slug: str, number: int) -> str:
    return f"{slug}-{number}.tar.zst.age"


def envelope_path_for(archive_path: Path) -> Path:
    return archive_path.with_name(archive_path.name + ENVELOPE_SUFFIX)


def snapshot(context, slug: str, *, actor: str = SYSTEM_ACTOR) -> SnapshotResult:
    """Archive the study's current files; audited; returns where and what was written."""
    started = time.monotonic()
    folder = archive_dir(context.home, slug)
    with context.store.transaction() as session:
        study = load_study(session, slug)
    if study is None:
        raise SnapshotError(f"no study {slug!r}; `bubble-manager studies list` shows them")
    if study.state not in SNAPSHOT_STATES:
        raise SnapshotError(f"study {slug} is {study.state.value}: only approved, active, expired, revoked or "
                            "archived studies have files to archive")
    keys = ensure_study_keys(context, slug, actor=actor)
    settings = ArchiveSettings(config=context.settings.config)
    private_dir(folder.parent)
    private_dir(folder)
    with locked(folder / ".lock"):
        remove_leftovers(folder)
        adopted = adopt_orphans(context, slug, folder, actor)
        number = _next_number(context, slug, folder)
        result = _write_archive(context, slug, number, folder, keys.archive_recipient, settings, actor)
    result.adopted = adopted
    result.seconds = time.monotonic() - started
    return result


def remove_leftovers(folder: Path) -> list[str]:
    """Remove temporary files a killed snapshot left (called with the folder's lock held)."""
    removed = []
    for path in folder.glob(".*.tmp"):
        path.unlink(missing_ok=True)
        removed.append(path.name)
    if removed:
        fsync_dir(folder)
    return removed


def adopt_orphans(context, slug: str, folder: Path, actor: str) -> list[int]:
    """Register complete archives a crash left unrecorded (renamed, not committed); drop lone envelopes."""
    with context.store.transaction() as session:
        known = set(session.scalars(select(ArchiveRow.number).where(ArchiveRow.slug == slug)))
    adopted = []
    pattern = re.compile(rf"^{re.escape(slug)}-(\d+)\.tar\.zst\.age$")
    for path in sorted(folder.iterdir()):
        match = pattern.match(path.name)
        if path.name.endswith(ENVELOPE_SUFFIX):
            archive = path.with_name(path.name[: -len(ENVELOPE_SUFFIX)])
            number_match = pattern.match(archive.name)
            if number_match and not archive.exists() and int(number_match.group(1)) not in known:
                path.unlink()  # renamed just before its archive when the process died
            continue
        if not match or int(match.group(1)) in known:
            continue
        number = int(match.group(1))
        try:
            document = verify_envelope(context.verifier(), path)
        except (SignedDocumentError, FileNotFoundError):
            continue  # not ours to delete or adopt: `archive verify` reports it
        with context.store.transaction() as session:
            session.add(ArchiveRow(slug=slug, number=number, path=str(path), sha256=document["sha256"],
                                   size=document["size"], created_at=clock.parse_iso(document["created_at"]),
                                   state="kept"))
            context.audit.append(session, actor=actor, action="archive.adopted", study=slug,
                                 detail={"number": number, "sha256": document["sha256"]})
        adopted.append(number)
    return adopted


def _next_number(context, slug: str, folder: Path) -> int:
    with context.store.transaction() as session:
        numbers = set(session.scalars(select(ArchiveRow.number).where(ArchiveRow.slug == slug)))
    pattern = re.compile(rf"^{re.escape(slug)}-(\d+)\.tar\.zst\.age")
    numbers.update(int(m.group(1)) for p in folder.iterdir() if (m := pattern.match(p.name)))
    return max(numbers, default=0) + 1


def _write_archive(context, slug: str, number: int, folder: Path, recipient: Recipient,
                   settings: ArchiveSettings, actor: str) -> SnapshotResult:
    final = folder / archive_name(slug, number)
    envelope_final = envelope_path_for(final)
    token = os.urandom(6).hex()
    temp = folder / f".{final.name}.{token}.tmp"
    envelope_temp = folder / f".{envelope_final.name}.{token}.tmp"
    created_at = clock.isoformat(clock.utcnow())
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        with os.fdopen(fd, "wb", buffering=COPY_BUFFER) as raw:
            sink = HashingSink(raw)
            with AgeWriter(sink, [recipient]) as age_writer:
                summary = _write_tar(context, slug, number, created_at, age_writer, settings)
            raw.flush()
            os.fsync(raw.fileno())
        envelope = sign(build_envelope(study=slug, number=number, sha256=sink.hexdigest(), size=sink.size,
                                       created_at=created_at, post_quantum=_post_quantum(recipient)),
                        context.signer)
        fd = os.open(envelope_temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(to_bytes(envelope))
            out.flush()
            os.fsync(out.fileno())
        with context.store.transaction() as session:
            session.add(ArchiveRow(slug=slug, number=number, path=str(final), sha256=sink.hexdigest(),
                                   size=sink.size, created_at=clock.parse_iso(created_at), state="kept"))
            context.audit.append(session, actor=actor, action="archive.snapshot", study=slug, detail={
                "number": number, "sha256": sink.hexdigest(), "size": sink.size, "members": summary.members,
                "plaintext_bytes": summary.plaintext_bytes, "skipped": summary.skipped_counts(),
                "recipient": recipient.to_string()})
            # Envelope first: an archive file on disk always has its envelope beside it.
            os.rename(envelope_temp, envelope_final)
            os.rename(temp, final)
            fsync_dir(folder)
    except BaseException:
        for path in (temp, envelope_temp):
            path.unlink(missing_ok=True)
        if final.exists() and not _recorded(context, slug, number):
            final.unlink()
            envelope_final.unlink(missing_ok=True)
        raise
    return SnapshotResult(slug=slug, number=number, path=final, envelope_path=envelope_final,
                          sha256=sink.hexdigest(), size=sink.size, members=summary.members,
                          plaintext_bytes=summary.plaintext_bytes, skipped=summary.skipped_counts())


def _post_quantum(recipient: Recipient) -> bool:
    return bool(getattr(recipient, "post_quantum", False))


def _recorded(context, slug: str, number: int) -> bool:
    with context.store.transaction() as session:
        return session.scalar(select(ArchiveRow.id).where(ArchiveRow.slug == slug,
                                                          ArchiveRow.number == number)) is not None


@dataclass
class TarSummary:
    members: int
    plaintext_bytes: int
    report: WalkReport

    def skipped_counts(self) -> dict[str, int]:
        return self.report.counts()


def _write_tar(context, slug: str, number: int, created_at: str, output: BinaryIO,
               settings: ArchiveSettings) -> TarSummary:
    # Small zstd jobs keep the workers' buffers to a few MiB (the default job is 4 windows, 8 MiB+).
    parameters = zstandard.ZstdCompressionParameters.from_level(
        settings.zstd_level, threads=settings.zstd_threads, job_size=ZSTD_JOB_BYTES, write_checksum=1)
    compressor = zstandard.ZstdCompressor(compression_params=parameters)
    paths = StudyPaths(context.home, slug)
    limits = Limits(settings.max_file_bytes, settings.max_total_bytes, settings.max_members)
    report = WalkReport()
    walker = TreeWalker(limits, report)
    members: list[dict] = []
    with compressor.stream_writer(output, closefd=False, write_size=COPY_BUFFER) as zstd_writer:
        with tarfile.open(fileobj=CountingWriter(zstd_writer), mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.copybufsize = COPY_BUFFER
            writer = _TarMembers(tar, members, report, int(clock.parse_iso(created_at).timestamp()))
            writer.add_dir(slug, 0o755, writer.mtime)
            for name in HUB_WRITTEN_FILES:
                for entry in walker.walk_file(paths.root, name, f"{slug}/{name}"):
                    writer.add_entry(entry)
            for tree, prefix in ((paths.workspaces, f"{slug}/workspaces"), (paths.shared, f"{slug}/shared")):
                walker.count_links(tree)
            for tree, prefix in ((paths.workspaces, f"{slug}/workspaces"), (paths.shared, f"{slug}/shared")):
                for entry in walker.walk(tree, prefix):
                    writer.add_entry(entry)
            writer.add_dir(f"{slug}/{META_DIR}", 0o755, writer.mtime)
            writer.add_bytes(f"{slug}/{META_DIR}/environment.json", environment_description(context, settings))
            with tempfile.SpooledTemporaryFile(max_size=8 << 20) as audit_file:
                for entry in context.audit.entries(study=slug):
                    audit_file.write((canonical_json(entry.as_dict()) + "\n").encode("utf-8"))
                writer.add_stream(f"{slug}/{META_DIR}/audit.jsonl", audit_file)
            limits_record = {"max_file_bytes": limits.max_file_bytes, "max_total_bytes": limits.max_total_bytes,
                             "max_members": limits.max_members}
            manifest = sign(build_manifest(study=slug, number=number, created_at=created_at, members=members,
                                           skipped=[s.as_dict() for s in report.skipped], limits=limits_record),
                            context.signer)
            writer.add_bytes(f"{slug}/{META_DIR}/{MANIFEST_NAME}", to_bytes(manifest), record=False)
    return TarSummary(members=len(members), plaintext_bytes=writer.plaintext_bytes, report=report)


class _TarMembers:
    """Adds members to the tar stream and records each one in the manifest list."""

    def __init__(self, tar: tarfile.TarFile, members: list[dict], report: WalkReport, mtime: int):
        self.tar = tar
        self.mtime = mtime
        self.members = members
        self.report = report
        self.plaintext_bytes = 0

    def _info(self, path: str, kind: bytes, mode: int, mtime: int, size: int = 0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path)
        info.type, info.mode, info.mtime, info.size = kind, mode & 0o777, mtime, size
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        return info

    def add_dir(self, path: str, mode: int, mtime: int) -> None:
        self.tar.addfile(self._info(path, tarfile.DIRTYPE, mode, mtime))
        self.members.append(member_record(path, "dir", mode=mode, mtime=mtime))

    def add_entry(self, entry: Entry) -> None:
        mtime, mode = int(entry.stat.st_mtime), entry.stat.st_mode
        if entry.kind == "dir":
            self.add_dir(entry.path, mode, mtime)
        elif entry.kind == "symlink":
            info = self._info(entry.path, tarfile.SYMTYPE, mode, mtime)
            info.linkname = entry.target
            self.tar.addfile(info)
            self.members.append(member_record(entry.path, "symlink", mode=mode, mtime=mtime, target=entry.target))
        else:
            assert entry.open is not None
            try:
                fd = entry.open()
            except OSError:
                self.report.skip(entry.path, "changed", "changed while being archived")
                return
            with os.fdopen(fd, "rb", buffering=0) as source:
                reader = HashingReader(source, entry.stat.st_size)
                self.tar.addfile(self._info(entry.path, tarfile.REGTYPE, mode, mtime, entry.stat.st_size), reader)
            if reader.shrank:
                self.report.skip(entry.path, "shrank",
                                 "shrank while being archived (kept, zero-padded to its listed size)")
            self.plaintext_bytes += entry.stat.st_size
            self.members.append(member_record(entry.path, "file", size=entry.stat.st_size,
                                              sha256=reader.hexdigest(), mode=mode, mtime=mtime))

    def add_bytes(self, path: str, data: bytes, *, record: bool = True) -> None:
        reader = HashingReader(_BytesSource(data), len(data))
        self.tar.addfile(self._info(path, tarfile.REGTYPE, 0o644, self.mtime, len(data)), reader)
        self.plaintext_bytes += len(data)
        if record:
            self.members.append(member_record(path, "file", size=len(data), sha256=reader.hexdigest(), mode=0o644,
                                              mtime=self.mtime))

    def add_stream(self, path: str, source: BinaryIO) -> None:
        size = source.tell()
        source.seek(0)
        reader = HashingReader(source, size)
        self.tar.addfile(self._info(path, tarfile.REGTYPE, 0o644, self.mtime, size), reader)
        self.plaintext_bytes += size
        self.members.append(member_record(path, "file", size=size, sha256=reader.hexdigest(), mode=0o644,
                                          mtime=self.mtime))


class _BytesSource:
    def __init__(self, data: bytes):
        self._view = memoryview(data)

    def read(self, size: int = -1) -> bytes:
        size = len(self._view) if size < 0 else size
        chunk, self._view = self._view[:size], self._view[size:]
        return bytes(chunk)


class HashingReader:
    """Reads exactly `size` bytes (zero-padded if the file shrank meanwhile), hashing them."""

    def __init__(self, source, size: int):
        self._source = source
        self._left = size
        self._hash = hashlib.sha256()
        self.shrank = False

    def read(self, size: int = -1) -> bytes:
        want = self._left if size < 0 else min(size, self._left)
        data = self._source.read(want) if want else b""
        if len(data) < want:
            got = [data]
            total = len(data)
            while total < want:
                more = self._source.read(want - total)
                if not more:
                    self.shrank = True
                    got.append(bytes(want - total))
                    break
                got.append(more)
                total += len(more)
            data = b"".join(got)
        self._left -= len(data)
        self._hash.update(data)
        return data

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class CountingWriter:
    """Gives tarfile's random-access mode the `tell` it wants over a stream, without its stream-mode copies."""

    def __init__(self, raw):
        self._raw = raw
        self._position = 0

    def write(self, data) -> int:
        self._raw.write(data)
        self._position += len(data)
        return len(data)

    def tell(self) -> int:
        return self._position


class HashingSink:
    """A write-through file wrapper that hashes and counts what is written (the encrypted bytes).

    Every WRITEBACK_BYTES it asks the kernel to start writing the new part to disk (without
    waiting), so the final fsync, which makes the archive durable, has little left to do instead
    of stalling the snapshot at the end.
    """

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self._hash = hashlib.sha256()
        self.size = 0
        self._written_back = 0

    def write(self, data) -> int:
        written = self._raw.write(data)
        self._hash.update(data)
        self.size += len(data)
        if self.size - self._written_back >= WRITEBACK_BYTES:
            self._start_writeback()
        return written if written is not None else len(data)

    def _start_writeback(self) -> None:
        self._raw.flush()
        # POSIX_FADV_DONTNEED starts asynchronous writeback of the range's dirty pages on Linux
        # (and drops the clean ones: an archive is not read back by this process).
        os.posix_fadvise(self._raw.fileno(), self._written_back, self.size - self._written_back,
                         os.POSIX_FADV_DONTNEED)
        self._written_back = self.size

    def flush(self) -> None:
        self._raw.flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


ENVIRONMENT_SCRIPT = """
import importlib.metadata, json, platform, sys
packages = sorted({(d.metadata["Name"] or "?", d.version) for d in importlib.metadata.distributions()})
print(json.dumps({"python_version": sys.version, "platform": platform.platform(),
                  "packages": [{"name": n, "version": v} for n, v in packages]}))
"""


def environment_description(context, settings: ArchiveSettings,
                            run: Callable[..., subprocess.CompletedProcess] = subprocess.run) -> bytes:
    """The package list of the bubble environment (or the hub's own Python), as JSON bytes.

    The same `[{name, version}]` list `pip list --format=json` prints, read with
    importlib.metadata in that Python (a bubble environment need not hold pip).
    """
    python = settings.bubble_python or _default_bubble_python(context.home)
    description: dict[str, object] = {"python": python, "generated_at": clock.isoformat(clock.utcnow())}
    try:
        result = run([python, "-I", "-c", ENVIRONMENT_SCRIPT], capture_output=True, text=True, timeout=120,
                     check=True)
        description.update(json.loads(result.stdout))
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as error:
        description["error"] = f"package list unavailable: {type(error).__name__}"
    return (json.dumps(description, indent=2, sort_keys=True) + "\n").encode("utf-8")


def _default_bubble_python(home: Path) -> str:
    candidate = Path(home) / "bubble-env" / "bin" / "python"
    return str(candidate) if candidate.exists() else sys.executable


def verify_envelope(verifier, archive_path: Path, *, check_hash: bool = True) -> dict:
    """Check the envelope's signature and, unless told not to, the archive's sha256 and size."""
    envelope_path = envelope_path_for(archive_path)
    document = verify(parse(envelope_path.read_bytes(), str(envelope_path)), verifier, ENVELOPE_FORMAT,
                      f"envelope {envelope_path.name}")
    if check_hash:
        size, digest = file_sha256(archive_path)
        if size != document["size"]:
            raise SignedDocumentError(f"{archive_path.name} is {size} bytes, its envelope says {document['size']}: "
                                      "truncated or extended")
        if digest != document["sha256"]:
            raise SignedDocumentError(f"{archive_path.name} does not match the sha256 in its envelope: altered")
    return document


def file_sha256(path: Path) -> tuple[int, str]:
    digest = hashlib.sha256()
    size = 0
    with open(path, "rb", buffering=0) as source:
        while chunk := source.read(COPY_BUFFER):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()
