"""Approved imports reach the study's shared folder (`studies/<slug>/shared/imports/`).

The shared folder is writable by the study's bubbles, so it is hostile ground: the hub opens it
and its `imports/` folder level by level without following links, creates the file exclusively
(`O_EXCL | O_NOFOLLOW`), writes and fsyncs it, and gives it to the study's group, read-only
(0440: members read it, and copy it to change it).
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from ..archive.walk import OPEN_DIR, open_root
from ..runtime.spec import StudyPaths

IMPORTS = "imports"


class DeliveryError(RuntimeError):
    """The import could not be written into the shared folder; the message says what to fix."""


def _open_child_dir(parent_fd: int, name: str, gid: int) -> int:
    """Open (creating it, root:<study gid> 2770, if missing) a folder without following a link."""
    created = False
    try:
        os.mkdir(name, 0o700, dir_fd=parent_fd)
        created = True
    except FileExistsError:
        pass
    try:
        fd = os.open(name, OPEN_DIR, dir_fd=parent_fd)
    except OSError as error:
        if error.errno in (errno.ELOOP, errno.ENOTDIR):
            raise DeliveryError(f"{name}/ in the study's folder is a link or a file, not a folder; "
                                "a member must move it away before imports can be delivered") from None
        raise
    if created:
        os.fchown(fd, 0, gid)
        os.fchmod(fd, 0o2770)
    return fd


def deliver_import(home: Path, slug: str, file_name: str, data: bytes, gid: int) -> str:
    """Write `data` as `shared/imports/<file_name>`; return that path relative to the study folder."""
    paths = StudyPaths(home, slug)
    try:
        study_fd = open_root(paths.root)
    except FileNotFoundError:
        raise DeliveryError(f"study {slug} has no folder yet (its extract was never built); activate it first") from None
    opened = [study_fd]
    try:
        opened.append(_open_child_dir(study_fd, "shared", gid))
        opened.append(_open_child_dir(opened[-1], IMPORTS, gid))
        try:
            fd = os.open(file_name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o440,
                         dir_fd=opened[-1])
        except FileExistsError:
            raise DeliveryError(f"shared/{IMPORTS}/{file_name} already exists; a member must move it away") from None
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
            os.fchown(fd, 0, gid)
            os.fchmod(fd, 0o440)
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise DeliveryError("the delivered import is not a regular file")
        finally:
            os.close(fd)
        os.fsync(opened[-1])
    finally:
        for fd in reversed(opened):
            os.close(fd)
    return f"shared/{IMPORTS}/{file_name}"
