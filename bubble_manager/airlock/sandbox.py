"""Running the parser child on hostile files: a bubblewrap sandbox, an unprivileged uid, limits.

With `parser_sandbox = "bwrap"` (the default), the child sees a read-only root holding `/usr`, a
minimal `/etc` and the Python it runs (nothing else of the host: no keys, no store, no quarantine,
no workspaces), a private `/proc`, `/dev` and a small `/tmp`, new pid, ipc, uts, cgroup and network
namespaces (no network device but loopback), and it runs as `parser_uid` (nobody): when the hub
is root, the outer bwrap drops to that uid with `setpriv` (no capabilities, no new privileges) and an
inner bwrap forbids new user namespaces; when the hub is not root, bwrap runs as the hub's own
unprivileged uid in a user namespace. The files reach it on stdin: nothing is mounted. Resource
limits (address space, CPU seconds, open files, written file size, no core dumps) apply either
way, and the parent kills the whole process group at the wall-clock limit or when the child
writes more than `max_report_bytes`.

`parser_sandbox = "rlimits"` is for hosts without bubblewrap (a hub pod): the same limits, as
nobody when the hub is root, in a new network namespace when the kernel allows it.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

from ..runtime.sandbox import HOST_ETC_READ_ONLY, USR_SYMLINKS
from .settings import AirlockSettings

CHILD_MODULE = "bubble_manager.airlock.parser_child"
CHILD_TMP_BYTES = 256 << 20
CLONE_NEWNET = 0x40000000
CHILD_ENV = {"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8", "HOME": "/tmp", "TMPDIR": "/tmp",
             "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
             "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0"}


class ParserError(RuntimeError):
    """The parser could not run or gave no usable answer; the message says what to do."""


@dataclass(frozen=True)
class ParserInput:
    """One file handed to the parser: its name in the request, where the hub holds it, its size."""

    path: str
    host_path: Path
    size: int
    counts: tuple[str, ...] = ()


def python_roots(executable: str = sys.executable) -> list[Path]:
    """Folders the parser's Python needs, outside /usr: its prefixes and the bubble_manager package."""
    import bubble_manager

    candidates = [Path(sys.prefix), Path(sys.base_prefix), Path(sys.exec_prefix), Path(sys.base_exec_prefix),
                  Path(executable).resolve().parent.parent, Path(bubble_manager.__file__).resolve().parent]
    roots: list[Path] = []
    for folder in sorted({c.resolve() for c in candidates if c.exists()}, key=lambda p: len(p.parts)):
        if folder == Path("/usr") or Path("/usr") in folder.parents:
            continue
        if any(root == folder or root in folder.parents for root in roots):
            continue
        roots.append(folder)
    return roots


def _parents_argv(roots: Iterable[Path]) -> list[str]:
    argv: list[str] = []
    made: set[Path] = set()
    for root in roots:
        for parent in reversed(root.parents):
            if parent == Path("/") or parent in made:
                continue
            made.add(parent)
            argv += ["--perms", "0755", "--dir", str(parent)]
    return argv


def bwrap_parser_argv(*, python: str, roots: list[Path], as_root: bool, uid: int,
                      host_paths_present: frozenset[str], bwrap: str = "/usr/bin/bwrap",
                      setpriv: str = "/usr/bin/setpriv") -> list[str]:
    """The command that runs the parser child in its sandbox (pure)."""
    command = [python, "-I", "-m", CHILD_MODULE]
    argv = [bwrap]
    if as_root:
        # bwrap run by root with --unshare-user would map the sandbox back to host uid 0: keep the
        # host's user namespace, then drop to `uid` with setpriv before anything reads a file.
        argv += ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    else:
        argv += ["--unshare-all", "--unshare-user", "--disable-userns", "--assert-userns-disabled", "--cap-drop", "ALL"]
    argv += ["--new-session", "--die-with-parent", "--tmpfs", "/", "--ro-bind", "/usr", "/usr"]
    for source, target in USR_SYMLINKS:
        if f"/{source}" in host_paths_present:
            argv += ["--symlink", source, target]
    argv += ["--dir", "/etc"]
    for path in HOST_ETC_READ_ONLY:
        if path in host_paths_present:
            argv += ["--ro-bind", path, path]
    # /tmp before the Python roots: a root under /tmp (a checkout there) must not be hidden by it
    argv += ["--perms", "1777", "--size", str(CHILD_TMP_BYTES), "--tmpfs", "/tmp"]
    argv += _parents_argv(roots)
    for root in roots:
        argv += ["--ro-bind", str(root), str(root)]
    argv += ["--proc", "/proc", "--dev", "/dev", "--remount-ro", "/", "--chdir", "/tmp", "--"]
    if as_root:
        argv += [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--no-new-privs",
                 "--inh-caps=-all", "--bounding-set=-all", "--",
                 bwrap, "--unshare-user", "--disable-userns", "--assert-userns-disabled", "--die-with-parent",
                 "--dev-bind", "/", "/", "--"]
    return argv + command


def _host_paths_present() -> frozenset[str]:
    candidates = [f"/{source}" for source, _ in USR_SYMLINKS] + list(HOST_ETC_READ_ONLY)
    return frozenset(path for path in candidates if os.path.lexists(path))


def _limits(settings: AirlockSettings, *, file_bytes: int, new_network: bool):
    memory = settings.parser_memory_bytes
    cpu = settings.parser_timeout_seconds

    def apply() -> None:
        if new_network:
            import ctypes

            ctypes.CDLL(None, use_errno=True).unshare(CLONE_NEWNET)  # best effort; checked by the tests
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_bytes, file_bytes))
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))

    return apply


def parser_command(settings: AirlockSettings) -> tuple[list[str], dict[str, Any], int | None]:
    """The argv and Popen options for this host and settings, and the uid the child itself drops to."""
    as_root = os.geteuid() == 0
    if settings.parser_sandbox == "bwrap":
        if not Path("/usr/bin/bwrap").exists():
            raise ParserError("bubblewrap is not installed (/usr/bin/bwrap) so files cannot be parsed in a sandbox; "
                              "install it (`apt-get install bubblewrap`) or set "
                              "c.AirlockSettings.parser_sandbox = 'rlimits'")
        if as_root and not shutil.which("setpriv", path="/usr/bin:/bin"):
            raise ParserError("setpriv (util-linux) is missing: the parser cannot drop to an unprivileged uid")
        argv = bwrap_parser_argv(python=sys.executable, roots=python_roots(), as_root=as_root,
                                 uid=settings.parser_uid, host_paths_present=_host_paths_present())
        preexec = _limits(settings, file_bytes=settings.max_file_bytes + (1 << 20), new_network=False)
        drop_to = None
    else:
        # The hub's Python may live where nobody cannot read it: the child loads its code, then drops
        # to parser_uid itself before it reads the first byte of a file.
        argv = [sys.executable, "-I", "-m", CHILD_MODULE]
        preexec = _limits(settings, file_bytes=settings.max_file_bytes + (1 << 20), new_network=as_root)
        drop_to = settings.parser_uid if as_root else None
    return argv, {"preexec_fn": preexec, "env": dict(CHILD_ENV), "cwd": "/"}, drop_to


def run_parser(settings: AirlockSettings, files: list[ParserInput]) -> dict[str, dict[str, Any]]:
    """Check `files` in the sandboxed child; return its report per file path, or raise ParserError."""
    argv, options, drop_to = parser_command(settings)
    header = {"options": settings.check_options(), "work_dir": "/tmp", "drop_to": drop_to,
              "files": [{"path": f.path, "size": f.size, "counts": list(f.counts)} for f in files]}
    process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True, close_fds=True, **options)
    writer = threading.Thread(target=_feed, args=(process, header, files), daemon=True)
    output = bytearray()
    errors = bytearray()
    timer = threading.Timer(settings.parser_timeout_seconds, _kill_group, args=(process,))
    stderr_reader = threading.Thread(target=_drain, args=(process.stderr, errors, 64 << 10), daemon=True)
    timer.start()
    writer.start()
    stderr_reader.start()
    too_long = False
    try:
        assert process.stdout is not None
        while chunk := process.stdout.read(1 << 16):
            output += chunk
            if len(output) > settings.max_report_bytes:
                too_long = True
                _kill_group(process)
                break
        process.wait()
    finally:
        timer.cancel()
        _kill_group(process)
        writer.join(timeout=5)
        stderr_reader.join(timeout=5)
    if too_long:
        raise ParserError(f"the parser wrote more than {settings.max_report_bytes} bytes; the request was not checked")
    if process.returncode != 0:
        cause = ("it ran over its time limit" if process.returncode in (-signal.SIGKILL, -signal.SIGXCPU)
                 else f"it exited with status {process.returncode}")
        last = bytes(errors).decode("utf-8", "replace").strip().splitlines()[-1:] or [""]
        raise ParserError(f"the file parser failed ({cause}); the request was not checked. "
                          f"Last message: {last[0][:300]}")
    return _validated(bytes(output), files)


def _feed(process: subprocess.Popen, header: dict, files: list[ParserInput]) -> None:
    assert process.stdin is not None
    try:
        process.stdin.write((json.dumps(header) + "\n").encode("utf-8"))
        for item in files:
            fd = os.open(item.host_path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as source:
                left = item.size
                while left > 0:
                    chunk = source.read(min(left, 1 << 20))
                    if not chunk:
                        raise ParserError(f"{item.path} is shorter than recorded")
                    process.stdin.write(chunk)
                    left -= len(chunk)
        process.stdin.close()
    except (BrokenPipeError, OSError, ParserError):
        _kill_group(process)


def _drain(stream, sink: bytearray, cap: int) -> None:  # noqa: ANN001 - a pipe
    while chunk := stream.read(1 << 14):
        if len(sink) < cap:
            sink += chunk[: cap - len(sink)]


def _kill_group(process: subprocess.Popen) -> None:
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


VERDICTS = {"pass", "flagged", "manual"}


def _validated(output: bytes, files: list[ParserInput]) -> dict[str, dict[str, Any]]:
    """The child's answer, shape-checked: one report per file, nothing else."""
    try:
        answer = json.loads(output.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise ParserError("the file parser gave no readable answer; the request was not checked") from None
    reports = answer.get("reports") if isinstance(answer, dict) and answer.get("ok") is True else None
    if not isinstance(reports, dict) or set(reports) != {f.path for f in files}:
        raise ParserError("the file parser's answer does not cover the request's files; the request was not checked")
    for path, report in reports.items():
        if (not isinstance(report, dict) or report.get("verdict") not in VERDICTS
                or not isinstance(report.get("flags"), list) or not isinstance(report.get("category"), str)):
            raise ParserError(f"the file parser's report on {path} is malformed; the request was not checked")
    return reports
