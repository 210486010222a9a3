"""Walking a study folder whose files come from researchers: never follow a link, never block.

Every folder is opened relative to its parent's descriptor with `O_NOFOLLOW | O_DIRECTORY`, every
file with `O_NOFOLLOW | O_NONBLOCK`, and what was opened is checked with `fstat` against what was
listed. A symlink swapped in between listing and opening makes the open fail (and is skipped),
a FIFO swapped in opens without blocking and is skipped as not a regular file, so root never reads
through a link to outside the study. Symlinks are stored as symlinks (their targets are never
read) when they stay inside their tree; FIFOs, sockets, devices, files hard-linked from outside
the study, files over the size caps and folders nested too deep are left out, each with a reason.
"""

from __future__ import annotations

import errno
import os
import stat
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

OPEN_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
OPEN_FILE = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
MAX_DEPTH = 64


@dataclass
class Limits:
    max_file_bytes: int
    max_total_bytes: int
    max_members: int


@dataclass
class Skipped:
    path: str
    code: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"path": self.path, "code": self.code, "reason": self.reason}


@dataclass
class Entry:
    """One member found in the tree: a folder, a regular file (opened on demand) or a symlink."""

    path: str
    kind: str  # "dir" | "file" | "symlink"
    stat: os.stat_result
    target: str = ""
    open: Callable[[], int] | None = None  # returns an fd of the verified regular file, or raises Changed


class Changed(OSError):
    """The entry changed between listing and opening (a swap race, or a researcher still writing)."""


@dataclass
class WalkReport:
    skipped: list[Skipped] = field(default_factory=list)
    total_bytes: int = 0
    members: int = 0

    def skip(self, path: str, code: str, reason: str) -> None:
        self.skipped.append(Skipped(display_name(path), code, reason))

    def counts(self) -> dict[str, int]:
        """How many entries were left out, per reason code (no names: safe for logs and audit)."""
        found: dict[str, int] = {}
        for skipped in self.skipped:
            found[skipped.code] = found.get(skipped.code, 0) + 1
        return found


def display_name(path: str) -> str:
    """A path as text that is always valid UTF-8 (undecodable bytes shown as \\x escapes)."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def open_root(path: Path) -> int:
    """Open a trusted folder of the hub's own layout, refusing a symlink at its last component."""
    return os.open(path, OPEN_DIR)


class TreeWalker:
    """Walks trees below hub-owned roots, enforcing the caps across every tree of one archive."""

    def __init__(self, limits: Limits, report: WalkReport):
        self.limits = limits
        self.report = report
        self.inode_links: Counter[tuple[int, int]] = Counter()
        self._root = Path("/nonexistent")

    # The first pass counts how often each multiply-linked inode appears inside the archived trees,
    # so the second can tell a hard link made inside the study from one to a file outside it.
    def count_links(self, root: Path) -> None:
        try:
            fd = open_root(root)
        except FileNotFoundError:
            return
        try:
            self._count(fd, 0)
        finally:
            os.close(fd)

    def _count(self, dir_fd: int, depth: int) -> None:
        for name, info in _listing(dir_fd):
            if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
                self.inode_links[(info.st_dev, info.st_ino)] += 1
            elif stat.S_ISDIR(info.st_mode) and depth < MAX_DEPTH:
                try:
                    child = os.open(name, OPEN_DIR, dir_fd=dir_fd)
                except OSError:
                    continue
                try:
                    self._count(child, depth + 1)
                finally:
                    os.close(child)

    def walk(self, root: Path, prefix: str) -> Iterator[Entry]:
        """Entries of the tree at `root`, named `prefix/...`, folders before what they hold."""
        try:
            fd = open_root(root)
        except FileNotFoundError:
            return
        except OSError as error:
            code = errno.errorcode.get(error.errno, error.errno)
            self.report.skip(prefix, "unreadable", f"cannot open ({code})")
            return
        self._root = root
        try:
            info = os.fstat(fd)
            if self._admit(prefix):
                yield Entry(prefix, "dir", info)
                yield from self._walk(fd, root, prefix, 0)
        finally:
            os.close(fd)

    def walk_file(self, folder: Path, name: str, path: str) -> Iterator[Entry]:
        """The hub-written file `folder/name` (extract, manifest, vault) if it is a regular file.

        Opened without following links like the rest, but not subject to the workspace caps.
        """
        try:
            dir_fd = open_root(folder)
        except FileNotFoundError:
            return
        try:
            try:
                info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return
            if not stat.S_ISREG(info.st_mode):
                self.report.skip(path, "special-file", "not a regular file where the hub writes one")
                return
            self.report.members += 1
            yield Entry(path, "file", info, open=self._opener(dir_fd, name, path, info))
        finally:
            os.close(dir_fd)

    @staticmethod
    def _opener(dir_fd: int, name: str, path: str, info: os.stat_result) -> Callable[[], int]:
        def opener() -> int:
            try:
                fd = os.open(name, OPEN_FILE, dir_fd=dir_fd)
            except OSError as error:
                raise Changed(f"{path}: no longer a regular file") from error
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode) or (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
                os.close(fd)
                raise Changed(f"{path}: replaced while being archived")
            return fd

        return opener

    def _admit(self, path: str) -> bool:
        if self.report.members >= self.limits.max_members:
            self.report.skip(path, "over-member-cap",
                             f"over the cap of {self.limits.max_members} members per archive")
            return False
        self.report.members += 1
        return True

    def _walk(self, dir_fd: int, host_dir: Path, prefix: str, depth: int) -> Iterator[Entry]:
        for name, info in _listing(dir_fd):
            path = f"{prefix}/{name}"
            try:
                path.encode("utf-8")
            except UnicodeEncodeError:
                self.report.skip(path, "bad-name", "file name is not valid UTF-8")
                continue
            mode = info.st_mode
            if stat.S_ISDIR(mode):
                yield from self._directory(dir_fd, host_dir, name, path, info, depth)
            elif stat.S_ISLNK(mode):
                entry = self._symlink(dir_fd, host_dir, name, path, info)
                if entry and self._admit(path):
                    yield entry
            elif stat.S_ISREG(mode):
                entry = self._file(dir_fd, name, path, info)
                if entry and self._admit(path):
                    self.report.total_bytes += info.st_size
                    yield entry
            else:
                self.report.skip(path, "special-file",
                                 _kind_name(mode) + " (only files, folders and symlinks are archived)")

    def _directory(self, dir_fd: int, host_dir: Path, name: str, path: str, info: os.stat_result,
                   depth: int) -> Iterator[Entry]:
        if depth + 1 >= MAX_DEPTH:
            self.report.skip(path, "too-deep", f"folder nested deeper than {MAX_DEPTH} levels")
            return
        try:
            child = os.open(name, OPEN_DIR, dir_fd=dir_fd)
        except OSError:
            self.report.skip(path, "changed", "changed while being archived (no longer a folder)")
            return
        try:
            opened = os.fstat(child)
            if (opened.st_dev, opened.st_ino) != (info.st_dev, info.st_ino):
                self.report.skip(path, "changed", "changed while being archived (folder replaced)")
                return
            if self._admit(path):
                yield Entry(path, "dir", opened)
                yield from self._walk(child, host_dir / name, path, depth + 1)
        finally:
            os.close(child)

    def _symlink(self, dir_fd: int, host_dir: Path, name: str, path: str, info: os.stat_result) -> Entry | None:
        try:
            target = os.readlink(name, dir_fd=dir_fd)
        except OSError:
            self.report.skip(path, "changed", "changed while being archived (no longer a symlink)")
            return None
        if os.path.isabs(target) or not _resolves_inside(host_dir / name, self._root):
            self.report.skip(path, "symlink-outside",
                             "symlink pointing outside its folder (stored neither as link nor content)")
            return None
        return Entry(path, "symlink", info, target=target)

    def _file(self, dir_fd: int, name: str, path: str, info: os.stat_result) -> Entry | None:
        if info.st_size > self.limits.max_file_bytes:
            sparse = " (sparse)" if info.st_blocks * 512 < info.st_size // 2 else ""
            self.report.skip(path, "over-file-cap", f"{info.st_size} bytes{sparse}, over the cap of "
                             f"{self.limits.max_file_bytes} bytes per file (ArchiveSettings.max_file_bytes)")
            return None
        if self.report.total_bytes + info.st_size > self.limits.max_total_bytes:
            self.report.skip(path, "over-total-cap", f"over the cap of {self.limits.max_total_bytes} bytes per "
                             "archive (ArchiveSettings.max_total_bytes)")
            return None
        if info.st_nlink > 1 and self.inode_links[(info.st_dev, info.st_ino)] < info.st_nlink:
            self.report.skip(path, "hard-link-outside", "hard-linked to a file outside the study")
            return None

        return Entry(path, "file", info, open=self._opener(dir_fd, name, path, info))


def _resolves_inside(link: Path, root: Path) -> bool:
    """Does the symlink at `link` resolve (through any chain of links) to a path inside `root`?

    Only link values are read (readlink), never file contents.
    """
    resolved = os.path.realpath(link)
    root_text = os.path.realpath(root)
    return resolved == root_text or resolved.startswith(root_text + os.sep)


def _listing(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    found = []
    with os.scandir(dir_fd) as entries:
        for entry in entries:
            try:
                found.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
    found.sort(key=lambda item: item[0])
    return found


def _kind_name(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "device"
    return "special file"
