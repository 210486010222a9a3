"""The extract check every spawn passes: `extract verify` (signed manifest, matching size and
sha256, see `bubble_manager/extract/manifest.py`), and the extract must be this study's, built from
its approved request. Shared by the local and Kubernetes spawners. A verified extract
is remembered by its files' identity (device, inode, size, mtime and ctime of both files): ctime
cannot be set from user space, so any write to either file forces a full re-hash.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

from ..signing import Verifier
from ..studies import Study
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
    """Every reason the study's extract must not be mounted (empty when it may), and the manifest body.

    `extract verify`'s checks (signature by this hub, format, size, sha256), then that the extract is
    this study's, built from the approved version of its request."""
    from ..extract.manifest import verify_extract

    if not paths.manifest.exists():
        return ["the study has no extract yet (no manifest)"], {}
    verification = verify_extract(paths.root, verifier)
    body = verification.manifest or {}
    problems = [problem.replace(str(paths.root) + "/", "") for problem in verification.problems]
    if body and body.get("study") != study.slug:
        problems.append(f"the manifest describes study {body.get('study')!r}, not {study.slug}")
    if body and body.get("request_hash") != study.request_hash:
        problems.append("the extract was built for another version of the request than the approved one")
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
