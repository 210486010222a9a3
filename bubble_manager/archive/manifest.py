"""Signed documents of an archive (pure): the inner manifest, the outer envelope, the deletion certificate.

* The **inner manifest** is the last member of the encrypted tar: every member with its type,
  size, sha256 (files) or target (symlinks), plus what was left out and why. Signed with the
  hub's Ed25519 key; restore checks it before anything is moved into place.
* The **envelope** sits beside the encrypted file and says only: study, archive number, sha256
  and size of the encrypted file, date. It names no member and no content hash, so it can be
  checked (`archive verify`) without decrypting and without revealing anything.
* The **deletion certificate** stays after a purge: study, when, who, the hashes of the archives
  destroyed and which keys were shredded.

Each document is canonical JSON with a `signature` over the canonical JSON of the other fields.
"""

from __future__ import annotations

import json
from typing import Any

from ..signing import Signer, Verifier
from ..study_request import canonical_json

MANIFEST_FORMAT = "bubble-manager-archive-manifest/1"
ENVELOPE_FORMAT = "bubble-manager-archive-envelope/1"
CERTIFICATE_FORMAT = "bubble-manager-deletion-certificate/1"
MANIFEST_NAME = "archive-manifest.json"
SIGNED_FIELDS_EXCLUDED = ("signature",)


class SignedDocumentError(ValueError):
    """A signed document is unreadable, of the wrong kind, or its signature does not verify."""


def sign(document: dict[str, Any], signer: Signer) -> dict[str, Any]:
    body = {key: value for key, value in document.items() if key not in SIGNED_FIELDS_EXCLUDED}
    body["key_id"] = signer.key_id
    return {**body, "signature": signer.sign(canonical_json(body).encode("utf-8"))}


def verify(document: Any, verifier: Verifier, expected_format: str, what: str) -> dict[str, Any]:
    """Return the document if it is of `expected_format` and signed by `verifier`'s key."""
    if not isinstance(document, dict) or document.get("format") != expected_format:
        raise SignedDocumentError(f"{what} is not a {expected_format} document")
    signature = document.get("signature")
    body = {key: value for key, value in document.items() if key not in SIGNED_FIELDS_EXCLUDED}
    if not isinstance(signature, str) or not verifier.verify(signature, canonical_json(body).encode("utf-8")):
        raise SignedDocumentError(f"{what} has no valid signature of this hub's key ({verifier.key_id}): it was "
                                  "altered, forged or signed by another hub")
    return document


def to_bytes(document: dict[str, Any]) -> bytes:
    return (canonical_json(document) + "\n").encode("utf-8")


def parse(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SignedDocumentError(f"{what} is not readable JSON ({error})") from None


# --- builders ------------------------------------------------------------------------------------

def member_record(path: str, kind: str, *, size: int = 0, sha256: str = "", mode: int = 0, mtime: int = 0,
                  target: str = "") -> dict[str, Any]:
    record: dict[str, Any] = {"path": path, "type": kind, "mode": mode & 0o777, "mtime": mtime}
    if kind == "file":
        record.update(size=size, sha256=sha256)
    elif kind == "symlink":
        record["target"] = target
    return record


def build_manifest(*, study: str, number: int, created_at: str, members: list[dict[str, Any]],
                   skipped: list[dict[str, str]], limits: dict[str, int]) -> dict[str, Any]:
    return {"format": MANIFEST_FORMAT, "study": study, "number": number, "created_at": created_at,
            "members": members, "skipped": skipped, "limits": limits}


def build_envelope(*, study: str, number: int, sha256: str, size: int, created_at: str,
                   post_quantum: bool) -> dict[str, Any]:
    encryption = "age-encryption.org/v1 (" + ("mlkem768x25519" if post_quantum else "X25519") + ")"
    return {"format": ENVELOPE_FORMAT, "study": study, "number": number, "sha256": sha256, "size": size,
            "created_at": created_at, "encryption": encryption, "compression": "zstd", "container": "tar (pax)"}


def build_certificate(*, study: str, purged_at: str, purged_by: str, archives: list[dict[str, Any]],
                      destroyed: dict[str, Any]) -> dict[str, Any]:
    return {"format": CERTIFICATE_FORMAT, "study": study, "purged_at": purged_at, "purged_by": purged_by,
            "archives": archives, "destroyed": destroyed}
