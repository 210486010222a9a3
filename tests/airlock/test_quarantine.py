"""Copying an outbox request into the quarantine: hostile files are refused, never read through."""

from __future__ import annotations

import ctypes
import json
import os
import stat
import struct
import threading
from pathlib import Path

import pytest

from bubble_manager.airlock import quarantine
from bubble_manager.airlock.quarantine import QuarantineError, list_outbox, stage_outbox_request

LIMITS = {"max_file_bytes": 1 << 20, "max_total_bytes": 4 << 20, "max_files": 50, "max_manifest_bytes": 64 << 10}
IN_ACCESS, IN_OPEN = 0x00000001, 0x00000020
IN_NONBLOCK = 0o4000


class OpenWatch:
    """inotify on one file: did anything open or read it?"""

    def __init__(self, path: Path):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(IN_NONBLOCK)
        assert self.fd >= 0
        assert self.libc.inotify_add_watch(self.fd, str(path).encode(), IN_OPEN | IN_ACCESS) >= 0

    def events(self) -> list[int]:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return []
        masks, offset = [], 0
        while offset < len(data):
            _, mask, _, length = struct.unpack_from("iIII", data, offset)
            masks.append(mask)
            offset += 16 + length
        return masks

    def close(self) -> None:
        os.close(self.fd)


def manifest(**extra) -> str:
    return json.dumps({"format": quarantine.MANIFEST_FORMAT, "justification": "Table 2 of the paper", **extra})


@pytest.fixture
def home(tmp_path) -> Path:
    (tmp_path / "home" / "keys").mkdir(parents=True)
    key = tmp_path / "home" / "keys" / "hub-signing.key"
    key.write_text("-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n")
    key.chmod(0o600)
    return tmp_path / "home"


@pytest.fixture
def workspace(home) -> Path:
    folder = home / "studies" / "alpha" / "workspaces" / "alice-1234"
    (folder / "outbox" / "table2").mkdir(parents=True)
    (folder / "outbox" / "table2" / quarantine.MANIFEST).write_text(manifest(counts={"t.csv": ["n"]}))
    (folder / "outbox" / "table2" / "t.csv").write_text("group,n\na,12\n")
    return folder


def stage(home: Path, workspace: Path, name: str = "table2"):
    return stage_outbox_request(home, "alpha", workspace, name, **LIMITS)


def leftovers(home: Path) -> list[str]:
    root = quarantine.study_quarantine(home, "alpha")
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_a_request_is_copied_hashed_and_kept_root_only(home, workspace):
    (workspace / "outbox" / "table2" / "figures").mkdir()
    (workspace / "outbox" / "table2" / "figures" / "f.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    staged = stage(home, workspace)
    assert [f.path for f in staged.files] == ["figures/f.png", "t.csv"]
    assert staged.manifest["justification"] == "Table 2 of the paper" and staged.manifest["counts"] == {"t.csv": ["n"]}
    copy = staged.host_path("t.csv")
    assert copy.read_text() == "group,n\na,12\n" and stat.S_IMODE(copy.stat().st_mode) == 0o600
    import hashlib

    assert staged.files[1].sha256 == hashlib.sha256(b"group,n\na,12\n").hexdigest()
    for folder in (quarantine.airlock_root(home), quarantine.study_quarantine(home, "alpha"), staged.folder):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700 and folder.stat().st_uid == 0
    final = quarantine.commit_staging(staged.folder, home, "alpha", 7)
    assert final == quarantine.request_folder(home, "alpha", 7) and (final / "files" / "t.csv").exists()


def test_a_symlink_to_the_hub_keys_is_refused_without_being_read(home, workspace):
    key = home / "keys" / "hub-signing.key"
    (workspace / "outbox" / "table2" / "t.csv").unlink()
    (workspace / "outbox" / "table2" / "t.csv").symlink_to(key)
    watch = OpenWatch(key)
    try:
        key.read_bytes()
        assert watch.events(), "positive control: inotify sees a read of the key"
        with pytest.raises(QuarantineError) as refused:
            stage(home, workspace)
        assert watch.events() == [], "the key was opened or read"
    finally:
        watch.close()
    assert refused.value.codes() == {"symlink": 1} and "t.csv" in str(refused.value)
    assert leftovers(home) == []
    assert b"PRIVATE KEY" not in b"".join(p.read_bytes() for p in quarantine.airlock_root(home).rglob("*")
                                          if p.is_file())


def test_even_a_symlink_inside_the_request_is_refused(home, workspace):
    (workspace / "outbox" / "table2" / "again.csv").symlink_to("t.csv")
    with pytest.raises(QuarantineError) as refused:
        stage(home, workspace)
    assert refused.value.codes() == {"symlink": 1}


def test_an_outbox_that_is_a_link_is_refused(home, workspace):
    os.rename(workspace / "outbox", workspace / "real-outbox")
    (workspace / "outbox").symlink_to(home / "keys")
    with pytest.raises(QuarantineError, match="not a folder"):
        stage(home, workspace, "table2")
    (workspace / "outbox").unlink()
    (workspace / "outbox").mkdir()
    (workspace / "outbox" / "table2").symlink_to(workspace / "real-outbox" / "table2")
    with pytest.raises(QuarantineError, match="not a folder"):
        stage(home, workspace, "table2")


def test_a_fifo_is_refused_without_blocking(home, workspace):
    os.mkfifo(workspace / "outbox" / "table2" / "pipe.csv")
    result: dict = {}
    worker = threading.Thread(target=lambda: result.update(error=_stage_error(home, workspace)), daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "the copy blocked on the FIFO"
    assert result["error"].codes() == {"special-file": 1}


def _stage_error(home, workspace):
    try:
        stage(home, workspace)
    except QuarantineError as error:
        return error
    return None


def test_a_device_is_refused(home, workspace):
    os.mknod(workspace / "outbox" / "table2" / "null.csv", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(QuarantineError) as refused:
        stage(home, workspace)
    assert refused.value.codes() == {"special-file": 1} and "device" in str(refused.value)


def test_a_hard_link_to_a_file_outside_the_request_is_refused(home, workspace):
    (workspace / "private.csv").write_text("kept in the bubble\n")
    os.link(workspace / "private.csv", workspace / "outbox" / "table2" / "copy.csv")
    with pytest.raises(QuarantineError) as refused:
        stage(home, workspace)
    assert refused.value.codes() == {"hard-link-outside": 1}


def test_sizes_and_counts_are_capped(home, workspace):
    (workspace / "outbox" / "table2" / "big.csv").write_bytes(b"x" * ((1 << 20) + 1))
    with pytest.raises(QuarantineError) as refused:
        stage(home, workspace)
    assert refused.value.codes() == {"over-file-cap": 1}
    (workspace / "outbox" / "table2" / "big.csv").unlink()
    for number in range(60):
        (workspace / "outbox" / "table2" / f"part{number:02d}.csv").write_text("a\n")
    with pytest.raises(QuarantineError) as refused:
        stage(home, workspace)
    assert "over-member-cap" in refused.value.codes()
    assert leftovers(home) == []


@pytest.mark.parametrize("content, message", [
    (None, "has no request.json"),
    ("{not json", "not valid JSON"),
    (json.dumps({"format": "other/1", "justification": "x"}), "is not a bubble-manager-output-request/1"),
    (manifest(justification="  "), "has no justification"),
    (manifest(counts=["n"]), "must map file paths"),
])
def test_a_bad_manifest_is_refused_with_no_partial_copy(home, workspace, content, message):
    target = workspace / "outbox" / "table2" / quarantine.MANIFEST
    if content is None:
        target.unlink()
    else:
        target.write_text(content)
    with pytest.raises(QuarantineError, match=message):
        stage(home, workspace)
    assert leftovers(home) == []


def test_names_are_checked(home, workspace):
    with pytest.raises(QuarantineError, match="not an outbox request name"):
        stage(home, workspace, "../keys")
    with pytest.raises(QuarantineError, match="no outbox request 'absent'"):
        stage(home, workspace, "absent")
    bad = os.fsencode(str(workspace / "outbox" / "table2")) + b"/caf\xe9.csv"
    with open(bad, "wb") as handle:
        handle.write(b"a\n")
    with pytest.raises(QuarantineError) as refused:
        stage(home, workspace)
    assert refused.value.codes() == {"bad-name": 1}


def test_the_outbox_listing_reads_manifests_without_following_links(home, workspace):
    (workspace / "outbox" / "linked").mkdir()
    (workspace / "outbox" / "linked" / quarantine.MANIFEST).symlink_to(home / "keys" / "hub-signing.key")
    (workspace / "outbox" / "elsewhere").symlink_to(home / "keys")
    entries = {e.name: e for e in list_outbox(workspace, max_entries=10, max_manifest_bytes=1000)}
    assert set(entries) == {"linked", "table2"}
    assert entries["table2"].justification == "Table 2 of the paper" and entries["table2"].files == 1
    assert entries["table2"].problem == "" and "link" in entries["linked"].problem
    assert list_outbox(home / "nowhere", max_entries=10, max_manifest_bytes=1000) == []
