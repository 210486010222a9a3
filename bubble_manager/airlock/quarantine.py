"""The quarantine: copies of requested files that only the hub can read (`airlock/<slug>/<id>/`).

Outputs are copied out of the member's outbox (`<workspace>/outbox/<name>/`), which the bubble
controls: it is hostile input. Every folder is opened relative to its parent's descriptor without
following links (`archive/walk.py`'s walker, from the workspace down), every file with
`O_NOFOLLOW | O_NONBLOCK` and checked against what was listed. A symlink (wherever it points),
a FIFO, a socket, a device, a file hard-linked from outside the request, a name that is not
UTF-8, a folder nested too deep or anything over the size and count caps refuses the whole
request, naming each problem: nothing is read through a link and no partial copy is kept.
Copies land in a staging folder first and are renamed into place once the request is recorded.
The quarantine folders are root-only (0700) under the hub's home, never mounted in a bubble.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..archive.fsutil import fsync_dir, private_dir, write_new
from ..archive.walk import OPEN_DIR, Entry, Limits, TreeWalker, WalkReport, open_root

OUTBOX = "outbox"
MANIFEST = "request.json"
MANIFEST_FORMAT = "bubble-manager-output-request/1"
OUTBOX_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
COPY_CHUNK = 1 << 20
SYMLINK_REASON = "a symbolic link (never followed)"


class QuarantineError(RuntimeError):
    """A request cannot be quarantined; `problems` lists each file's problem (path, code, reason)."""

    def __init__(self, message: str, problems: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.problems = problems or []

    def codes(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for problem in self.problems:
            found[problem["code"]] = found.get(problem["code"], 0) + 1
        return found


@dataclass(frozen=True)
class QuarantinedFile:
    path: str
    size: int
    sha256: str


@dataclass
class StagedRequest:
    """A request's files copied into a staging folder of the quarantine, not yet recorded."""

    folder: Path
    files: list[QuarantinedFile]
    manifest: dict[str, Any] = field(default_factory=dict)
    manifest_sha256: str = ""

    def host_path(self, path: str) -> Path:
        return self.folder / "files" / path

    def discard(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def airlock_root(home: Path) -> Path:
    return Path(home) / "airlock"


def study_quarantine(home: Path, slug: str) -> Path:
    return airlock_root(home) / slug


def request_folder(home: Path, slug: str, request_id: int) -> Path:
    return study_quarantine(home, slug) / str(request_id)


def file_path(home: Path, slug: str, request_id: int, path: str) -> Path:
    return request_folder(home, slug, request_id) / "files" / path


def new_staging(home: Path, slug: str) -> Path:
    """A fresh root-only staging folder under the study's quarantine."""
    private_dir(airlock_root(home))
    study = private_dir(study_quarantine(home, slug))
    folder = Path(tempfile.mkdtemp(prefix=".staging-", dir=study))
    os.chmod(folder, 0o700)
    (folder / "files").mkdir(mode=0o700)
    return folder


def commit_staging(staging: Path, home: Path, slug: str, request_id: int) -> Path:
    """Move a staged request to its place (`airlock/<slug>/<id>/`), durably."""
    target = request_folder(home, slug, request_id)
    if target.exists():
        raise QuarantineError(f"quarantine folder {target} already exists; remove it (no request owns it)")
    os.rename(staging, target)
    fsync_dir(target.parent)
    return target


def remove_study_quarantine(home: Path, slug: str) -> bool:
    """Delete a study's quarantine (the lifecycle calls this when the study's live data goes)."""
    folder = study_quarantine(home, slug)
    if not folder.exists():
        return False
    shutil.rmtree(folder)
    return True


class _OutboxWalker(TreeWalker):
    """The archive walker, started from a folder descriptor the caller opened without following links."""

    def count_links_fd(self, dir_fd: int) -> None:
        self._count(dir_fd, 0)

    def walk_fd(self, dir_fd: int, host_dir: Path) -> Iterator[Entry]:
        self._root = host_dir
        yield from self._walk(dir_fd, host_dir, "", 0)


def _open_outbox_request(workspace: Path, name: str) -> tuple[int, list[int]]:
    """Descriptors of `<workspace>/outbox/<name>` opened level by level, never through a link."""
    if not OUTBOX_NAME.match(name or ""):
        raise QuarantineError(f"{name!r} is not an outbox request name (letters, digits, '.', '_', '-', "
                              "at most 64 characters)")
    opened: list[int] = []
    try:
        opened.append(open_root(workspace))
        for part in (OUTBOX, name):
            opened.append(os.open(part, OPEN_DIR, dir_fd=opened[-1]))
    except FileNotFoundError:
        _close(opened)
        raise QuarantineError(f"there is no outbox request {name!r}: write it under work/outbox/{name}/ in the "
                              "bubble (`python -m bubble_manager.inbubble.airlock submit ...`)") from None
    except OSError as error:
        _close(opened)
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise QuarantineError(f"work/outbox/{name} is not a folder (a link or a file): refused", [
                {"path": f"{OUTBOX}/{name}", "code": "not-a-folder", "reason": "a link or a file, not a folder"}]
            ) from None
        raise
    return opened[-1], opened[:-1]


def _close(fds: list[int]) -> None:
    for fd in fds:
        os.close(fd)


def stage_outbox_request(home: Path, slug: str, workspace: Path, name: str, *, max_file_bytes: int,
                         max_total_bytes: int, max_files: int, max_manifest_bytes: int) -> StagedRequest:
    """Copy `<workspace>/outbox/<name>/` into a new staging folder, or raise QuarantineError."""
    request_fd, parents = _open_outbox_request(workspace, name)
    report = WalkReport()
    walker = _OutboxWalker(Limits(max_file_bytes, max_total_bytes, max_files), report)
    staging = new_staging(home, slug)
    files: list[QuarantinedFile] = []
    problems: list[dict[str, str]] = []
    try:
        walker.count_links_fd(request_fd)
        for entry in walker.walk_fd(request_fd, workspace / OUTBOX / name):
            relative = entry.path.lstrip("/")
            if entry.kind == "symlink":
                problems.append({"path": relative, "code": "symlink", "reason": SYMLINK_REASON})
            elif entry.kind == "dir":
                (staging / "files" / relative).mkdir(mode=0o700)
            else:
                copied = _copy_entry(entry, staging / "files" / relative, relative, problems)
                if copied is not None:
                    files.append(copied)
        problems += [{"path": s.path.lstrip("/"), "code": "symlink", "reason": SYMLINK_REASON}
                     if s.code == "symlink-outside" else {"path": s.path.lstrip("/"), "code": s.code, "reason": s.reason}
                     for s in report.skipped]
        if problems:
            raise QuarantineError(f"outbox request {name!r} refused: " + "; ".join(
                f"{p['path']}: {p['reason']}" for p in problems[:10]), problems)
        _fsync_tree(staging)
        manifest_file = next((f for f in files if f.path == MANIFEST), None)
        if manifest_file is None:
            raise QuarantineError(f"outbox request {name!r} has no {MANIFEST}: submit it with "
                                  "`python -m bubble_manager.inbubble.airlock submit ...` in the bubble")
        manifest = read_manifest(staging / "files" / MANIFEST, max_manifest_bytes)
        files = [f for f in files if f.path != MANIFEST]
        if not files:
            raise QuarantineError(f"outbox request {name!r} holds no file besides {MANIFEST}")
        return StagedRequest(staging, sorted(files, key=lambda f: f.path), manifest, manifest_file.sha256)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        os.close(request_fd)
        _close(parents)


def _copy_entry(entry: Entry, target: Path, relative: str, problems: list[dict[str, str]]) -> QuarantinedFile | None:
    """Stream one verified file into the staging folder, hashing it; None (and a problem) if it changed."""
    assert entry.open is not None
    try:
        source = entry.open()
    except OSError:
        problems.append({"path": relative, "code": "changed", "reason": "changed while being copied"})
        return None
    digest = hashlib.sha256()
    size, expected = 0, entry.stat.st_size
    try:
        sink = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            while chunk := os.read(source, COPY_CHUNK):
                size += len(chunk)
                if size > expected:
                    problems.append({"path": relative, "code": "changed", "reason": "grew while being copied"})
                    return None
                digest.update(chunk)
                view = memoryview(chunk)
                while view:
                    view = view[os.write(sink, view):]
        finally:
            os.close(sink)
    finally:
        os.close(source)
    return QuarantinedFile(relative, size, digest.hexdigest())


def _fsync_tree(folder: Path) -> None:
    """Flush the staged copies once they are all written (one pass: cheaper than a flush per file)."""
    for directory, _, names in os.walk(folder):
        for name in names:
            fd = os.open(os.path.join(directory, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(directory))


def read_manifest(path: Path, max_bytes: int) -> dict[str, Any]:
    """The request's manifest (written in the bubble: hostile), validated; QuarantineError if bad."""
    with open(path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise QuarantineError(f"{MANIFEST} is larger than {max_bytes} bytes")
    try:
        document = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise QuarantineError(f"{MANIFEST} is not valid JSON: write it with the bubble's airlock command") from None
    return validate_manifest(document)


def validate_manifest(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict) or document.get("format") != MANIFEST_FORMAT:
        raise QuarantineError(f"{MANIFEST} is not a {MANIFEST_FORMAT} document")
    justification = document.get("justification")
    if not isinstance(justification, str) or not justification.strip():
        raise QuarantineError(f"{MANIFEST} has no justification: say why these outputs must leave the bubble")
    if len(justification) > 5000:
        raise QuarantineError("the justification is longer than 5000 characters")
    counts = document.get("counts", {})
    if not isinstance(counts, dict) or not all(
            isinstance(k, str) and isinstance(v, list) and all(isinstance(c, str) and len(c) <= 200 for c in v)
            for k, v in counts.items()) or len(counts) > 1000:
        raise QuarantineError(f"'counts' in {MANIFEST} must map file paths to lists of column names")
    return {"format": MANIFEST_FORMAT, "justification": justification.strip(), "counts": counts,
            "acro": bool(document.get("acro", False))}


@dataclass
class OutboxEntry:
    """One folder of a member's outbox, as the panel lists it before the member confirms it."""

    name: str
    justification: str = ""
    files: int = 0
    bytes: int = 0
    acro: bool = False
    problem: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "justification": self.justification, "files": self.files, "bytes": self.bytes,
                "acro": self.acro, "problem": self.problem}


def list_outbox(workspace: Path, *, max_entries: int, max_manifest_bytes: int) -> list[OutboxEntry]:
    """The request folders of a member's outbox, read without following links (nothing is copied)."""
    try:
        workspace_fd = open_root(workspace)
    except (FileNotFoundError, NotADirectoryError):
        return []
    entries: list[OutboxEntry] = []
    try:
        try:
            outbox_fd = os.open(OUTBOX, OPEN_DIR, dir_fd=workspace_fd)
        except OSError:
            return []
        try:
            with os.scandir(outbox_fd) as listing:
                names = sorted(e.name for e in listing if e.is_dir(follow_symlinks=False)
                               and not e.name.startswith("."))  # hidden: still being written
            for name in names[:max_entries]:
                entries.append(_describe(outbox_fd, name, max_manifest_bytes))
        finally:
            os.close(outbox_fd)
    finally:
        os.close(workspace_fd)
    return entries


def _describe(outbox_fd: int, name: str, max_manifest_bytes: int) -> OutboxEntry:
    entry = OutboxEntry(name)
    if not OUTBOX_NAME.match(name):
        entry.problem = "the folder name is not a valid request name"
        return entry
    try:
        folder = os.open(name, OPEN_DIR, dir_fd=outbox_fd)
    except OSError:
        entry.problem = "not a folder"
        return entry
    try:
        with os.scandir(folder) as listing:
            for item in listing:
                info = item.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode) and item.name != MANIFEST:
                    entry.files += 1
                    entry.bytes += info.st_size
                elif stat.S_ISLNK(info.st_mode):
                    entry.problem = "holds a symbolic link: it will be refused"
        try:
            fd = os.open(MANIFEST, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
        except OSError:
            entry.problem = entry.problem or f"no {MANIFEST} yet"
            return entry
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                entry.problem = f"{MANIFEST} is not a regular file"
                return entry
            data = os.read(fd, max_manifest_bytes + 1)
        finally:
            os.close(fd)
        try:
            manifest = validate_manifest(json.loads(data.decode("utf-8")) if len(data) <= max_manifest_bytes else None)
        except (QuarantineError, UnicodeDecodeError, ValueError, RecursionError) as error:
            entry.problem = entry.problem or str(error)
            return entry
        entry.justification, entry.acro = manifest["justification"], manifest["acro"]
    finally:
        os.close(folder)
    return entry


def stage_upload(home: Path, slug: str, name: str, data: bytes) -> StagedRequest:
    """An uploaded import, written into a new staging folder."""
    staging = new_staging(home, slug)
    try:
        write_new(staging / "files" / name, data, 0o600)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return StagedRequest(staging, [QuarantinedFile(name, len(data), hashlib.sha256(data).hexdigest())])


def read_quarantined(home: Path, slug: str, request_id: int, path: str, expected_sha256: str) -> bytes:
    """A quarantined file's bytes, checked against the hash recorded when it was copied."""
    target = file_path(home, slug, request_id, path)
    fd = os.open(target, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read()
    if hashlib.sha256(data).hexdigest() != expected_sha256:
        raise QuarantineError(f"the quarantined copy of {path} no longer matches its recorded hash: it was altered")
    return data


def discard_folder(folder: Path) -> None:
    shutil.rmtree(folder, ignore_errors=True)
