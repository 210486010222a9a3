"""Extract-fill transfer benchmark: what the Job's download costs against a local copy, same run.

    .venv/bin/python bench/kube_transfer.py [--size-mib 256] [--repeat 3]

Makes a home with an approved study whose extract is SIZE MiB (random bytes under a signed
manifest: the transfer checks hashes and signatures, not DuckDB's format), starts the service app
(the real `make_app`, transfer endpoint included) on a free loopback port in a thread, then,
interleaved run by run, best of --repeat each:

* baseline: read the extract, sha256 it and write it to a new file, fsynced (what any copy into
  the volume costs at least);
* transfer: `kube_fill.fill_extract` with a fresh one-time token: the service verifies the extract
  (its cache makes the re-verify free after the first run, as in a real site), streams the tar,
  re-hashing it; the Job checks manifest hash, signature and extract hash, writes, fsyncs, renames.

Prints the throughput ratio transfer / baseline (target >= 0.3 on loopback: the extract is read
and hashed twice, once on each side, and crosses HTTP once). Absolute figures are context only;
on a cluster the network between the nodes sets the pace.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bubble_manager import clock  # noqa: E402
from bubble_manager.config import load_settings  # noqa: E402
from bubble_manager.operations import Context, StudyOperations  # noqa: E402
from bubble_manager.runtime import kube_fill, transfer_tokens  # noqa: E402
from bubble_manager.runtime.spec import StudyPaths  # noqa: E402
from bubble_manager.signing import init_signing_key  # noqa: E402
from bubble_manager.studies import Actor  # noqa: E402
from bubble_manager.study_request import canonical_json  # noqa: E402

SLUG = "bench-transfer"
BLOCK = 1 << 20
CATALOG = REPO / "bubble_manager" / "data" / "demo_catalog.yaml"


def make_home(folder: Path, size_mib: int) -> Context:
    (folder / "warehouse").mkdir(parents=True)
    shutil.copy(CATALOG, folder / "warehouse" / "warehouse.catalog.yaml")
    init_signing_key(folder)
    context = Context.open(load_settings(folder))
    operations = StudyOperations(context)
    today = clock.utcnow().date()
    operations.request(Actor("carol", frozenset({"researcher"})), {
        "title": "Transfer benchmark", "slug": SLUG, "purpose": "Measure the extract-fill transfer.",
        "legal_basis": "benchmark", "members": ["alice"], "starts": str(today), "ends": str(today.replace(
            year=today.year + 1)), "data": {"person": ["person_id", "birth_date"]},
        "cohort": "SELECT DISTINCT person_id FROM condition_occurrence WHERE condition_concept_id = 201826"})
    operations.submit(Actor("carol", frozenset({"researcher"})), SLUG)
    study = operations.approve(Actor("sam", frozenset({"steward"})), SLUG, "benchmark")
    paths = StudyPaths(folder, SLUG)
    paths.root.mkdir(parents=True)
    digest = hashlib.sha256()
    with open(paths.extract, "wb") as out:
        for _ in range(size_mib):
            block = os.urandom(BLOCK)
            digest.update(block)
            out.write(block)
    body = {"format": "bubble-manager-extract/1", "study": SLUG, "request_hash": study.request_hash,
            "extract": {"file": "extract.duckdb", "sha256": digest.hexdigest(), "size": size_mib * BLOCK}}
    signer = context.signer
    paths.manifest.write_text(json.dumps({"manifest": body, "signature": {
        "algorithm": "ed25519", "key_id": signer.key_id, "value": signer.sign(canonical_json(body).encode())}}))
    return context


def serve(context: Context) -> tuple[int, asyncio.AbstractEventLoop]:
    from tornado.httpserver import HTTPServer

    from bubble_manager.service.app import make_app

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def run() -> None:
        asyncio.set_event_loop(loop)
        HTTPServer(make_app(context)).listen(port, "127.0.0.1")
        loop.call_soon(ready.set)
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return port, loop


def baseline(source: Path, target: Path) -> float:
    started = time.perf_counter()
    digest = hashlib.sha256()
    with open(source, "rb") as read, open(target, "wb") as out:
        while block := read.read(BLOCK):
            digest.update(block)
            out.write(block)
        out.flush()
        os.fsync(out.fileno())
    return time.perf_counter() - started


def transfer(context: Context, port: int, target: Path) -> float:
    manifest = StudyPaths(context.home, SLUG).manifest.read_bytes()
    sha = hashlib.sha256(manifest).hexdigest()
    token = transfer_tokens.issue(context, study=SLUG, purpose=transfer_tokens.EXTRACT_DOWNLOAD, job="bench",
                                  actor="bench", ttl_seconds=600, manifest_sha256=sha)
    started = time.perf_counter()
    kube_fill.fill_extract(url=f"http://127.0.0.1:{port}/services/bubble-manager/transfer/v1/extracts/{SLUG}",
                           token=token.secret, public_key_pem=(context.home / "keys" / "hub-signing.pub").read_bytes(),
                           expected_manifest_sha256=sha, study=SLUG, target=target, timeout=600)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-transfer-") as scratch:
        scratch_path = Path(scratch)
        context = make_home(scratch_path / "home", options.size_mib)
        port, loop = serve(context)
        try:
            transfer(context, port, _fresh(scratch_path, "warm"))  # the service's first verify is a full hash
            copies, transfers = [], []
            for run in range(options.repeat):
                copies.append(baseline(StudyPaths(context.home, SLUG).extract, _fresh(scratch_path, f"c{run}") /
                                       "extract.duckdb"))
                transfers.append(transfer(context, port, _fresh(scratch_path, f"t{run}")))
        finally:
            loop.call_soon_threadsafe(loop.stop)
            context.close()
    size = options.size_mib
    best_copy, best_transfer = min(copies), min(transfers)
    print(f"extract {size} MiB, best of {options.repeat}")
    print(f"  baseline copy+sha256+fsync: {best_copy:.2f} s ({size / best_copy:.0f} MiB/s)")
    print(f"  transfer (service -> kube_fill, all checks): {best_transfer:.2f} s ({size / best_transfer:.0f} MiB/s)")
    print(f"  ratio transfer/baseline throughput: {best_copy / best_transfer:.2f} (target >= 0.3)")


def _fresh(scratch: Path, name: str) -> Path:
    folder = scratch / name
    folder.mkdir()
    return folder


if __name__ == "__main__":
    main()
