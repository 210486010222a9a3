"""Small durable-file helpers shared by the key store, snapshots, restores and purges."""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
from pathlib import Path
from typing import Iterator


def fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def private_dir(path: Path) -> Path:
    """Create `path` (and parents) if needed and make it root-only (0700)."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o700)
    return path


def write_new(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Create `path` exclusively with `mode` (never through a link), write everything, fsync."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes, mode: int = 0o600) -> None:
    """Replace `path` with `data` all at once: temporary file, fsync, rename, fsync the folder."""
    temp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        write_new(temp, data, mode)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
    fsync_dir(path.parent)


def shred_file(path: Path) -> bool:
    """Overwrite a regular file with random bytes, fsync, unlink; False if it was not there.

    On journaling or copy-on-write file systems and SSDs the old blocks may survive the
    overwrite: this is defence in depth, the real protection is that only ciphertext and
    custodian-encrypted shares are ever written (see docs/archives.md).
    """
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return False
    except OSError:  # a symlink or something else that is not ours to overwrite: just unlink it
        os.unlink(path)
        return True
    try:
        size = os.fstat(fd).st_size
        block = 1 << 20
        written = 0
        while written < size:
            written += os.write(fd, secrets.token_bytes(min(block, size - written)))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.unlink(path)
    return True


def shred_tree(root: Path) -> list[str]:
    """Shred every file under `root` (never following links), remove the folders; return names removed."""
    removed: list[str] = []
    if not root.exists() and not root.is_symlink():
        return removed
    if root.is_symlink() or not root.is_dir():
        shred_file(root)
        return [root.name]
    for directory, folders, files in os.walk(root, topdown=False, followlinks=False):
        for name in files:
            shred_file(Path(directory) / name)
            removed.append(os.path.relpath(Path(directory) / name, root))
        for name in folders:
            entry = Path(directory) / name
            if entry.is_symlink():
                entry.unlink()
            else:
                entry.rmdir()
    root.rmdir()
    fsync_dir(root.parent)
    return removed


@contextlib.contextmanager
def locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock held for the block (serialises processes on one host)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
