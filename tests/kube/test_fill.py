"""The extract-fill Job's command against the service's real transfer endpoint, in temp folders.

The service app (`make_app`, as `python -m bubble_manager.service` builds it) listens on a free
port of this test's event loop; `kube_fill` runs in a worker thread (or as the Job's own
`python -m` command in a subprocess) against it, with a one-time token from the store, and a
folder standing for the extract volume. Real DuckDB extracts, signed by the home's hub key.
"""

from __future__ import annotations

import ast
import asyncio
import hashlib
import io
import json
import os
import stat
import sys
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import duckdb
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from bubble_manager.runtime import kube_fill, transfer_tokens as tt
from bubble_manager.runtime.kube_fill import FillError
from bubble_manager.service import transfer_api
from bubble_manager.study_request import canonical_json

pytestmark = pytest.mark.kube
PREFIX = "/services/bubble-manager/"
SLUG = "t2d-statins"


class Transfers:
    """The running service and what a Job of study `t2d-statins` would be given."""

    def __init__(self, home: Path, context, port: int):
        self.home, self.context, self.port = home, context, port
        self.public_key = (home / "keys" / "hub-signing.pub").read_bytes()

    def url(self, slug: str = SLUG) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}transfer/v1/extracts/{slug}"

    @property
    def manifest_sha256(self) -> str:
        return hashlib.sha256((self.home / "studies" / SLUG / "manifest.json").read_bytes()).hexdigest()

    def token(self, study: str = SLUG, ttl: int = 600, manifest_sha256: str | None = None) -> tt.IssuedToken:
        return tt.issue(self.context, study=study, purpose=tt.EXTRACT_DOWNLOAD, job=f"extract-{study}-r1",
                        actor="system", ttl_seconds=ttl, manifest_sha256=manifest_sha256 or self.manifest_sha256)

    async def fill(self, target: Path, token: tt.IssuedToken, **overrides) -> kube_fill.FillResult:
        arguments = {"url": self.url(), "token": token.secret, "public_key_pem": self.public_key,
                     "expected_manifest_sha256": self.manifest_sha256, "study": SLUG, "target": target,
                     "timeout": 20, **overrides}
        return await asyncio.to_thread(kube_fill.fill_extract, **arguments)

    def get(self, path: str, headers: dict[str, str]) -> tuple[int, dict]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{PREFIX}{path}", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=20) as response:
                return response.status, {}
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())

    def audit(self, prefix: str = "") -> list:
        return [e for e in self.context.audit.entries(limit=1000) if e.action.startswith(prefix)]


@pytest.fixture
def transfers(study_home, transfer_service):
    return Transfers(study_home.home, study_home.context, transfer_service.port)


@pytest.fixture
def volume(tmp_path) -> Path:
    folder = tmp_path / "extract-volume"
    folder.mkdir()
    return folder


def listing(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir())}


# --- the happy path -------------------------------------------------------------------------------

async def test_the_job_gets_the_verified_extract_read_only_and_the_transfer_is_audited(transfers, volume):
    token = transfers.token()
    result = await transfers.fill(volume, token)
    study_dir = transfers.home / "studies" / SLUG
    assert listing(volume) == {"extract.duckdb": (study_dir / "extract.duckdb").read_bytes(),
                               "manifest.json": (study_dir / "manifest.json").read_bytes()}
    for name in ("extract.duckdb", "manifest.json"):
        assert stat.S_IMODE((volume / name).stat().st_mode) == 0o444
    assert result.manifest_sha256 == transfers.manifest_sha256 and result.bytes == (volume / "extract.duckdb").stat().st_size
    with duckdb.connect(str(volume / "extract.duckdb"), read_only=True) as db:
        assert db.execute("SELECT count(*) FROM person").fetchone()[0] == 50
    actions = [(e.action, e.actor) for e in transfers.audit("transfer.") + transfers.audit("extract.transferred")]
    assert ("transfer.redeemed", "job:extract-t2d-statins-r1") in actions
    assert ("extract.transferred", "job:extract-t2d-statins-r1") in actions
    transferred = transfers.audit("extract.transferred")[-1].detail
    assert transferred["bytes"] == result.bytes and transferred["token"] == token.token_id


async def test_a_refill_replaces_the_previous_extract(transfers, volume):
    (volume / "extract.duckdb").write_bytes(b"an older extract")
    (volume / "manifest.json").write_bytes(b"{}")
    for name in ("extract.duckdb", "manifest.json"):
        os.chmod(volume / name, 0o444)
    await transfers.fill(volume, transfers.token())
    assert (volume / "extract.duckdb").read_bytes() == (transfers.home / "studies" / SLUG / "extract.duckdb").read_bytes()
    assert sorted(p.name for p in volume.iterdir()) == ["extract.duckdb", "manifest.json"]


async def test_the_job_command_runs_as_the_job_runs_it(transfers, volume, tmp_path):
    """`python -m bubble_manager.runtime.kube_fill` with the environment and secret files the Job gets."""
    secrets_dir = tmp_path / "secret"
    secrets_dir.mkdir()
    (secrets_dir / "transfer-token").write_text(transfers.token().secret)
    (secrets_dir / "hub-signing.pub").write_bytes(transfers.public_key)
    environment = {"PATH": os.environ["PATH"], "BUBBLE_TRANSFER_URL": transfers.url(), "BUBBLE_STUDY": SLUG,
                   "BUBBLE_EXPECTED_MANIFEST_SHA256": transfers.manifest_sha256, "BUBBLE_EXTRACT_DIR": str(volume),
                   "BUBBLE_JOB_SECRETS": str(secrets_dir), "BUBBLE_JOB": "extract"}
    process = await asyncio.create_subprocess_exec(sys.executable, "-m", "bubble_manager.runtime.kube_fill",
                                                   env=environment, stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert json.loads(out)["filled"]["manifest_sha256"] == transfers.manifest_sha256
    again = await asyncio.create_subprocess_exec(sys.executable, "-m", "bubble_manager.runtime.kube_fill",
                                                 env=environment, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(again.communicate(), 60)
    assert again.returncode == 1 and "HTTP 403" in err.decode() and "already used" in err.decode()


def test_the_command_names_what_is_missing(tmp_path, capsys):
    assert kube_fill.main({}) == 1
    assert "BUBBLE_JOB_SECRETS is not set" in capsys.readouterr().err
    assert kube_fill.main({"BUBBLE_JOB_SECRETS": str(tmp_path)}) == 1
    assert "lacks transfer-token" in capsys.readouterr().err


# --- refusals by the service ----------------------------------------------------------------------

async def test_a_token_works_once(transfers, volume, tmp_path):
    token = transfers.token()
    await transfers.fill(volume, token)
    other = tmp_path / "other-volume"
    other.mkdir()
    with pytest.raises(FillError, match="HTTP 403 .*already used"):
        await transfers.fill(other, token)
    assert listing(other) == {}


async def test_a_token_for_another_study_gets_nothing(transfers, volume, study_home):
    token = transfers.token(study="other-study")
    with pytest.raises(FillError, match="HTTP 403 .*not for this study"):
        await transfers.fill(volume, token)
    assert listing(volume) == {}
    refusal = transfers.audit("transfer.refused")[-1]
    assert refusal.detail["reason"] == "other-study" and refusal.study == "other-study"


async def test_an_expired_token_gets_nothing(transfers, volume, study_home):
    token = transfers.token(ttl=30)
    import bubble_manager.clock as clock

    clock.utcnow.advance(seconds=31)  # the frozen clock of study_home, shared with the in-process service
    with pytest.raises(FillError, match="HTTP 403 .*expired"):
        await transfers.fill(volume, token)
    assert listing(volume) == {}


async def test_an_extract_rebuilt_after_the_token_was_issued_is_not_sent(transfers, volume, study_home):
    from tests.hubfixture import write_fixture_extract

    token = transfers.token()
    old = transfers.manifest_sha256
    write_fixture_extract(study_home.context, SLUG, study_home.study.request_hash, persons=20)
    with pytest.raises(FillError, match="HTTP 409 .*changed since"):
        await transfers.fill(volume, token, expected_manifest_sha256=old)
    assert listing(volume) == {}


async def test_a_tampered_extract_on_the_hub_is_not_sent(transfers, volume):
    extract = transfers.home / "studies" / SLUG / "extract.duckdb"
    data = bytearray(extract.read_bytes())
    data[-1] ^= 0xFF
    extract.write_bytes(bytes(data))
    with pytest.raises(FillError, match="HTTP 409 .*failed verification"):
        await transfers.fill(volume, transfers.token())
    assert listing(volume) == {}
    assert transfers.audit("transfer.refused")[-1].detail["reason"] == "extract-invalid"


async def test_an_extract_changed_while_it_is_sent_cuts_the_stream(transfers, volume, monkeypatch):
    """Verified, then altered before the bytes go out: the service stops mid-stream, the Job keeps nothing."""
    extract = transfers.home / "studies" / SLUG / "extract.duckdb"
    original = extract.read_bytes()
    real_verify = transfer_api.extract_gate.verify_for_spawn

    def verify_then_alter(paths, verifier, study):
        body = real_verify(paths, verifier, study)
        altered = bytearray(original)
        altered[len(altered) // 2] ^= 0xFF
        extract.write_bytes(bytes(altered))
        return body

    monkeypatch.setattr(transfer_api.extract_gate, "verify_for_spawn", verify_then_alter)
    with pytest.raises(FillError, match="not a complete tar stream|stopped .* short|sha256"):
        await transfers.fill(volume, transfers.token())
    assert listing(volume) == {}
    assert transfers.audit("transfer.failed")


@pytest.mark.parametrize("headers, status, rule", [
    ({}, 401, "malformed"),
    ({"Authorization": "token 0123456789abcdef"}, 401, "malformed"),
    ({"Authorization": "Bearer not-a-transfer-token"}, 401, "malformed"),
    ({"Authorization": "Bearer bmxfer_" + "A" * 43}, 403, "unknown"),
])
async def test_requests_without_a_transfer_token_are_refused(transfers, headers, status, rule):
    code, body = await asyncio.to_thread(transfers.get, f"transfer/v1/extracts/{SLUG}", headers)
    assert (code, body["rule"]) == (status, rule)
    assert transfers.audit("transfer.refused")[-1].detail["reason"] == rule


async def test_a_request_through_a_proxy_is_refused_even_with_a_good_token(transfers):
    token = transfers.token()
    code, body = await asyncio.to_thread(transfers.get, f"transfer/v1/extracts/{SLUG}", {
        "Authorization": f"Bearer {token.secret}", "X-Forwarded-For": "203.0.113.9"})
    assert (code, body["rule"]) == (403, "via-proxy")
    assert tt.token_state(transfers.context, token.token_id)["used_at"] is None


# --- what the Job refuses -------------------------------------------------------------------------

async def test_a_manifest_signed_by_another_key_is_refused(transfers, volume):
    stranger = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(FillError, match="not by the hub key"):
        await transfers.fill(volume, transfers.token(), public_key_pem=stranger)
    assert listing(volume) == {}


async def test_another_manifest_than_the_hub_chose_is_refused(transfers, volume):
    token = transfers.token()
    with pytest.raises(FillError, match="the hub expected"):
        await transfers.fill(volume, token, expected_manifest_sha256="0" * 64)
    assert listing(volume) == {}


def signed_manifest(home: Path, extract: bytes, study: str = SLUG, **changes) -> bytes:
    from bubble_manager.signing import load_signer

    body = {"format": "bubble-manager-extract/1", "study": study,
            "extract": {"file": "extract.duckdb", "sha256": hashlib.sha256(extract).hexdigest(), "size": len(extract)}}
    body.update(changes)
    signer = load_signer(home)
    return json.dumps({"manifest": body, "signature": {"algorithm": "ed25519", "key_id": signer.key_id,
                                                       "value": signer.sign(canonical_json(body).encode())}}).encode()


def tar_stream(*members: tuple[str, bytes] | tarfile.TarInfo) -> io.BytesIO:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                archive.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                archive.addfile(info, io.BytesIO(member[1]))
    out.seek(0)
    return out


def hostile_streams(home: Path) -> dict[str, tuple[io.BytesIO, bytes]]:
    extract = b"DUCK" * 1000
    manifest = signed_manifest(home, extract)
    link = tarfile.TarInfo("extract.duckdb")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    traversal = tarfile.TarInfo("../extract.duckdb")
    full = tar_stream(("manifest.json", manifest), ("extract.duckdb", extract)).getvalue()
    return {
        "extra member": (tar_stream(("manifest.json", manifest), ("extract.duckdb", extract), ("x.sh", b"rm")), manifest),
        "symlink extract": (tar_stream(("manifest.json", manifest), link), manifest),
        "path traversal": (tar_stream(("manifest.json", manifest), traversal), manifest),
        "extract first": (tar_stream(("extract.duckdb", extract), ("manifest.json", manifest)), manifest),
        "no extract": (tar_stream(("manifest.json", manifest)), manifest),
        "changed extract": (tar_stream(("manifest.json", manifest), ("extract.duckdb", b"EVIL" * 1000)), manifest),
        "longer extract": (tar_stream(("manifest.json", manifest), ("extract.duckdb", extract + b"!")), manifest),
        "truncated": (io.BytesIO(full[: len(full) // 2]), manifest),
        "another study": (tar_stream(("manifest.json", signed_manifest(home, extract, study="other")),
                                     ("extract.duckdb", extract)), signed_manifest(home, extract, study="other")),
        "another format": (tar_stream(("manifest.json", signed_manifest(home, extract, format="x/2")),
                                      ("extract.duckdb", extract)), signed_manifest(home, extract, format="x/2")),
        "not a tar": (io.BytesIO(b"<html>proxy error</html>" * 100), manifest),
    }


@pytest.mark.parametrize("case", [
    "extra member", "symlink extract", "path traversal", "extract first", "no extract", "changed extract",
    "longer extract", "truncated", "another study", "another format", "not a tar"])
def test_hostile_or_broken_streams_leave_nothing(bm_home, volume, case):
    stream, manifest = hostile_streams(bm_home)[case]
    public_key = (bm_home / "keys" / "hub-signing.pub").read_bytes()
    with pytest.raises(FillError):
        kube_fill.fill_extract(url="http://unused", token="t", public_key_pem=public_key, study=SLUG, target=volume,
                               expected_manifest_sha256=hashlib.sha256(manifest).hexdigest(),
                               opener=lambda url, token, timeout: stream)
    assert listing(volume) == {}
    assert not (volume.parent / "etc").exists()


def test_a_good_stream_is_installed_and_stale_staging_is_cleared(bm_home, volume):
    extract = b"DUCK" * 1000
    manifest = signed_manifest(bm_home, extract)
    (volume / ".incoming-dead").mkdir()
    (volume / ".incoming-dead" / "extract.duckdb").write_bytes(b"half")
    kube_fill.fill_extract(url="http://unused", token="t", study=SLUG, target=volume,
                           public_key_pem=(bm_home / "keys" / "hub-signing.pub").read_bytes(),
                           expected_manifest_sha256=hashlib.sha256(manifest).hexdigest(),
                           opener=lambda url, token, timeout: tar_stream(("manifest.json", manifest),
                                                                         ("extract.duckdb", extract)))
    assert listing(volume) == {"extract.duckdb": extract, "manifest.json": manifest}


def test_the_service_stream_length_is_exact():
    for manifest_size, extract_size in [(0, 0), (1, 511), (700, 512), (4000, 10 ** 6 + 3)]:
        body = (transfer_api.tar_header("manifest.json", manifest_size) + b"m" * manifest_size
                + transfer_api.tar_padding(manifest_size) + transfer_api.tar_header("extract.duckdb", extract_size)
                + b"e" * extract_size + transfer_api.tar_padding(extract_size))
        stream = body + transfer_api.tar_trailer(len(body))
        assert len(stream) == transfer_api.stream_length(manifest_size, extract_size)
        with tarfile.open(fileobj=io.BytesIO(stream), mode="r|") as archive:
            assert [(m.name, m.size, m.mode) for m in archive] == [("manifest.json", manifest_size, 0o444),
                                                                    ("extract.duckdb", extract_size, 0o444)]


# --- what the bubble image can run ----------------------------------------------------------------

@pytest.mark.parametrize("module, beyond_stdlib", [("kube_fill", {"cryptography"}), ("kube_collect", set())])
def test_the_job_commands_need_only_the_standard_library_and_cryptography(module, beyond_stdlib):
    """The bubble image carries these two modules but no other part of bubble-manager (images/bubble/Dockerfile)."""
    import importlib

    tree = ast.parse(Path(importlib.import_module(f"bubble_manager.runtime.{module}").__file__).read_text())
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {node.module.split(".")[0] for node in ast.walk(tree)
                 if isinstance(node, ast.ImportFrom) and node.module and node.level == 0}
    assert imported - set(sys.stdlib_module_names) == beyond_stdlib
    assert not [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]


@pytest.mark.parametrize("value", [{"b": 1, "a": [1.5, "é", None, True]}, {"z": {"y": "ü\u2028"}, "a": ""}])
def test_the_fill_command_signs_over_the_same_json_as_the_hub(value):
    assert kube_fill.canonical_json(value) == canonical_json(value)
