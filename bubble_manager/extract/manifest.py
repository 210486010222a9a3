"""The extract manifest: what was built from what, signed with the hub's Ed25519 key.

`manifest.json` beside the extract holds ``{"manifest": {...}, "signature": {...}}``; the
signature covers the canonical JSON of ``manifest`` (sorted keys, no spaces, UTF-8). It records
the study, the request hash it was approved at, the warehouse fingerprint, every column with its
transform, row counts, the risk report, the extract's sha256 and size, and when it was made.
`verify_extract` recomputes the hash and checks the signature; it names every mismatch.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from .. import __version__
from ..signing import Signer, Verifier
from ..study_request import canonical_json
from .plan import ExtractPlan

FORMAT = "bubble-manager-extract/1"
MANIFEST_NAME = "manifest.json"
EXTRACT_NAME = "extract.duckdb"
HASH_BLOCK = 4 * 2**20


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while block := file.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def build_manifest(*, plan: ExtractPlan, request_version: int, warehouse_fingerprint: str, rows: dict[str, int],
                   persons: int, risk: dict[str, Any], sha256: str, size: int, created_at: str, built_by: str,
                   recipients: list[str]) -> dict[str, Any]:
    """The manifest body (pure)."""
    return {
        "format": FORMAT,
        "study": plan.slug,
        "request_hash": plan.request_hash,
        "request_version": request_version,
        "warehouse": {"name": plan.warehouse, "fingerprint": warehouse_fingerprint},
        "plan": plan.as_dict(),
        "persons": persons,
        "rows": rows,
        "risk": risk,
        "extract": {"file": EXTRACT_NAME, "sha256": sha256, "size": size},
        "vault": {"file": "vault.age", "recipients": recipients},
        "created_at": created_at,
        "built_by": built_by,
        "software": {"bubble_manager": __version__, "duckdb": duckdb.__version__},
    }


def sign_manifest(body: dict[str, Any], signer: Signer) -> dict[str, Any]:
    message = canonical_json(body).encode("utf-8")
    return {"manifest": body, "signature": {"algorithm": "ed25519", "key_id": signer.key_id,
                                            "value": signer.sign(message)}}


def manifest_bytes(document: dict[str, Any]) -> bytes:
    return (json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")


@dataclass
class Verification:
    """The result of `verify_extract`; `ok` only if `problems` is empty."""

    manifest_path: Path
    extract_path: Path | None
    manifest: dict[str, Any] | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        body = self.manifest or {}
        return {"ok": self.ok, "problems": self.problems, "manifest": str(self.manifest_path),
                "extract": str(self.extract_path) if self.extract_path else None, "study": body.get("study"),
                "request_hash": body.get("request_hash"), "sha256": (body.get("extract") or {}).get("sha256")}


def locate(path: Path) -> tuple[Path, Path | None]:
    """(manifest, extract-or-None) from a study folder, an extract file or a manifest file."""
    path = Path(path)
    if path.is_dir():
        return path / MANIFEST_NAME, path / EXTRACT_NAME
    if path.name == MANIFEST_NAME or path.suffix == ".json":
        return path, None
    return path.with_name(MANIFEST_NAME), path


def verify_extract(path: Path, verifier: Verifier) -> Verification:
    """Check the manifest's signature and the extract's sha256 and size; collect every problem."""
    manifest_path, extract_path = locate(Path(path))
    result = Verification(manifest_path, extract_path)
    try:
        document = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        result.problems.append(f"no manifest at {manifest_path}; the extract was never completed or was moved")
        return result
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        result.problems.append(f"{manifest_path} is not valid JSON ({error})")
        return result
    body, signature = (document.get("manifest"), document.get("signature")) if isinstance(document, dict) else (None, None)
    if not isinstance(body, dict) or not isinstance(signature, dict):
        result.problems.append(f"{manifest_path} lacks 'manifest' and 'signature'")
        return result
    result.manifest = body
    if body.get("format") != FORMAT:
        result.problems.append(f"manifest format {body.get('format')!r} is not {FORMAT}")
    if signature.get("key_id") != verifier.key_id:
        result.problems.append(f"manifest signed by key {signature.get('key_id')!r}, not this hub's key {verifier.key_id}")
    if not verifier.verify(str(signature.get("value", "")), canonical_json(body).encode("utf-8")):
        result.problems.append("manifest signature does not verify: the manifest was altered or not signed by this hub")
    recorded = body.get("extract") if isinstance(body.get("extract"), dict) else {}
    name = str(recorded.get("file", ""))
    if not name or "/" in name or name in (".", ".."):
        result.problems.append(f"manifest names an invalid extract file {name!r}")
        return result
    expected = manifest_path.parent / name
    if extract_path is None:
        extract_path = result.extract_path = expected
    elif extract_path.resolve() != expected.resolve():
        result.problems.append(f"the manifest beside {extract_path} describes {expected.name}, not {extract_path.name}")
        return result
    if not extract_path.is_file():
        result.problems.append(f"no extract file at {extract_path}")
        return result
    if extract_path.stat().st_size != recorded.get("size"):
        result.problems.append(f"{extract_path} is {extract_path.stat().st_size} bytes, the manifest says "
                               f"{recorded.get('size')}")
    actual = sha256_file(extract_path)
    if actual != recorded.get("sha256"):
        result.problems.append(f"sha256 of {extract_path} is {actual}, the manifest says {recorded.get('sha256')}")
    return result
