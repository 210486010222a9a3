"""The extract check every spawn passes: signed manifest, matching sha256, the study's own extract.

The manifest is `{"manifest": {...}, "signature": {"key_id", "value"}}` with the signature over
the canonical JSON of `manifest` (see `bubble_manager/extract/manifest.py`). A verified extract
is remembered by its files' identity (device, inode, size, mtime and ctime of both files): ctime
cannot be set from user space, so any write to either file forces a full re-hash.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

from ..signing import Verifier
from ..studies import Study
from ..study_request import canonical_json
from .spec import SpawnRefused, StudyPaths

HASH_BLOCK = 4 * 2**20
_verified: dict[tuple, dict[str, Any]] = {}
_lock = threading.Lock()


def _identity(path: Path) -> tuple:
    info = os.stat(path)
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def extract_problems(paths: StudyPaths, verifier: Verifier, study: Study) -> tuple[list[str], dict[str, Any]]:
    """Every reason the study's extract must not be mounted (empty when it may), and the manifest body."""
    try:
        document = json.loads(paths.manifest.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return ["the study has no extract yet (no manifest)"], {}
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ["the extract's manifest is not valid JSON"], {}
    body = document.get("manifest") if isinstance(document, dict) else None
    signature = document.get("signature") if isinstance(document, dict) else None
    if not isinstance(body, dict) or not isinstance(signature, dict):
        return ["the extract's manifest is not signed"], {}
    problems: list[str] = []
    if signature.get("key_id") != verifier.key_id or not verifier.verify(
            str(signature.get("value", "")), canonical_json(body).encode("utf-8")):
        problems.append("the manifest's signature does not verify with this hub's key")
    if body.get("study") != study.slug:
        problems.append(f"the manifest describes study {body.get('study')!r}, not {study.slug}")
    if body.get("request_hash") != study.request_hash:
        problems.append("the extract was built for another version of the request than the approved one")
    recorded = body.get("extract") if isinstance(body.get("extract"), dict) else {}
    if not paths.extract.is_file():
        problems.append("the extract file is missing")
        return problems, body
    if paths.extract.stat().st_size != recorded.get("size"):
        problems.append("the extract's size differs from its manifest")
    elif _sha256(paths.extract) != recorded.get("sha256"):
        problems.append("the extract's sha256 differs from its manifest (altered after it was built)")
    return problems, body


def verify_for_spawn(paths: StudyPaths, verifier: Verifier, study: Study) -> dict[str, Any]:
    """The manifest body of a verified extract, or SpawnRefused('extract-invalid') naming the problems."""
    try:
        key = (str(paths.root), study.request_hash, _identity(paths.manifest), _identity(paths.extract))
    except FileNotFoundError:
        key = None
    if key is not None:
        with _lock:
            if key in _verified:
                return _verified[key]
    problems, body = extract_problems(paths, verifier, study)
    if problems:
        raise SpawnRefused("extract-invalid", f"the extract of study {study.slug} failed verification "
                                              f"({'; '.join(problems)}); the bubble stays closed until an admin "
                                              f"rebuilds it (`bubble-manager extract build {study.slug}`)")
    if key is not None:
        with _lock:
            _verified[key] = body
    return body


def manifest_sha256(paths: StudyPaths) -> str:
    return _sha256(paths.manifest)
