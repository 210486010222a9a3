"""Memory, CPU and process limits of a bubble through cgroups: v2 (unified) or v1 controllers.

Each bubble gets a group of its own under `<cgroup_root>/<controller>/<parent>/<name>` (v1, one
per controller: memory, cpu, pids) or `<cgroup_root>/<parent>/<name>` (v2). The launcher puts the
sandbox in it before `bwrap` starts, so every process of the bubble is counted; the memory
controller OOM-kills inside the group when it runs over, the CPU controller throttles, the pids
controller refuses forks. The group is also how the launcher finds and kills every process of the
bubble at stop or expiry. This module has no imports beyond the standard library: the launcher
loads it before anything else.
"""

from __future__ import annotations

import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

CPU_PERIOD_US = 100_000
V1_CONTROLLERS = ("memory", "cpu", "pids")
V2_CONTROLLERS = ("memory", "cpu", "pids")


class CgroupError(RuntimeError):
    """A bubble's cgroup could not be created, joined or removed."""


@dataclass(frozen=True)
class Limits:
    memory_bytes: int
    cpu: float
    pids: int

    def describe(self) -> str:
        return (f"memory {self.memory_bytes / 2**30:.2f} GiB, cpu {self.cpu:g} core(s), "
                f"{self.pids} processes")


def detect(root: Path) -> str | None:
    """'v2' when the unified hierarchy offers memory, cpu and pids; 'v1' when those v1 controllers
    are mounted; None when limits cannot be enforced here."""
    root = Path(root)
    controllers = root / "cgroup.controllers"
    if controllers.is_file():
        available = set(controllers.read_text().split())
        return "v2" if set(V2_CONTROLLERS) <= available else None
    # The root group of the v1 pids controller has no pids.max; its children have.
    v1_markers = (root / "memory" / "memory.limit_in_bytes", root / "cpu" / "cpu.cfs_quota_us",
                  root / "pids" / "cgroup.procs")
    if all(marker.is_file() for marker in v1_markers):
        return "v1"
    return None


@dataclass(frozen=True)
class BubbleCgroup:
    """The group(s) of one bubble; `paths` are the folders a process joins (one in v2, three in v1)."""

    version: str
    paths: tuple[str, ...]

    def as_dict(self) -> dict:
        return {"version": self.version, "paths": list(self.paths)}

    @classmethod
    def from_dict(cls, data: dict) -> "BubbleCgroup":
        return cls(version=data["version"], paths=tuple(data["paths"]))

    @property
    def _procs_folder(self) -> Path:
        if self.version == "v1":
            return next(Path(p) for p in self.paths if Path(p).parent.parent.name == "pids")
        return Path(self.paths[0])

    def join(self, pid: int) -> None:
        """Move process `pid` (with its future children) into every group of this bubble."""
        for path in self.paths:
            _write(Path(path) / "cgroup.procs", str(pid))

    def pids(self) -> set[int]:
        try:
            text = (self._procs_folder / "cgroup.procs").read_text()
        except FileNotFoundError:
            return set()
        return {int(line) for line in text.split()}

    def signal_all(self, signum: int) -> int:
        sent = 0
        for pid in self.pids():
            try:
                os.kill(pid, signum)
                sent += 1
            except ProcessLookupError:
                pass
        return sent

    def kill_all(self, timeout: float = 5.0) -> bool:
        """SIGKILL every process of the bubble until none is left; True when the group is empty."""
        kill_file = self._procs_folder / "cgroup.kill"
        deadline = time.monotonic() + timeout
        while self.pids():
            if self.version == "v2" and kill_file.exists():
                _write(kill_file, "1")
            else:
                self.signal_all(signal.SIGKILL)
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def remove(self) -> None:
        """Delete the bubble's groups (they must be empty)."""
        for path in self.paths:
            try:
                os.rmdir(path)
            except FileNotFoundError:
                pass
            except OSError as error:
                raise CgroupError(f"cannot remove cgroup {path}: {error}") from error


def create(root: Path, version: str, parent: str, name: str, limits: Limits) -> BubbleCgroup:
    """Create the bubble's group(s) with `limits` written in; a leftover empty group is reused."""
    if not name or "/" in name or not parent or "/" in parent.strip("/"):
        raise CgroupError(f"invalid cgroup names {parent!r}/{name!r}")
    root = Path(root)
    if version == "v1":
        return _create_v1(root, parent, name, limits)
    if version == "v2":
        return _create_v2(root, parent, name, limits)
    raise CgroupError(f"unknown cgroup version {version!r}")


def _fresh_group(path: Path) -> None:
    path.parent.mkdir(exist_ok=True)
    try:
        path.mkdir()
    except FileExistsError:
        procs = path / "cgroup.procs"
        if procs.exists() and procs.read_text().split():
            raise CgroupError(f"cgroup {path} still holds processes: is this bubble already running?") from None


def _create_v1(root: Path, parent: str, name: str, limits: Limits) -> BubbleCgroup:
    paths = tuple(root / controller / parent / name for controller in V1_CONTROLLERS)
    memory, cpu, pids = paths
    for path in paths:
        _fresh_group(path)
    _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
    if (memory / "memory.memsw.limit_in_bytes").exists():  # with swap accounting: no swapping past the limit
        _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
    _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
    _write(cpu / "cpu.cfs_quota_us", str(max(1000, int(limits.cpu * CPU_PERIOD_US))))
    _write(pids / "pids.max", str(limits.pids))
    return BubbleCgroup("v1", tuple(str(p) for p in paths))


def _create_v2(root: Path, parent: str, name: str, limits: Limits) -> BubbleCgroup:
    enable = " ".join(f"+{c}" for c in V2_CONTROLLERS)
    parent_path = root / parent
    _write(root / "cgroup.subtree_control", enable)
    parent_path.mkdir(exist_ok=True)
    _write(parent_path / "cgroup.subtree_control", enable)
    group = parent_path / name
    _fresh_group(group)
    _write(group / "memory.max", str(limits.memory_bytes))
    if (group / "memory.swap.max").exists():  # the kernel offers it when swap is accounted
        _write(group / "memory.swap.max", "0")
    _write(group / "cpu.max", f"{max(1000, int(limits.cpu * CPU_PERIOD_US))} {CPU_PERIOD_US}")
    _write(group / "pids.max", str(limits.pids))
    return BubbleCgroup("v2", (str(group),))


def read_limits(cgroup: BubbleCgroup) -> dict[str, str]:
    """What the kernel says is in force, for logs and tests."""
    if cgroup.version == "v1":
        memory, cpu, pids = (Path(p) for p in cgroup.paths)
        return {"memory": (memory / "memory.limit_in_bytes").read_text().strip(),
                "cpu": f"{(cpu / 'cpu.cfs_quota_us').read_text().strip()} {(cpu / 'cpu.cfs_period_us').read_text().strip()}",
                "pids": (pids / "pids.max").read_text().strip()}
    group = Path(cgroup.paths[0])
    return {"memory": (group / "memory.max").read_text().strip(), "cpu": (group / "cpu.max").read_text().strip(),
            "pids": (group / "pids.max").read_text().strip()}


def _write(path: Path, value: str) -> None:
    try:
        with open(path, "w") as handle:
            handle.write(value)
    except OSError as error:
        raise CgroupError(f"cannot write {value!r} to {path}: {error.strerror or error}") from error
