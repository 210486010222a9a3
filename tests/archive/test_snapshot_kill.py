"""kill -9 during a snapshot, at several points, leaves no half archive and no stray temporary file."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from bubble_manager.archive.snapshot import snapshot, verify_envelope
from bubble_manager.store import ArchiveRow

from .conftest import make_study, write_study_files

WORKSPACE_BYTES = 48 << 20


def start_snapshot(home, slug):
    return subprocess.Popen([sys.executable, "-m", "bubble_manager.cli", "--home", str(home), "archive", "snapshot",
                             slug, "--actor", "killed-run"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def temporary_file_sizes(folder):
    sizes = []
    for path in folder.glob(".*.tar.zst.age.*.tmp") if folder.exists() else ():
        try:
            sizes.append(path.stat().st_size)
        except FileNotFoundError:  # renamed into place (or removed) since the listing
            pass
    return sizes


def kill_when(process, folder, condition, timeout=60.0):
    """SIGKILL the process as soon as `condition(temp file sizes)` holds; True if it was still running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        sizes = temporary_file_sizes(folder)
        if condition(sizes):
            process.send_signal(signal.SIGKILL)
            process.wait()
            return True
        time.sleep(0.0005)
    process.kill()
    pytest.fail("the snapshot never reached the kill point")


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_kill_9_at_several_points_then_the_next_run_cleans_up(sqlite_context, custodians, frozen_clock):
    slug = make_study(sqlite_context, frozen_clock)
    files = write_study_files(sqlite_context, slug)
    alice = files.paths.workspace("alice")
    for index in range(6):
        (alice / f"chunk-{index}.bin").write_bytes(os.urandom(WORKSPACE_BYTES // 6))
    folder = sqlite_context.home / "archives" / slug
    kill_points = {
        "temporary file created": lambda sizes: len(sizes) > 0,
        "a quarter written": lambda sizes: any(s > WORKSPACE_BYTES // 4 for s in sizes),
        "most written": lambda sizes: any(s > WORKSPACE_BYTES * 3 // 4 for s in sizes),
        "all data written (environment, audit, manifest, envelope)": lambda sizes: any(
            s > WORKSPACE_BYTES for s in sizes),
    }
    killed = []
    for name, condition in kill_points.items():
        process = start_snapshot(sqlite_context.home, slug)
        if kill_when(process, folder, condition):
            killed.append(name)
    assert len(killed) >= 3, f"too few kills landed mid-snapshot: {killed}"
    assert list(folder.glob(".*.tmp")), "a killed run should have left a temporary file behind"
    result = snapshot(sqlite_context, slug, actor="next-run")
    assert not list(folder.glob(".*.tmp"))
    archives = sorted(folder.glob(f"{slug}-*.tar.zst.age"))
    with sqlite_context.store.transaction() as session:
        recorded = {row.number: row.sha256 for row in session.query(ArchiveRow)}
    assert result.number in recorded and len(archives) == len(recorded)
    for path in archives:  # whatever exists is complete, signed, recorded
        envelope = verify_envelope(sqlite_context.verifier(), path)
        assert recorded[envelope["number"]] == envelope["sha256"]
