"""The archive and keys commands end to end, as an admin and custodians would type them."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from bubble_manager.archive.keys import study_share_files
from bubble_manager.cli import main

from .conftest import UTC, make_study, write_study_files
from .test_purge import make_study_archived


@pytest.fixture
def cli(bm_home, capsys):
    def run(*args, expect=0):
        code = main(["--home", str(bm_home), *args])
        out, err = capsys.readouterr()
        assert code == expect, f"exit {code}, expected {expect}\nstdout: {out}\nstderr: {err}"
        return out, err
    return run


def test_snapshot_list_verify_restore_purge(cli, sqlite_context, custodians, frozen_clock, tmp_path):
    slug = make_study(sqlite_context, frozen_clock)
    write_study_files(sqlite_context, slug)
    out, _ = cli("--json", "archive", "snapshot", slug, "--actor", "admin")
    snap = json.loads(out)
    archive = snap["path"]
    out, _ = cli("archive", "list")
    assert slug in out and "kept" in out
    out, _ = cli("archive", "verify", archive)
    assert "verified" in out and f"study {slug}" in out
    files = {s["custodian"]: s["path"] for s in study_share_files(sqlite_context.home, slug)}
    shares = []
    for kit in custodians[:2]:
        share = tmp_path / f"{kit.name}.share"
        cli("keys", "decrypt-share", "--identity", str(kit.identity_file), files[kit.name], "--out", str(share))
        shares.append(share)
    _, err = cli("archive", "restore", archive, "--to", str(tmp_path / "r0"), "--share", str(shares[0]),
                 "--reason", "audit request", expect=2)
    assert "2 needed" in err and not (tmp_path / "r0").exists()
    out, _ = cli("archive", "restore", archive, "--to", str(tmp_path / "r1"), "--share", str(shares[0]),
                 "--share", str(shares[1]), "--reason", "audit request", "--actor", "ops")
    assert "restored into" in out and (tmp_path / "r1" / "extract.duckdb").exists()
    cli("keys", "recover", slug, "--share", str(shares[0]), "--share", str(shares[1]), "--out",
        str(tmp_path / "archive.key"), "--actor", "ops")
    cli("archive", "restore", archive, "--to", str(tmp_path / "r2"), "--identity", str(tmp_path / "archive.key"),
        "--reason", "second look")
    with open(archive, "r+b") as f:  # flip one byte of the encrypted file
        f.seek(-100, 2)
        byte = f.read(1)
        f.seek(-100, 2)
        f.write(bytes([byte[0] ^ 1]))
    out, _ = cli("archive", "verify", archive, expect=1)
    assert "FAILED" in out and "does not match the sha256" in out
    _, err = cli("archive", "restore", archive, "--to", str(tmp_path / "r3"), "--identity",
                 str(tmp_path / "archive.key"), "--reason", "x", expect=2)
    assert "does not match its signed envelope" in err or "damaged at chunk" in err
    make_study_archived(sqlite_context, frozen_clock, slug)
    _, err = cli("archive", "purge", slug, "--actor", "admin", expect=2)
    assert "must be kept until" in err
    frozen_clock.set(dt.datetime(2037, 6, 2, 8, 0, tzinfo=UTC))
    out, _ = cli("archive", "purge", slug, "--actor", "admin")
    assert "purged" in out and "certificate" in out
    out, _ = cli("--json", "archive", "list", "--study", slug)
    assert [r["state"] for r in json.loads(out)] == ["purged"]
    actions = [e.action for e in sqlite_context.audit.entries(study=slug)]
    for action in ("archive.snapshot", "keys.recovered", "archive.restored", "archive.restore-failed",
                   "keys.recover-refused", "study.purged", "archive.purged"):
        assert action in actions, action
    out, _ = cli("audit", "verify")
    assert "intact" in out
