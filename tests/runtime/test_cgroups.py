"""Bubble limits through cgroups: v2 on a fake sysfs tree (this host has v1), v1 for real."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bubble_manager.runtime import cgroups
from bubble_manager.runtime.cgroups import BubbleCgroup, CgroupError, Limits

LIMITS = Limits(memory_bytes=256 * 2**20, cpu=1.5, pids=64)
REAL_ROOT = Path("/sys/fs/cgroup")


def fake_v2(tmp_path: Path, controllers: str = "cpuset cpu io memory hugetlb pids rdma misc") -> Path:
    root = tmp_path / "sys-fs-cgroup"
    root.mkdir()
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    (root / "cgroup.procs").write_text("1\n")
    return root


def fake_v1(tmp_path: Path) -> Path:
    root = tmp_path / "v1"
    for controller, marker in (("memory", "memory.limit_in_bytes"), ("cpu", "cpu.cfs_quota_us"),
                               ("pids", "cgroup.procs")):
        (root / controller).mkdir(parents=True)
        (root / controller / marker).write_text("")
    return root


def test_detect_v2_v1_and_nothing(tmp_path: Path):
    assert cgroups.detect(fake_v2(tmp_path)) == "v2"
    assert cgroups.detect(fake_v1(tmp_path)) == "v1"
    assert cgroups.detect(tmp_path / "nothing-here") is None


def test_v2_without_the_memory_controller_cannot_enforce_limits(tmp_path: Path):
    assert cgroups.detect(fake_v2(tmp_path, controllers="cpu io pids")) is None


def test_v2_writes_every_limit_and_enables_the_controllers(tmp_path: Path):
    root = fake_v2(tmp_path)
    group = cgroups.create(root, "v2", "bubble-manager", "u200001", LIMITS)
    folder = root / "bubble-manager" / "u200001"
    assert group == BubbleCgroup("v2", (str(folder),))
    assert (root / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert (root / "bubble-manager" / "cgroup.subtree_control").read_text() == "+memory +cpu +pids"
    assert (folder / "memory.max").read_text() == str(256 * 2**20)
    assert (folder / "cpu.max").read_text() == "150000 100000"
    assert (folder / "pids.max").read_text() == "64"
    assert cgroups.read_limits(group) == {"memory": str(256 * 2**20), "cpu": "150000 100000", "pids": "64"}


def test_v2_join_kill_and_remove(tmp_path: Path):
    root = fake_v2(tmp_path)
    group = cgroups.create(root, "v2", "bubble-manager", "u200002", LIMITS)
    group.join(4242)
    folder = Path(group.paths[0])
    assert (folder / "cgroup.procs").read_text() == "4242"
    assert group.pids() == {4242}
    (folder / "cgroup.procs").write_text("")   # the kernel empties it when the processes are gone
    assert group.kill_all(timeout=1) is True
    for name in os.listdir(folder):             # the kernel's interface files vanish with rmdir
        (folder / name).unlink()
    group.remove()
    assert not folder.exists()
    assert BubbleCgroup.from_dict(group.as_dict()) == group


def test_v2_kill_uses_cgroup_kill_when_the_kernel_has_it(tmp_path: Path):
    root = fake_v2(tmp_path)
    group = cgroups.create(root, "v2", "bubble-manager", "u200003", LIMITS)
    folder = Path(group.paths[0])
    (folder / "cgroup.procs").write_text("999999999\n")
    (folder / "cgroup.kill").write_text("")
    assert group.kill_all(timeout=0.1) is False    # nothing empties a fake tree
    assert (folder / "cgroup.kill").read_text() == "1"


def test_a_group_still_holding_processes_is_not_reused(tmp_path: Path):
    root = fake_v2(tmp_path)
    group = cgroups.create(root, "v2", "bubble-manager", "u200004", LIMITS)
    group.join(4242)
    with pytest.raises(CgroupError, match="still holds processes"):
        cgroups.create(root, "v2", "bubble-manager", "u200004", LIMITS)


def test_names_with_slashes_are_refused(tmp_path: Path):
    with pytest.raises(CgroupError, match="invalid cgroup names"):
        cgroups.create(fake_v2(tmp_path), "v2", "bubble-manager", "../escape", LIMITS)


def test_writes_that_fail_name_the_file(tmp_path: Path):
    root = fake_v2(tmp_path)
    (root / "bubble-manager").mkdir()
    (root / "bubble-manager" / "cgroup.subtree_control").mkdir()   # not writable as a file
    with pytest.raises(CgroupError, match="cgroup.subtree_control"):
        cgroups.create(root, "v2", "bubble-manager", "u200005", LIMITS)


def test_limits_describe_themselves_for_the_logs():
    assert LIMITS.describe() == "memory 0.25 GiB, cpu 1.5 core(s), 64 processes"


# --- the real v1 hierarchy of this host -----------------------------------------------------------

real_v1 = pytest.mark.skipif(os.geteuid() != 0 or cgroups.detect(REAL_ROOT) != "v1",
                             reason="needs root and the cgroup v1 memory, cpu and pids controllers (this CI host has "
                                    "them under /sys/fs/cgroup); the v2 code path is tested on a fake tree above")


@pytest.fixture
def real_group():
    parent = f"bubble-manager-test-{secrets.token_hex(3)}"
    made: list[BubbleCgroup] = []

    def make(limits: Limits) -> BubbleCgroup:
        group = cgroups.create(REAL_ROOT, "v1", parent, "probe", limits)
        made.append(group)
        return group

    yield make
    for group in made:
        group.kill_all()
        group.remove()
    for controller in cgroups.V1_CONTROLLERS:
        (REAL_ROOT / controller / parent).rmdir()


def run_in(group: BubbleCgroup, code: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          preexec_fn=lambda: group.join(os.getpid()))


@real_v1
@pytest.mark.bwrap
def test_v1_memory_limit_oom_kills_a_process_that_exceeds_it(real_group):
    group = real_group(Limits(memory_bytes=64 * 2**20, cpu=1, pids=64))
    assert cgroups.read_limits(group)["memory"] == str(64 * 2**20)
    hog = run_in(group, "blocks = [bytearray(8 * 2**20) for _ in range(32)]; print('survived')")
    assert hog.returncode == -9 and "survived" not in hog.stdout
    small = run_in(group, "blocks = [bytearray(8 * 2**20) for _ in range(2)]; print('fine')")
    assert small.returncode == 0 and small.stdout.strip() == "fine"


@real_v1
@pytest.mark.bwrap
def test_v1_pids_limit_refuses_extra_processes(real_group):
    group = real_group(Limits(memory_bytes=256 * 2**20, cpu=1, pids=8))
    forks = run_in(group, "import os, time\ncount = 0\ntry:\n    for _ in range(30):\n        if os.fork() == 0:\n"
                          "            time.sleep(2); os._exit(0)\n        count += 1\nexcept OSError as error:\n"
                          "    print('refused after', count, error.errno)\n")
    assert "refused after" in forks.stdout, forks
    assert int(forks.stdout.split()[2]) < 8


@real_v1
@pytest.mark.bwrap
def test_v1_cpu_quota_throttles(real_group):
    group = real_group(Limits(memory_bytes=256 * 2**20, cpu=0.2, pids=16))
    assert cgroups.read_limits(group)["cpu"] == "20000 100000"
    spin = "import time\nend = time.monotonic() + 1.0\nwhile time.monotonic() < end: pass\n" \
           "import resource; print(resource.getrusage(resource.RUSAGE_SELF).ru_utime)"
    started = time.monotonic()
    result = run_in(group, spin)
    cpu_seconds = float(result.stdout.strip())
    assert cpu_seconds < 0.5, f"used {cpu_seconds:.2f} s of CPU in 1 s of wall time under a 0.2 core quota"
    assert time.monotonic() - started >= 1.0
