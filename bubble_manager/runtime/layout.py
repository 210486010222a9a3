"""Host folders and permissions behind local bubbles (the I/O edge of `sandbox.py`).

`bwrap` runs as the bubble's uid, so every path it mounts must be reachable by that uid. The
study's folder is `root:<study gid> 0750`; its extract and manifest `root:<study gid> 0440`;
`workspaces/` `root:<study gid> 0750` and each member's workspace `<member uid>:<study gid> 0700`;
`shared/` `root:<study gid> 2770` (set-gid: files stay the study's). A bubble of another study has
another uid and gid and cannot read any of it, even if it could name it. Workspaces are created
here, never deleted.

Under `runtime_dir` (root): `hub/` holds the hub's API socket; `proxy/` (0700) the proxy's API
socket; `bubbles/u<uid>/` (0711) holds the
generated `/etc` of that bubble, its server socket folder `sock/` (owned by the bubble uid), and
the launcher's `state.json` and `bubble.log` (root only).
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

from .sandbox import GENERATED_ETC, SERVER_SOCKET_NAME, etc_files
from .settings import LocalBubbles
from .spec import StudyPaths


class LayoutError(RuntimeError):
    """A host folder a bubble needs is missing or cannot be reached by the bubble's uid."""


def _ensure_dir(path: Path, uid: int, gid: int, mode: int) -> None:
    path.mkdir(exist_ok=True)
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
        raise LayoutError(f"{path} must be a folder, not a link or a file; move it away")
    if (info.st_uid, info.st_gid) != (uid, gid):
        os.chown(path, uid, gid, follow_symlinks=False)
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)


def _ensure_file(path: Path, uid: int, gid: int, mode: int) -> None:
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        raise LayoutError(f"{path} is missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise LayoutError(f"{path} must be a regular file, not a link or a folder")
    if (info.st_uid, info.st_gid) != (uid, gid):
        os.chown(path, uid, gid, follow_symlinks=False)
    if stat.S_IMODE(info.st_mode) != mode:
        os.chmod(path, mode)


def check_reachable(path: Path, uid: int, gid: int) -> None:
    """Raise LayoutError unless a process with `uid`/`gid` (no other group) can search every folder
    leading to `path`."""
    path = Path(path).absolute()
    for folder in [*reversed(path.parents)]:
        info = os.stat(folder)
        if info.st_uid == uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid == gid:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            raise LayoutError(f"bubble uid {uid} cannot reach {path}: {folder} is not searchable by other users "
                              f"(mode {stat.S_IMODE(info.st_mode):o}); `chmod o+x {folder}` or move the folder "
                              "(for BUBBLE_MANAGER_HOME, runtime_dir and the bubble environment)")


def prepare_study(paths: StudyPaths, gid: int) -> None:
    """Give the study's folder, extract and manifest to the study's group, read-only."""
    if not paths.root.is_dir():
        raise LayoutError(f"study folder {paths.root} is missing: the study has no extract yet")
    _ensure_dir(paths.root, 0, gid, 0o750)
    _ensure_file(paths.extract, 0, gid, 0o440)
    _ensure_file(paths.manifest, 0, gid, 0o440)
    _ensure_dir(paths.workspaces, 0, gid, 0o750)
    _ensure_dir(paths.shared, 0, gid, 0o2770)


def prepare_workspace(paths: StudyPaths, member: str, uid: int, gid: int) -> Path:
    """The member's workspace, created on first use, owned by the member's bubble uid."""
    workspace = paths.workspace(member)
    _ensure_dir(workspace, uid, gid, 0o700)
    return workspace


def prepare_runtime(settings: LocalBubbles) -> None:
    """The runtime folder and the hub's socket folder (read-only in bubbles, the socket is 0666)."""
    root = settings.runtime_path
    root.mkdir(parents=True, exist_ok=True)
    _ensure_dir(root, 0, 0, 0o711)
    _ensure_dir(settings.hub_socket_dir, 0, 0, 0o755)
    _ensure_dir(settings.proxy_api_socket.parent, 0, 0, 0o700)
    _ensure_dir(settings.bubbles_dir, 0, 0, 0o711)


@dataclass(frozen=True)
class BubbleRunDir:
    """One bubble's folder under `runtime_dir/bubbles/`."""

    path: Path

    @property
    def etc(self) -> Path:
        return self.path / "etc"

    @property
    def sock(self) -> Path:
        return self.path / "sock"

    @property
    def server_socket(self) -> Path:
        return self.sock / SERVER_SOCKET_NAME

    @property
    def state(self) -> Path:
        return self.path / "state.json"

    @property
    def log(self) -> Path:
        return self.path / "bubble.log"


def run_dir_name(uid: int, suffix: str = "") -> str:
    return f"u{uid}{suffix}"


def prepare_run_dir(settings: LocalBubbles, name: str, uid: int, gid: int, study: str, hostname: str) -> BubbleRunDir:
    """Create (or refresh) a bubble's run folder: generated /etc, an empty socket folder."""
    prepare_runtime(settings)
    run = BubbleRunDir(settings.bubbles_dir / name)
    _ensure_dir(run.path, 0, 0, 0o711)
    _ensure_dir(run.etc, 0, 0, 0o755)
    for file_name, content in etc_files(uid, gid, study, hostname).items():
        target = run.etc / file_name
        temporary = target.with_name(f".{file_name}.tmp")
        temporary.write_text(content)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    if run.sock.exists():
        shutil.rmtree(run.sock)
    run.sock.mkdir()
    os.chown(run.sock, uid, gid)
    os.chmod(run.sock, 0o700)
    return run


def remove_run_dir(run: BubbleRunDir, *, keep_log: bool = True) -> None:
    """Remove what a stopped bubble leaves in its run folder (its log stays for the admins)."""
    for name in (*GENERATED_ETC,):
        (run.etc / name).unlink(missing_ok=True)
    for path in (run.etc, ):
        try:
            path.rmdir()
        except OSError:
            pass
    if run.sock.exists():
        shutil.rmtree(run.sock, ignore_errors=True)
    run.state.unlink(missing_ok=True)
    if not keep_log:
        run.log.unlink(missing_ok=True)
        try:
            run.path.rmdir()
        except OSError:
            pass
