"""The transfer endpoint on the real service behind the real hub and proxy: no user credential opens it,
the proxy path is closed even to a good token, and a Job's one-time token fetches a real extract once."""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import stat
import subprocess
import sys
import urllib.error
import urllib.request

import duckdb
import pytest

from bubble_manager.extract.build import build_extract
from bubble_manager.operations import StudyOperations
from bubble_manager.runtime import transfer_tokens as tt
from bubble_manager.studies import Actor

from .conftest import request_document

CAROL = Actor("carol", frozenset({"researcher"}))
SAM = Actor("sam", frozenset({"steward"}))
ADAM = Actor("adam", frozenset({"admin"}))
_numbers = itertools.count(1)


@pytest.fixture(scope="module")
def approved_with_extract(hub, service_home):
    """An approved study whose real extract (built from the demo warehouse) the service holds."""
    from bubble_manager.config import load_settings
    from bubble_manager.operations import Context

    context = Context.open(load_settings(service_home))
    try:
        slug = f"xfer{next(_numbers)}"
        operations = StudyOperations(context)
        # starting next week: the service's reconciler must not activate it (and rebuild its extract) mid-test
        today = dt.date.today()
        operations.request(CAROL, {**request_document(slug, members=("alice", "bob")),
                                   "starts": str(today + dt.timedelta(days=7)),
                                   "ends": str(today + dt.timedelta(days=67))})
        operations.submit(CAROL, slug)
        operations.approve(SAM, slug, "fine")
        build_extract(context, ADAM, slug)
    finally:
        context.close()
    return slug


def transfer_path(slug: str) -> str:
    return f"/services/bubble-manager/transfer/v1/extracts/{slug}"


def get(url: str, headers: dict[str, str]) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def direct(hub, slug: str) -> str:
    """How a Job reaches the service: its own address and port, not the proxy."""
    return f"http://127.0.0.1:{hub.service_port}{transfer_path(slug)}"


def issue(context, slug: str) -> tt.IssuedToken:
    manifest = context.home / "studies" / slug / "manifest.json"
    return tt.issue(context, study=slug, purpose=tt.EXTRACT_DOWNLOAD, job=f"extract-{slug}-r1", actor="system",
                    ttl_seconds=600, manifest_sha256=hashlib.sha256(manifest.read_bytes()).hexdigest())


def test_no_user_or_service_credential_opens_the_transfer_endpoint(hub, tokens, approved_with_extract,
                                                                    store_context):
    slug = approved_with_extract
    credentials = {**{f"user {name}": token for name, token in tokens.items()}, "hub admin service": hub.admin_token}
    for label, credential in credentials.items():
        for scheme in ("token", "Bearer"):
            for url in (hub.url + transfer_path(slug), direct(hub, slug)):
                status, body = get(url, {"Authorization": f"{scheme} {credential}"})
                assert status in (401, 403), f"{label} with {scheme} at {url} got {status}"
                assert b"DUCK" not in body and json.loads(body)["error"]
    status, _ = get(direct(hub, slug), {})
    assert status == 401
    refusals = store_context.audit.entries(action="transfer.refused", limit=1000)
    assert len(refusals) >= len(credentials) * 4
    assert not store_context.audit.entries(action="extract.transferred", study=slug, limit=10)


def test_through_the_proxy_even_a_good_token_is_refused_and_kept(hub, approved_with_extract, store_context):
    slug = approved_with_extract
    token = issue(store_context, slug)
    status, body = get(hub.url + transfer_path(slug), {"Authorization": f"Bearer {token.secret}"})
    assert status == 403 and json.loads(body)["rule"] == "via-proxy"
    assert tt.token_state(store_context, token.token_id)["used_at"] is None


def test_a_job_token_fetches_the_real_extract_once(hub, approved_with_extract, store_context, tmp_path):
    slug = approved_with_extract
    token = issue(store_context, slug)
    secrets_dir, volume = tmp_path / "secret", tmp_path / "volume"
    secrets_dir.mkdir()
    volume.mkdir()
    (secrets_dir / "transfer-token").write_text(token.secret)
    (secrets_dir / "hub-signing.pub").write_bytes((store_context.home / "keys" / "hub-signing.pub").read_bytes())
    manifest = store_context.home / "studies" / slug / "manifest.json"
    environment = {"PATH": os.environ["PATH"], "BUBBLE_TRANSFER_URL": direct(hub, slug), "BUBBLE_STUDY": slug,
                   "BUBBLE_EXPECTED_MANIFEST_SHA256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
                   "BUBBLE_EXTRACT_DIR": str(volume), "BUBBLE_JOB_SECRETS": str(secrets_dir)}
    command = [sys.executable, "-m", "bubble_manager.runtime.kube_fill"]
    done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert (volume / "manifest.json").read_bytes() == manifest.read_bytes()
    assert stat.S_IMODE((volume / "extract.duckdb").stat().st_mode) == 0o444
    with duckdb.connect(str(volume / "extract.duckdb"), read_only=True) as db:
        tables = {row[0] for row in db.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        assert {"person", "condition_occurrence"} <= tables
        assert db.execute("SELECT count(*) FROM person").fetchone()[0] > 0
    again = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=120)
    assert again.returncode == 1 and "already used" in again.stderr
    transferred = store_context.audit.entries(action="extract.transferred", study=slug, limit=10)
    assert [e.detail["token"] for e in transferred] == [token.token_id]
