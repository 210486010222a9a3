"""Receiving a study's workspaces from its collect Job (Kubernetes), before the study is archived.

The upload is a tar written from files researchers controlled: hostile input. It is never handed
to `tarfile.extract*`: each member is checked and written by hand into a fresh staging folder,
where nothing but folders and regular files is ever created, so no path can lead out of it.
Accepted: `workspaces/<member folder>/...` for this study's members and former members
(`members_ever`), and `shared/...`; folders and regular files only. Anything else (a link, a
device, an absolute or escaping path, an unknown member folder, a name twice, too many members or
too deep a path) refuses the whole upload and leaves the hub's copy as it was. Once checked, the
staging `workspaces/` and `shared/` replace the study's on the hub home, where the archive
subsystem's snapshot reads them as on a local site.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Iterable

from .spec import StudyPaths, member_dir_name

TOPS = ("workspaces", "shared")
COPY_CHUNK = 1 << 20


class UploadRefused(ValueError):
    """The upload was not accepted; `reason` is the audited rule (never a researcher's file name)."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class UploadLimits:
    max_members: int = 1_000_000
    max_depth: int = 64
    max_name_bytes: int = 4096


@dataclass
class UnpackReport:
    files: int = 0
    folders: int = 0
    bytes: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"files": self.files, "folders": self.folders, "bytes": self.bytes}


def members_ever(context: Any, study: Any) -> tuple[str, ...]:
    """The study's members, then everyone an approved amendment removed (from the audit log): whose
    workspaces a collect brings and an upload may hold. As on a local site, a former member's
    workspace stays with the study until it is archived."""
    former: list[str] = []
    for entry in context.audit.entries(study=study.slug, action="study.amended", limit=None):
        for name in entry.detail.get("remove") or []:
            if isinstance(name, str) and name not in study.members and name not in former:
                former.append(name)
    return (*study.members, *former)


def member_folders(members: Iterable[str]) -> set[str]:
    return {member_dir_name(member) for member in members}


def checked_path(name: str, members: set[str], limits: UploadLimits) -> PurePosixPath:
    """The member's relative path if it may be written, UploadRefused otherwise (pure)."""
    if len(os.fsencode(name)) > limits.max_name_bytes:
        raise UploadRefused("name-too-long", "a path in the upload is too long")
    if name.startswith("/") or "\0" in name:
        raise UploadRefused("bad-path", "the upload holds an absolute or malformed path")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        raise UploadRefused("bad-path", "the upload holds an empty or escaping path")
    if len(parts) > limits.max_depth:
        raise UploadRefused("too-deep", f"the upload nests folders deeper than {limits.max_depth}")
    if parts[0] not in TOPS:
        raise UploadRefused("bad-path", "the upload holds something outside workspaces/ and shared/")
    if parts[0] == "workspaces" and len(parts) > 1 and parts[1] not in members:
        raise UploadRefused("unknown-member", "the upload holds the workspace of someone who is not a member")
    return PurePosixPath(*parts)


def unpack(upload: Path, staging: Path, members: set[str], limits: UploadLimits = UploadLimits()) -> UnpackReport:
    """Write the upload's folders and files under `staging` (which must be new and empty)."""
    report = UnpackReport()
    staging.mkdir(mode=0o700)
    for top in TOPS:
        (staging / top).mkdir(mode=0o700)
    count = 0
    try:
        with tarfile.open(upload, mode="r:") as archive:
            for member in archive:
                count += 1
                if count > limits.max_members:
                    raise UploadRefused("too-many", f"the upload holds more than {limits.max_members} entries")
                relative = checked_path(member.name, members, limits)
                target = staging.joinpath(*relative.parts)
                if member.isdir():
                    _make_folders(staging, relative.parts)
                    report.folders += 1
                elif member.isreg():
                    _make_folders(staging, relative.parts[:-1])
                    _write_file(archive, member, target)
                    report.files += 1
                    report.bytes += member.size
                else:
                    raise UploadRefused("not-a-file", "the upload holds a link, a device or a pipe; the collect Job "
                                                      "sends folders and regular files only")
    except (tarfile.TarError, EOFError) as error:
        raise UploadRefused("not-a-tar", f"the upload is not a complete tar ({type(error).__name__})") from None
    return report


def _make_folders(staging: Path, parts: tuple[str, ...]) -> None:
    current = staging
    for part in parts:
        current = current / part
        try:
            os.mkdir(current, 0o700)
        except FileExistsError:
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                raise UploadRefused("duplicate", "the upload names a file and a folder the same") from None


def _write_file(archive: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        raise UploadRefused("duplicate", "the upload holds the same path twice") from None
    source = archive.extractfile(member)
    with os.fdopen(fd, "wb") as out:
        left = member.size
        while left:
            block = source.read(min(COPY_CHUNK, left))
            if not block:
                raise UploadRefused("not-a-tar", "the upload ends inside a file")
            out.write(block)
            left -= len(block)
    os.utime(target, (member.mtime, member.mtime), follow_symlinks=False)


def install(paths: StudyPaths, staging: Path) -> None:
    """Put the staging `workspaces/` and `shared/` in place of the study's (the old ones are removed)."""
    for top in TOPS:
        current, received = paths.root / top, staging / top
        if os.path.lexists(current):
            os.rename(current, staging / f".replaced-{top}")
        os.rename(received, current)
    fd = os.open(paths.root, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    shutil.rmtree(staging)


def receive(upload: Path, paths: StudyPaths, members: Iterable[str], *, staging_name: str,
            limits: UploadLimits = UploadLimits()) -> UnpackReport:
    """Unpack `upload` and install it for the study; on refusal nothing of the study's changes."""
    staging = paths.root / staging_name
    try:
        report = unpack(upload, staging, member_folders(members), limits)
        install(paths, staging)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return report
