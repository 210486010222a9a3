"""`python -m bubble_manager.runtime.kube_fill`: the extract-fill Job's command, run in the bubble image.

It downloads the study's extract from the bubble-manager service with the one-time transfer token
of its secret, and trusts nothing it receives: the manifest must be the exact version the hub
chose (`BUBBLE_EXPECTED_MANIFEST_SHA256`), signed by the hub's key (the public key is in the
secret), for this study; the extract must have the manifest's size and sha256. Only then are both
files moved into the extract volume, read-only (mode 0444), extract first, manifest last. Anything
wrong leaves nothing new behind: the download goes to a staging folder inside the volume that is
removed on any failure. The hub marks the volume as holding that manifest only after the Job
succeeded.

The module needs only the standard library and `cryptography` (both in the bubble image, which
carries no other part of bubble-manager). Environment: BUBBLE_TRANSFER_URL, BUBBLE_STUDY,
BUBBLE_EXPECTED_MANIFEST_SHA256, BUBBLE_EXTRACT_DIR, BUBBLE_JOB_SECRETS (a folder holding
`transfer-token` and `hub-signing.pub`).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable

MANIFEST_NAME, EXTRACT_NAME = "manifest.json", "extract.duckdb"
MANIFEST_FORMAT = "bubble-manager-extract/1"
TOKEN_FILE, PUBLIC_KEY_FILE = "transfer-token", "hub-signing.pub"
MAX_MANIFEST_BYTES = 4 << 20
CHUNK = 1 << 20
STAGING_PREFIX = ".incoming-"
SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")


class FillError(RuntimeError):
    """The extract was not written; the message says what was wrong."""


@dataclass(frozen=True)
class FillResult:
    study: str
    manifest_sha256: str
    extract_sha256: str
    bytes: int


def canonical_json(value: Any) -> str:
    """The JSON form manifest signatures cover (same as bubble_manager.study_request.canonical_json)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def verify_manifest(data: bytes, *, expected_sha256: str, public_key_pem: bytes, study: str) -> dict[str, Any]:
    """The manifest body, if `data` is the expected, hub-signed manifest of `study`; FillError otherwise."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise FillError(f"the manifest received has sha256 {actual}, the hub expected {expected_sha256}")
    try:
        document = json.loads(data.decode("utf-8"))
        body, signature = document["manifest"], document["signature"]
        value = base64.b64decode(signature["value"], validate=True)
    except (ValueError, KeyError, TypeError) as error:
        raise FillError(f"the manifest received is not a signed manifest ({type(error).__name__})") from None
    try:
        key = serialization.load_pem_public_key(public_key_pem)
    except ValueError:
        raise FillError(f"{PUBLIC_KEY_FILE} in the Job secret is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise FillError(f"{PUBLIC_KEY_FILE} in the Job secret is not an Ed25519 key")
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    key_id = "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]
    if signature.get("algorithm") != "ed25519" or signature.get("key_id") != key_id:
        raise FillError(f"the manifest is signed by {signature.get('key_id')!r}, not by the hub key {key_id}")
    try:
        key.verify(value, canonical_json(body).encode("utf-8"))
    except InvalidSignature:
        raise FillError("the manifest signature does not verify with the hub's public key") from None
    if not isinstance(body, dict) or body.get("format") != MANIFEST_FORMAT:
        raise FillError(f"the manifest is not in format {MANIFEST_FORMAT}")
    if body.get("study") != study:
        raise FillError(f"the manifest describes study {body.get('study')!r}, this Job fills {study}")
    extract = body.get("extract") if isinstance(body.get("extract"), dict) else {}
    if extract.get("file") != EXTRACT_NAME or not SHA256_HEX.match(str(extract.get("sha256", ""))) \
            or not isinstance(extract.get("size"), int) or extract["size"] < 0:
        raise FillError("the manifest does not describe extract.duckdb with a sha256 and a size")
    return body


def _next_regular(archive: tarfile.TarFile, name: str) -> tarfile.TarInfo:
    member = archive.next()
    if member is None:
        raise FillError(f"the transfer ended before {name}")
    if member.name != name or not member.isreg():
        raise FillError(f"the transfer holds {member.name!r} where {name} was expected")
    return member


def _copy_checked(source: BinaryIO, target: Path, size: int, expected_sha256: str) -> None:
    digest, left = hashlib.sha256(), size
    with open(target, "xb") as out:
        while left:
            block = source.read(min(CHUNK, left))
            if not block:
                raise FillError(f"the transfer of {EXTRACT_NAME} stopped {left} bytes short")
            digest.update(block)
            out.write(block)
            left -= len(block)
        out.flush()
        os.fsync(out.fileno())
    if digest.hexdigest() != expected_sha256:
        raise FillError(f"{EXTRACT_NAME} received has sha256 {digest.hexdigest()}, the manifest says {expected_sha256}")


def receive(stream: BinaryIO, staging: Path, *, expected_manifest_sha256: str, public_key_pem: bytes,
            study: str) -> FillResult:
    """Read the service's tar stream into `staging`, checking everything; FillError on any mismatch."""
    try:
        with tarfile.open(fileobj=stream, mode="r|", bufsize=CHUNK) as archive:
            member = _next_regular(archive, MANIFEST_NAME)
            if member.size > MAX_MANIFEST_BYTES:
                raise FillError(f"the manifest is {member.size} bytes, more than a manifest can be")
            manifest = archive.extractfile(member).read()
            body = verify_manifest(manifest, expected_sha256=expected_manifest_sha256,
                                   public_key_pem=public_key_pem, study=study)
            recorded = body["extract"]
            member = _next_regular(archive, EXTRACT_NAME)
            if member.size != recorded["size"]:
                raise FillError(f"{EXTRACT_NAME} is {member.size} bytes, the manifest says {recorded['size']}")
            _copy_checked(archive.extractfile(member), staging / EXTRACT_NAME, member.size, recorded["sha256"])
            extra = archive.next()
            if extra is not None:
                raise FillError(f"the transfer holds an unexpected {extra.name!r} after the extract")
    except (tarfile.TarError, http.client.HTTPException, EOFError) as error:
        raise FillError(f"the transfer is not a complete tar stream ({type(error).__name__}: {error})") from None
    with open(staging / MANIFEST_NAME, "xb") as out:
        out.write(manifest)
        out.flush()
        os.fsync(out.fileno())
    return FillResult(study, expected_manifest_sha256, recorded["sha256"], recorded["size"])


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def install(staging: Path, target: Path) -> None:
    """Make both files read-only and move them in: extract first, manifest last (the manifest says done)."""
    for name in (EXTRACT_NAME, MANIFEST_NAME):
        os.chmod(staging / name, 0o444)
    for name in (EXTRACT_NAME, MANIFEST_NAME):
        os.replace(staging / name, target / name)
    _fsync_dir(target)


def open_transfer(url: str, token: str, timeout: float) -> BinaryIO:
    """GET the transfer stream, never through a proxy; FillError naming the service's refusal."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}", "Accept": "application/x-tar"})
    try:
        return opener.open(request, timeout=timeout)
    except urllib.error.HTTPError as error:
        try:
            message = json.loads(error.read() or b"{}").get("error", "")
        except ValueError:
            message = ""
        raise FillError(f"the service refused the transfer: HTTP {error.code} {message}".rstrip()) from None
    except (urllib.error.URLError, OSError) as error:
        raise FillError(f"cannot reach the service at {url}: {error}") from None


def fill_extract(*, url: str, token: str, public_key_pem: bytes, expected_manifest_sha256: str, study: str,
                 target: Path, timeout: float = 60.0,
                 opener: Callable[[str, str, float], BinaryIO] = open_transfer) -> FillResult:
    """Download, check and install the study's extract into `target`; nothing new is left on failure."""
    target = Path(target)
    if not SHA256_HEX.match(expected_manifest_sha256):
        raise FillError(f"BUBBLE_EXPECTED_MANIFEST_SHA256 {expected_manifest_sha256!r} is not a sha256")
    if not target.is_dir():
        raise FillError(f"the extract volume is not mounted at {target}")
    for stale in target.glob(STAGING_PREFIX + "*"):  # left by a Job killed mid-download
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=target))
    try:
        with opener(url, token, timeout) as stream:
            result = receive(stream, staging, expected_manifest_sha256=expected_manifest_sha256,
                             public_key_pem=public_key_pem, study=study)
        install(staging, target)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        raise FillError(f"writing into {target} failed: {error}") from None
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    staging.rmdir()
    return result


def _required(environ: dict[str, str], name: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise FillError(f"{name} is not set: this command runs in the extract-fill Job the hub creates")
    return value


def main(environ: dict[str, str] | None = None) -> int:
    environ = dict(os.environ if environ is None else environ)
    try:
        secrets_dir = Path(_required(environ, "BUBBLE_JOB_SECRETS"))
        try:
            token = (secrets_dir / TOKEN_FILE).read_text().strip()
            public_key = (secrets_dir / PUBLIC_KEY_FILE).read_bytes()
        except OSError as error:
            raise FillError(f"the Job secret at {secrets_dir} lacks {TOKEN_FILE} or {PUBLIC_KEY_FILE}: {error}") from None
        result = fill_extract(url=_required(environ, "BUBBLE_TRANSFER_URL"), token=token, public_key_pem=public_key,
                              expected_manifest_sha256=_required(environ, "BUBBLE_EXPECTED_MANIFEST_SHA256"),
                              study=_required(environ, "BUBBLE_STUDY"),
                              target=Path(_required(environ, "BUBBLE_EXTRACT_DIR")))
    except FillError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"filled": asdict(result)}, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
