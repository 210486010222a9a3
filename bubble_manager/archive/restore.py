"""Restore an archive into a folder, all or nothing.

The encrypted file is streamed once: sha256 of the ciphertext (checked against the envelope),
age decryption, zstd, tar. Members go into a staging folder beside the destination, created
through descriptors opened with `O_NOFOLLOW` (never through a link), and are refused when their
name escapes (absolute, `..`), when they are devices, FIFOs or hard links, or when a symlink
would point outside. Only after the last age chunk verified, every member matched the signed
inner manifest (same set, sizes, sha256, link targets) and the signature checked, is the staging
folder renamed into place. On any failure the staging folder is removed and the error names the
member or the chunk. Every restore, and every failed one, is audited with its reason.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import queue
import re
import shutil
import tarfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

import zstandard

from ..store import load_study
from .age import CHUNK_SIZE, AgeError, AgePayloadError, AgeReader, Identity
from .fsutil import fsync_dir
from .keys import SYSTEM_ACTOR
from .manifest import MANIFEST_FORMAT, MANIFEST_NAME, SignedDocumentError, parse, verify
from .snapshot import META_DIR, envelope_path_for, verify_envelope

COPY_BUFFER = 1 << 20
MAX_MANIFEST_BYTES = 512 << 20
MAX_NAME_BYTES = 4096
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


class RestoreError(RuntimeError):
    """The archive cannot be restored; nothing was put in place. The message names the member or chunk."""


@dataclass
class RestoreResult:
    study: str
    number: int
    archive: Path
    destination: Path
    members: int
    bytes: int
    envelope: str
    seconds: float

    def as_dict(self) -> dict[str, object]:
        return {"study": self.study, "number": self.number, "archive": str(self.archive),
                "destination": str(self.destination), "members": self.members, "bytes": self.bytes,
                "envelope": self.envelope, "seconds": round(self.seconds, 3)}


def restore(context, archive: Path, destination: Path, identities: Iterable[Identity], *, reason: str,
            actor: str = SYSTEM_ACTOR, for_study: str | None = None) -> RestoreResult:
    """Decrypt, check and put `archive` into `destination` (new or empty folder); audited."""
    started = time.monotonic()
    archive, destination = Path(archive), Path(destination)
    if not reason.strip():
        raise RestoreError("a reason is required (--reason): every restore is audited with why it was made")
    if for_study is not None:
        _require_study(context, for_study)
    _check_destination(destination)
    envelope = _read_envelope(context, archive)
    staging = destination.parent / f".{destination.name}.restore-{os.urandom(4).hex()}"
    os.mkdir(staging, 0o700)
    try:
        extracted = _extract(archive, staging, list(identities), envelope)
        try:
            extracted.create_symlinks()
            manifest = _check_manifest(context, extracted, envelope)
            extracted.keep_manifest()
        finally:
            extracted.close()
        if destination.exists():
            destination.rmdir()  # checked empty above; a non-empty folder makes this fail, not overwrite
        os.rename(staging, destination)
        fsync_dir(destination.parent)
    except BaseException as error:
        shutil.rmtree(staging, ignore_errors=True)
        study = envelope["study"] if envelope else None
        context.audit.record(actor=actor, action="archive.restore-failed", study=_existing(context, study),
                             detail={"archive": archive.name, "reason": reason, "for_study": for_study,
                                     "problem": _without_names(str(error)) or type(error).__name__})
        if isinstance(error, (AgeError, SignedDocumentError, OSError, tarfile.TarError, zstandard.ZstdError)):
            raise RestoreError(str(error)) from error
        raise
    study, number = manifest["study"], manifest["number"]
    detail = {"number": number, "archive": archive.name, "sha256": extracted.ciphertext_sha256,
              "destination": str(destination.resolve()), "reason": reason, "members": extracted.count,
              "for_study": for_study, "envelope": "checked" if envelope else "missing"}
    with context.store.transaction() as session:
        context.audit.append(session, actor=actor, action="archive.restored", study=_existing(context, study),
                             detail=detail)
        if for_study is not None:
            context.audit.append(session, actor=actor, action="archive.restored-for", study=for_study,
                                 detail={**detail, "from_study": study})
    return RestoreResult(study=study, number=number, archive=archive, destination=destination,
                         members=extracted.count, bytes=extracted.bytes,
                         envelope="checked" if envelope else "missing", seconds=time.monotonic() - started)


def _without_names(message: str) -> str:
    """The error for the audit log, with quoted member names (researchers' file names) blanked out."""
    return re.sub(r"'[^']*'", "'...'", message)[:300]


def _check_destination(destination: Path) -> None:
    if destination.is_symlink():
        raise RestoreError(f"{destination} is a symlink; restore into a real folder")
    if destination.exists():
        if not destination.is_dir() or any(destination.iterdir()):
            raise RestoreError(f"{destination} exists and is not an empty folder; choose a new --to folder")
    if not destination.parent.is_dir():
        raise RestoreError(f"{destination.parent} does not exist; create it first (the staging folder goes there)")


def _read_envelope(context, archive: Path) -> dict | None:
    if not archive.is_file():
        raise RestoreError(f"{archive} is not a file")
    if not envelope_path_for(archive).exists():
        return None
    try:
        return verify_envelope(context.verifier(), archive, check_hash=False)
    except SignedDocumentError as error:
        raise RestoreError(str(error)) from None


# --- extraction into the staging folder ---------------------------------------------------------

class _HashingSource:
    """The encrypted file as read, hashed on the way (checked against the envelope at the end)."""

    def __init__(self, raw: BinaryIO):
        self._raw = raw
        self.hash = hashlib.sha256()
        self.size = 0

    def readinto(self, buffer) -> int:
        count = self._raw.readinto(buffer) or 0
        self.hash.update(memoryview(buffer)[:count])
        self.size += count
        return count

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.hash.update(data)
        self.size += len(data)
        return data


class _StagedFile:
    """One staged file: hashed as written, closed when done."""

    def __init__(self, name: str, fd: int, mode: int, mtime: float):
        self.name, self.fd, self.mode, self.mtime = name, fd, mode, mtime
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, chunk: bytes) -> None:
        self.hash.update(chunk)
        view = memoryview(chunk)
        while view:
            view = view[os.write(self.fd, view):]
        self.size += len(chunk)

    def finish(self, files: dict[str, tuple[int, str]]) -> None:
        os.fchmod(self.fd, self.mode)
        os.utime(self.fd, (self.mtime, self.mtime))
        self.close()
        files[self.name] = (self.size, self.hash.hexdigest())

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class ForwardReader:
    """A stream that tarfile may `seek` forward only (skipping), so it reads without stream-mode copies."""

    def __init__(self, raw):
        self._raw = raw
        self._position = 0

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            data = self._raw.read()
        else:
            data = self._raw.read(size)
            if 0 < len(data) < size:
                parts = [data]
                got = len(data)
                while got < size and (more := self._raw.read(size - got)):
                    parts.append(more)
                    got += len(more)
                data = b"".join(parts)
        self._position += len(data)
        return data

    def seek(self, position: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            position += self._position
        elif whence != os.SEEK_SET:
            raise OSError("cannot seek from the end of a stream")
        if position < self._position:
            raise tarfile.ReadError("the archive asks to go backwards in a stream; it is not a plain tar")
        while self._position < position:
            if not self.read(min(COPY_BUFFER, position - self._position)):
                raise tarfile.ReadError("unexpected end of data")
        return self._position

    def copy_to(self, size: int, sink: Callable[[memoryview], None]) -> None:
        """Hand the next `size` bytes to `sink` as views of the stream's own buffers (no copy)."""
        remaining = size
        while remaining:
            view = self._raw.read_view(min(remaining, COPY_BUFFER))
            if not view:
                raise tarfile.ReadError("unexpected end of data")
            sink(view)
            remaining -= len(view)
            self._position += len(view)

    def tell(self) -> int:
        return self._position

    def seekable(self) -> bool:
        return True


class _Staging:
    """The staging tree, written only through descriptors that never follow links."""

    def __init__(self, root: Path):
        self.root = root
        self.root_fd = os.open(root, DIR_FLAGS)
        self.files: dict[str, tuple[int, str]] = {}
        self.file_names: set[str] = set()
        self.open_files: list[_StagedFile] = []
        self.dirs: set[str] = set()
        self.links: dict[str, str] = {}
        self.manifest_bytes: bytes | None = None
        self.top: str | None = None
        self.count = 0
        self.bytes = 0
        self.ciphertext_sha256 = ""
        self.ciphertext_size = 0
        self._parent_cache: tuple[str, int] | None = None

    def close(self) -> None:
        if self.root_fd < 0:
            return
        for staged in self.open_files:
            staged.close()
        if self._parent_cache:
            os.close(self._parent_cache[1])
            self._parent_cache = None
        os.close(self.root_fd)
        self.root_fd = -1

    def _parent_fd(self, relative_parent: str) -> int:
        """A descriptor of a staged folder, walked component by component without following links."""
        if self._parent_cache and self._parent_cache[0] == relative_parent:
            return self._parent_cache[1]
        fd = os.dup(self.root_fd)
        try:
            for part in [p for p in relative_parent.split("/") if p]:
                child = os.open(part, DIR_FLAGS, dir_fd=fd)
                os.close(fd)
                fd = child
        except BaseException:
            os.close(fd)
            raise
        if self._parent_cache:
            os.close(self._parent_cache[1])
        self._parent_cache = (relative_parent, fd)
        return fd

    def add(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        name = self._checked_name(member)
        if name == f"{META_DIR}/{MANIFEST_NAME}":
            self._read_manifest(tar, member)
            return
        if self.manifest_bytes is not None:
            raise RestoreError(f"member {member.name!r} comes after the archive manifest, which must be last")
        if name in self.file_names or name in self.dirs or name in self.links:
            raise RestoreError(f"member {member.name!r} appears twice")
        parent, _, base = name.rpartition("/")
        if parent and parent not in self.dirs:
            raise RestoreError(f"member {member.name!r} comes before its folder {parent!r}")
        self.count += 1
        if member.isdir():
            if name:
                os.mkdir(base, 0o700, dir_fd=self._parent_fd(parent))
            self.dirs.add(name)
        elif member.isreg():
            self._write_file(tar, member, name, parent, base)
        elif member.issym():
            self._check_link(member, name)
            self.links[name] = member.linkname
        else:
            kind = ("hard link" if member.islnk() else "device" if member.isdev() else "FIFO" if member.isfifo()
                    else f"type {member.type!r}")
            raise RestoreError(f"member {member.name!r} is a {kind}: archives hold only files, folders and symlinks")

    def _checked_name(self, member: tarfile.TarInfo) -> str:
        raw = member.name
        if "\x00" in raw or len(raw.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise RestoreError(f"member {raw!r} has an invalid name")
        if raw.startswith("/") or posixpath.isabs(raw):
            raise RestoreError(f"member {raw!r} has an absolute path: refused")
        parts = raw.rstrip("/").split("/")
        if any(part in ("", ".", "..") for part in parts):
            raise RestoreError(f"member {raw!r} has an empty, '.' or '..' path component: refused")
        if self.top is None:
            self.top = parts[0]
        elif parts[0] != self.top:
            raise RestoreError(f"member {raw!r} is outside the archive's folder {self.top!r}: refused")
        return "/".join(parts[1:])

    def _read_manifest(self, tar: tarfile.TarFile, member: tarfile.TarInfo) -> None:
        if not member.isreg() or member.size > MAX_MANIFEST_BYTES or self.manifest_bytes is not None:
            raise RestoreError(f"member {member.name!r} is not a valid archive manifest")
        source = tar.extractfile(member)
        assert source is not None
        self.manifest_bytes = source.read()

    def _write_file(self, tar: tarfile.TarFile, member: tarfile.TarInfo, name: str, parent: str, base: str) -> None:
        if member.sparse is not None:
            raise RestoreError(f"member {member.name!r} is a sparse file: archives never hold one")
        fd = os.open(base, FILE_FLAGS, 0o600, dir_fd=self._parent_fd(parent))
        target = _StagedFile(name, fd, (member.mode & 0o755) | 0o600, member.mtime)
        self.open_files.append(target)
        self.file_names.add(name)
        stream = tar.fileobj
        if isinstance(stream, ForwardReader):  # the file's bytes go from the decompressor to disk uncopied
            stream.seek(member.offset_data)
            stream.copy_to(member.size, target.write)
        else:
            source = tar.extractfile(member)
            assert source is not None
            while chunk := source.read(COPY_BUFFER):
                target.write(chunk)
        target.finish(self.files)
        self.open_files.remove(target)
        self.bytes += target.size

    def _check_link(self, member: tarfile.TarInfo, name: str) -> None:
        target = member.linkname
        if not target or "\x00" in target or posixpath.isabs(target):
            raise RestoreError(f"symlink {member.name!r} points to an absolute path: refused")
        resolved = posixpath.normpath(posixpath.join(posixpath.dirname(name), target))
        if resolved == ".." or resolved.startswith("../"):
            raise RestoreError(f"symlink {member.name!r} points outside the archive ({target!r}): refused")

    def keep_manifest(self) -> None:
        """Put the checked manifest in the restored tree too (`_archive/archive-manifest.json`)."""
        if META_DIR in self.dirs and self.manifest_bytes is not None:
            fd = os.open(MANIFEST_NAME, FILE_FLAGS, 0o600, dir_fd=self._parent_fd(META_DIR))
            with os.fdopen(fd, "wb") as out:
                out.write(self.manifest_bytes)

    def create_symlinks(self) -> None:
        """Create the links last (nothing is written through them), then check where each really leads."""
        for name, target in sorted(self.links.items()):
            parent, _, base = name.rpartition("/")
            os.symlink(target, base, dir_fd=self._parent_fd(parent))
        root = os.path.realpath(self.root)
        for name in self.links:
            resolved = os.path.realpath(self.root / name)
            if resolved != root and not resolved.startswith(root + os.sep):
                raise RestoreError(f"symlink {self.top}/{name} leads outside the archive through other links: "
                                   "refused")


class _Prefetcher:
    """A stream produced a few MiB ahead in a worker thread.

    Restoring runs three: reading and hashing the ciphertext, decrypting and decompressing it, and
    (the caller) parsing, hashing and writing the files, overlapped as `age -d | zstd -d | tar -x`
    are in three processes: hashlib and zstd release the GIL on large buffers. An error of the
    worker is raised by the caller's next read, as the same exception; nothing is read past it.
    """

    _DONE = object()

    def __init__(self, produce: Callable[[Callable[[bytes], bool]], None], depth: int = 8):
        self._queue: queue.Queue = queue.Queue(depth)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._chunk = memoryview(b"")
        self._finished = False
        self._thread = threading.Thread(target=self._run, args=(produce,), name="restore-prefetch", daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self, produce: Callable[[Callable[[bytes], bool]], None]) -> None:
        try:
            produce(self._put)
        except BaseException as error:  # handed to the reader, which raises it
            self._error = error
        finally:
            self._put(self._DONE)

    def _fill(self) -> None:
        """The next chunk, unless the stream ended (then raise the worker's error, if any)."""
        while not self._chunk and not self._finished:
            item = self._queue.get()
            if item is self._DONE:
                self._finished = True
                self._thread.join()
                if self._error is not None:
                    raise self._error
            else:
                self._chunk = memoryview(item)

    def read(self, size: int = -1) -> bytes:
        self._fill()
        if not self._chunk:
            return b""
        count = len(self._chunk) if size is None or size < 0 else min(size, len(self._chunk))
        data, self._chunk = bytes(self._chunk[:count]), self._chunk[count:]
        return data

    def read_view(self, size: int) -> memoryview:
        """Up to `size` bytes without copying them (empty at the end of the stream)."""
        self._fill()
        view, self._chunk = self._chunk[:size], self._chunk[size:]
        return view

    def readinto(self, buffer: memoryview) -> int:
        view = self.read_view(len(buffer))
        buffer[: len(view)] = view
        return len(view)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _extract(archive: Path, staging: Path, identities: list[Identity], envelope: dict | None) -> _Staging:
    tree = _Staging(staging)
    current = "(archive header)"

    def read_ciphertext(put: Callable[[bytes], bool]) -> None:  # and hash it, in a thread of its own
        while block := source.read(COPY_BUFFER):
            if not put(block):
                return

    def produce(put: Callable[[bytes], bool]) -> None:
        with AgeReader(ciphertext, identities) as reader:
            decompressor = zstandard.ZstdDecompressor()
            with decompressor.stream_reader(reader, read_size=CHUNK_SIZE, closefd=False) as plain:
                while chunk := plain.read(COPY_BUFFER):
                    if not put(chunk):
                        return
            reader.verify_to_end()

    try:
        with open(archive, "rb", buffering=COPY_BUFFER) as raw:
            source = _HashingSource(raw)
            ciphertext = _Prefetcher(read_ciphertext)
            plain = _Prefetcher(produce)
            try:
                with tarfile.open(fileobj=ForwardReader(plain), mode="r:") as tar:
                    current = "(compressed stream)"
                    for member in tar:
                        current = f"member {member.name!r}"
                        tree.add(tar, member)
                current = "(end of compressed stream)"
                while plain.read(COPY_BUFFER):
                    pass
            finally:
                plain.close()
                ciphertext.close()
        tree.ciphertext_sha256, tree.ciphertext_size = source.hash.hexdigest(), source.size
    except AgePayloadError as error:
        tree.close()
        chunk = f"chunk {error.chunk_index}" if error.chunk_index is not None else "its payload"
        raise RestoreError(f"{archive.name} is damaged at {chunk} (while reading {current}): {error}; "
                           "nothing was restored") from None
    except AgeError as error:
        tree.close()
        raise RestoreError(f"{archive.name} cannot be decrypted: {error}") from None
    except (tarfile.TarError, zstandard.ZstdError, EOFError) as error:
        tree.close()
        raise RestoreError(f"{archive.name}: {current} is damaged ({error}); nothing was restored") from None
    except RestoreError as error:
        tree.close()
        raise RestoreError(f"{archive.name}: {error}; nothing was restored") from None
    except BaseException:
        tree.close()
        raise
    if envelope is not None and (tree.ciphertext_sha256, tree.ciphertext_size) != (envelope["sha256"],
                                                                                   envelope["size"]):
        tree.close()
        raise RestoreError(f"{archive.name} does not match its signed envelope (sha256 or size): altered")
    return tree


def _check_manifest(context, tree: _Staging, envelope: dict | None) -> dict:
    if tree.manifest_bytes is None:
        raise RestoreError("the archive holds no signed manifest: it was not made by bubble-manager or was cut")
    manifest = verify(parse(tree.manifest_bytes, "archive manifest"), context.verifier(), MANIFEST_FORMAT,
                      "the archive manifest")
    if manifest.get("study") != tree.top:
        raise RestoreError(f"the manifest is for study {manifest.get('study')!r}, the archive folder is {tree.top!r}")
    if envelope is not None and (envelope["study"], envelope["number"]) != (manifest["study"], manifest["number"]):
        raise RestoreError("the envelope and the manifest name different archives: one of them was swapped")
    prefix = f"{tree.top}/"
    expected: dict[str, dict] = {}
    for record in manifest["members"]:
        path = record["path"]
        expected["" if path == tree.top else path[len(prefix):] if path.startswith(prefix) else "\x00" + path] = record
    found = {**{name: "dir" for name in tree.dirs}, **{name: "file" for name in tree.files},
             **{name: "symlink" for name in tree.links}}
    for name in sorted(set(expected) | set(found)):
        shown = f"{tree.top}/{name}" if name else tree.top
        record = expected.get(name)
        if record is None:
            raise RestoreError(f"member {shown!r} is not in the signed manifest: added")
        if name not in found:
            raise RestoreError(f"member {record['path']!r} of the signed manifest is missing from the archive")
        if record["type"] != found[name]:
            raise RestoreError(f"member {shown!r} is a {found[name]}, the manifest says {record['type']}")
        if found[name] == "file" and tree.files[name] != (record["size"], record["sha256"]):
            raise RestoreError(f"member {shown!r} does not match the sha256 or size in the signed manifest: altered")
        if found[name] == "symlink" and tree.links[name] != record["target"]:
            raise RestoreError(f"symlink {shown!r} does not point where the signed manifest says")
    return manifest


def _require_study(context, slug: str) -> None:
    with context.store.transaction() as session:
        if load_study(session, slug) is None:
            raise RestoreError(f"--for-study {slug}: no such study; the new study must exist before it reuses data")


def _existing(context, slug: str | None) -> str | None:
    if not slug:
        return None
    with context.store.transaction() as session:
        return slug if load_study(session, slug) is not None else None

