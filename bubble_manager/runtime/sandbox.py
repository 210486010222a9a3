"""The local sandbox of a bubble, as a `bwrap` command line (pure: no I/O, tested with plain data).

What a bubble sees: a read-only root on a tmpfs holding `/usr`, the bubble environment and a
generated minimal `/etc`; `/proc` of its own pid namespace; a private `/dev`, `/tmp`, `/dev/shm`
and home; the extract and its manifest read-only under `/data`; the member's workspace and the
study's shared folder read-write; the hub's API socket folder read-only; the folder where its own
server socket goes. Nothing else of the host: not the hub database, keys, other studies' extracts
or other workspaces. New user, pid, ipc, uts, cgroup and network namespaces (loopback only), user
namespaces disabled inside (`--disable-userns`, asserted), a new session (no TIOCSTI on the
caller's terminal), and the sandbox dies with its launcher. `bwrap` itself is started by the
launcher as the bubble's unprivileged uid, never as root (run as root, `--uid` would map back to
host uid 0).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .spec import EXTRACT_TARGET, HOME_TARGET, BubbleSpec

MANIFEST_TARGET = PurePosixPath("/data/manifest.json")
HUB_SOCKET_TARGET = PurePosixPath("/run/jupyterhub")
SERVER_SOCKET_TARGET = PurePosixPath("/run/bubble")
SERVER_SOCKET_NAME = "server.sock"
USR_SYMLINKS = (("usr/bin", "/bin"), ("usr/sbin", "/sbin"), ("usr/lib", "/lib"), ("usr/lib64", "/lib64"))
# Host /etc entries that carry no site information and that programs expect.
HOST_ETC_READ_ONLY = ("/etc/ld.so.cache", "/etc/alternatives", "/etc/mime.types")
GENERATED_ETC = ("passwd", "group", "hosts", "hostname", "nsswitch.conf", "resolv.conf")
BUBBLE_USER = "jovyan"


@dataclass(frozen=True)
class SandboxHost:
    """Host paths and ids one sandbox is built from (decided by the adapter, outside this module)."""

    uid: int
    gid: int
    bubble_env: Path
    etc_dir: Path
    socket_dir: Path | None
    hub_socket_dir: Path | None
    manifest: Path | None
    hostname: str


def etc_files(uid: int, gid: int, study: str, hostname: str) -> dict[str, str]:
    """The generated `/etc`: one user and group, loopback hosts only, no DNS server."""
    return {
        "passwd": (f"root:x:0:0:root:/root:/usr/sbin/nologin\n"
                   f"{BUBBLE_USER}:x:{uid}:{gid}:bubble of study {study}:{HOME_TARGET}:/bin/bash\n"
                   "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"),
        "group": f"root:x:0:\nstudy:x:{gid}:{BUBBLE_USER}\nnogroup:x:65534:\n",
        "hosts": f"127.0.0.1\tlocalhost {hostname}\n::1\tlocalhost\n",
        "hostname": f"{hostname}\n",
        "nsswitch.conf": "passwd: files\ngroup: files\nshadow: files\nhosts: files\nnetworks: files\n",
        "resolv.conf": "# no name service in a bubble: it has no network\n",
    }


def bwrap_argv(spec: BubbleSpec, host: SandboxHost, command: tuple[str, ...] | None = None, *,
               bwrap: str = "/usr/bin/bwrap", host_paths_present: frozenset[str] = frozenset()) -> list[str]:
    """The full `bwrap` command running `command` (default: the spec's) in the bubble's sandbox.

    `host_paths_present` names which optional host paths (USR_SYMLINKS targets and
    HOST_ETC_READ_ONLY) exist, so this function needs no file-system access.
    """
    argv = [bwrap,
            "--unshare-all", "--unshare-user", "--disable-userns", "--assert-userns-disabled",
            "--new-session", "--die-with-parent", "--cap-drop", "ALL",
            "--uid", str(host.uid), "--gid", str(host.gid), "--hostname", host.hostname,
            # The root is a tmpfs made read-only at the end: mounted first, everything else on top.
            "--tmpfs", "/",
            "--ro-bind", "/usr", "/usr"]
    for source, target in USR_SYMLINKS:
        if f"/{source}" in host_paths_present:
            argv += ["--symlink", source, target]
    argv += ["--dir", "/etc"]
    for name in GENERATED_ETC:
        argv += ["--ro-bind", str(host.etc_dir / name), f"/etc/{name}"]
    argv += ["--symlink", "/usr/share/zoneinfo/UTC", "/etc/localtime"]
    for path in HOST_ETC_READ_ONLY:
        if path in host_paths_present:
            argv += ["--ro-bind", path, path]
    argv += ["--ro-bind", str(host.bubble_env), str(host.bubble_env),
             "--proc", "/proc",
             "--dev", "/dev",
             "--tmpfs", "/dev/shm",
             "--tmpfs", "/tmp",
             "--perms", "0700", "--tmpfs", str(HOME_TARGET),
             "--dir", str(EXTRACT_TARGET.parent)]
    for mount in spec.mounts:
        argv += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), str(mount.target)]
    if host.manifest is not None:
        argv += ["--ro-bind", str(host.manifest), str(MANIFEST_TARGET)]
    if host.hub_socket_dir is not None:
        argv += ["--ro-bind", str(host.hub_socket_dir), str(HUB_SOCKET_TARGET)]
    if host.socket_dir is not None:
        argv += ["--bind", str(host.socket_dir), str(SERVER_SOCKET_TARGET)]
    argv += ["--remount-ro", "/", "--chdir", str(HOME_TARGET), "--"]
    argv += list(command if command is not None else spec.command)
    return argv


def bubble_path(bubble_env: Path) -> str:
    return f"{bubble_env}/bin:/usr/local/bin:/usr/bin:/bin"


def base_environment(spec: BubbleSpec, bubble_env: Path) -> dict[str, str]:
    """The environment every process of the bubble starts with (secrets are added by the adapter,
    passed through the launcher's pipe and bwrap's environment, never on a command line)."""
    return {
        **spec.environment,
        "PATH": bubble_path(bubble_env),
        "USER": BUBBLE_USER,
        "LOGNAME": BUBBLE_USER,
        "SHELL": "/bin/bash",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TZ": "UTC",
        "VIRTUAL_ENV": str(bubble_env),
        "JUPYTER_RUNTIME_DIR": "/tmp/jupyter-runtime",
        "MPLCONFIGDIR": "/tmp/matplotlib",
        "PYTHONNOUSERSITE": "1",
        "BUBBLE_MANIFEST": str(MANIFEST_TARGET),
    }
