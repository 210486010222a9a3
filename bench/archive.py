"""Archive benchmark: our snapshot and restore against the Debian CLIs, measured in the same run.

    .venv/bin/python bench/archive.py [--size-mib 1024] [--repeat 2] [--keep]

Builds a throw-away bubble-manager home with a study whose workspace holds SIZE MiB, half random
(incompressible) and half CSV-like text (compressible), then times, best of --repeat runs each,
interleaved so that both sides see the same machine load:

* snapshot: ours (`archive.snapshot`, in a child process) vs `tar -c | zstd -3 | age -r` (target >= 1.0)
* restore:  ours (`archive.restore`, in a child process) vs `age -d | zstd -d | tar -x` (target >= 0.8)
* peak memory (VmHWM / ru_maxrss) of the child that ran our snapshot (target < 100 MiB), and of an idle
  child that only imported the same modules, to show what the interpreter alone costs.
* our snapshot to a hybrid post-quantum (mlkem768x25519) archive key over the same snapshot to an
  X25519 key (target >= 0.98: the KEM runs once per file). The same workspace is moved between two
  studies of the same home, one with each kind of archive key.

Ratios are throughputs ours / baseline (> 1 means we are faster). Absolute times are printed for
context only; the ratios are the result.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
sys.path.insert(0, {repo!r})
from bubble_manager.config import load_settings
from bubble_manager.operations import Context
from bubble_manager.archive.snapshot import snapshot
from bubble_manager.archive.restore import restore
from bubble_manager.archive.age import parse_identity_file

def high_water_mark_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

context = Context.open(load_settings({home!r}))
mode = sys.argv[1]
before = high_water_mark_kib()
def cpu_seconds():  # this process's threads and the processes it ran
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime
cpu_before = cpu_seconds()
started = time.perf_counter()
if mode == "snapshot":
    result = snapshot(context, {slug!r}, actor="bench")
    out = {{"path": str(result.path), "size": result.size, "plaintext": result.plaintext_bytes}}
elif mode == "restore":
    identities = parse_identity_file(Path(sys.argv[3]).read_text())
    result = restore(context, Path(sys.argv[2]), Path(sys.argv[4]), identities, reason="bench", actor="bench")
    out = {{"members": result.members}}
else:
    out = {{}}
out["seconds"] = time.perf_counter() - started
out["cpu_seconds"] = cpu_seconds() - cpu_before
out["hwm_before_kib"] = before
out["hwm_kib"] = high_water_mark_kib()
print(json.dumps(out))
"""


def build_home(root: Path, size_mib: int) -> tuple[Path, str, Path, str]:
    """A home with keys, custodians, an active study and SIZE MiB of workspace; returns (home, slug, key, recipient)."""
    from bubble_manager import clock
    from bubble_manager.archive.keys import add_custodian, ensure_study_keys
    from bubble_manager.archive.age import X25519Identity
    from bubble_manager.archive.shares import combine_shares
    from bubble_manager.archive.keys import decrypt_share, study_share_files
    from bubble_manager.config import load_settings
    from bubble_manager.operations import Context, StudyOperations
    from bubble_manager.runtime.spec import StudyPaths
    from bubble_manager.signing import init_signing_key
    from bubble_manager.studies import Actor

    home = root / "home"
    (home / "warehouse").mkdir(parents=True)
    shutil.copy(REPO / "bubble_manager" / "data" / "demo_catalog.yaml", home / "warehouse" / "warehouse.catalog.yaml")
    init_signing_key(home)
    # X25519 study keys: Debian 12's age (1.1.1), the baseline, cannot write hybrid (age1pq1) files.
    # The hybrid recipient costs one KEM per file (bench/age_pq.py), not per byte.
    (home / "bubble_manager_config.py").write_text('c.PostQuantumSettings.archive_key_type = "x25519"\n')
    real_clock = clock.utcnow
    moments = iter([dt.datetime(2026, 11, 23, 9, tzinfo=dt.timezone.utc)] * 6
                   + [dt.datetime(2026, 12, 1, 9, tzinfo=dt.timezone.utc)] * 100)
    clock.utcnow = lambda: next(moments)
    context = Context.open(load_settings(home))
    identities = []
    for name in ("ada", "bert"):
        identity = X25519Identity.generate()
        identities.append((name, identity))
        (root / f"{name}.key").write_text(identity.to_string() + "\n")
        add_custodian(context, name, identity.recipient().to_string(), actor="bench")
    ops = StudyOperations(context)
    slug = "bench-study"
    ops.request(Actor("carol", frozenset({"researcher"})), {
        "title": "Benchmark", "slug": slug, "purpose": "Measure archive throughput.", "legal_basis": "bench",
        "members": ["alice"], "starts": "2026-12-01", "ends": "2027-05-31",
        "data": {"person": ["person_id"]}, "cohort": "SELECT person_id FROM person"})
    ops.submit(Actor("carol", frozenset({"researcher"})), slug)
    ops.approve(Actor("sam", frozenset({"steward"})), slug)
    ops.activate(Actor("admin", frozenset({"admin"})), slug)
    keys = ensure_study_keys(context, slug)
    pq_slug = "bench-pq"
    ops.request(Actor("carol", frozenset({"researcher"})), {
        "title": "Benchmark, post-quantum key", "slug": pq_slug, "purpose": "Measure hybrid archive throughput.",
        "legal_basis": "bench", "members": ["alice"], "starts": "2026-12-01", "ends": "2027-05-31",
        "data": {"person": ["person_id"]}, "cohort": "SELECT person_id FROM person"})
    ops.submit(Actor("carol", frozenset({"researcher"})), pq_slug)
    ops.approve(Actor("sam", frozenset({"steward"})), pq_slug)
    ops.activate(Actor("admin", frozenset({"admin"})), pq_slug)
    context.settings.config.PostQuantumSettings.archive_key_type = "mlkem768x25519"
    assert ensure_study_keys(context, pq_slug).archive_recipient.to_string().startswith("age1pq1")
    StudyPaths(home, pq_slug).root.mkdir(parents=True, exist_ok=True)
    clock.utcnow = real_clock
    files = {s["custodian"]: s["path"] for s in study_share_files(home, slug)}
    documents = [decrypt_share(files[name], root / f"{name}.key") for name, _ in identities]
    archive_identity = combine_shares(documents, slug)
    key_file = root / "archive.key"
    key_file.write_text(archive_identity.to_string() + "\n")
    context.close()

    paths = StudyPaths(home, slug)
    workspace = paths.workspace("alice")
    workspace.mkdir(parents=True)
    paths.shared.mkdir()
    write_workspace(workspace, size_mib)
    return home, slug, key_file, keys.archive_recipient.to_string()


def write_workspace(folder: Path, size_mib: int) -> None:
    rng = np.random.default_rng(0)
    file_mib = 64
    for index in range(max(1, size_mib // file_mib)):
        size = file_mib << 20
        if index % 2 == 0:
            data = rng.bytes(size)
        else:  # CSV-like rows: compressible, but not trivially
            rows = max(1, size // 40)
            ids = rng.integers(0, 10**9, rows)
            ages = rng.integers(18, 95, rows)
            codes = rng.choice([201826, 4329847, 316866, 4185932, 443392], rows)
            text = "\n".join(f"P{i:010d},{a},{c},2024-0{a % 9 + 1}-1{a % 9}" for i, a, c in zip(ids, ages, codes))
            data = (text.encode() * 2)[:size]
        (folder / f"part-{index:03d}.{'bin' if index % 2 == 0 else 'csv'}").write_bytes(data)


def run_child(home: Path, slug: str, *args: str) -> dict:
    script = CHILD.format(repo=str(REPO), home=str(home), slug=slug)
    result = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def timed_shell(command: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (all processes of the pipeline) of a shell command."""
    import resource

    def children_cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    cpu_before, started = children_cpu(), time.perf_counter()
    subprocess.run(command, shell=True, check=True, executable="/bin/bash")
    return time.perf_counter() - started, children_cpu() - cpu_before


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=1024, help="workspace size in MiB (default 1024)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best is kept")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    for tool in ("tar", "zstd", "age"):
        if not shutil.which(tool):
            print(f"{tool} not found: install Debian's {tool} (make test does)", file=sys.stderr)
            return 2
    root = Path(tempfile.mkdtemp(prefix="bm-bench-archive-"))
    try:
        print(f"building a {args.size_mib} MiB workspace in {root} ...", flush=True)
        home, slug, key_file, recipient = build_home(root, args.size_mib)
        study_dir = home / "studies" / slug
        subprocess.run(f"cat {study_dir}/workspaces/*/* > /dev/null", shell=True, check=True)  # warm the cache
        idle = run_child(home, slug, "idle")
        runs: dict[str, list[tuple[float, float]]] = {"ours_snapshot": [], "baseline_snapshot": [],
                                                      "ours_restore": [], "baseline_restore": [],
                                                      "hybrid_snapshot": []}
        pq_dir = home / "studies" / "bench-pq"
        peak_kib = 0
        for run in range(args.repeat):
            base_out = root / f"baseline-{run}.tar.zst.age"
            runs["baseline_snapshot"].append(timed_shell(
                f"set -o pipefail; tar -C {study_dir} -cf - workspaces shared | zstd -3 -q | age -r {recipient} "
                f"> {base_out}"))
            snap = run_child(home, slug, "snapshot")
            runs["ours_snapshot"].append((snap["seconds"], snap["cpu_seconds"]))
            peak_kib = max(peak_kib, snap["hwm_kib"])
            target = root / f"baseline-restore-{run}"
            target.mkdir()
            runs["baseline_restore"].append(timed_shell(
                f"set -o pipefail; age -d -i {key_file} {base_out} | zstd -d -q | tar -x -C {target}"))
            shutil.rmtree(target)
            base_out.unlink()
            restored = run_child(home, slug, "restore", snap["path"], str(key_file), str(root / f"ours-{run}"))
            runs["ours_restore"].append((restored["seconds"], restored["cpu_seconds"]))
            shutil.rmtree(root / f"ours-{run}")
            Path(snap["path"]).unlink()
            for folder in ("workspaces", "shared"):  # the same files, now in the study with a hybrid key
                (study_dir / folder).rename(pq_dir / folder)
            hybrid = run_child(home, "bench-pq", "snapshot")
            runs["hybrid_snapshot"].append((hybrid["seconds"], hybrid["cpu_seconds"]))
            Path(hybrid["path"]).unlink()
            for folder in ("workspaces", "shared"):
                (pq_dir / folder).rename(study_dir / folder)
        mib = args.size_mib
        best = {name: min(values) for name, values in runs.items()}  # fastest wall time, with its CPU time
        ratios = {}
        print(f"workspace {mib} MiB (half random, half CSV-like), best of {args.repeat}, {os.cpu_count()} CPUs, "
              f"load average {os.getloadavg()[0]:.1f}")
        for stage, baseline_name, target in (("snapshot", "tar|zstd -3|age", 1.0),
                                             ("restore", "age -d|zstd -d|tar -x", 0.8)):
            ours, base = best[f"ours_{stage}"], best[f"baseline_{stage}"]
            ratios[stage] = base[0] / ours[0]
            print(f"{stage:<9} ours {mib / ours[0]:7.1f} MiB/s   {baseline_name} {mib / base[0]:7.1f} MiB/s   "
                  f"ratio {ratios[stage]:.2f} (target >= {target})   CPU seconds ours {ours[1]:.2f} / "
                  f"baseline {base[1]:.2f} (all its processes)")
        hybrid, classic = best["hybrid_snapshot"], best["ours_snapshot"]
        ratios["hybrid"] = classic[0] / hybrid[0]
        print(f"snapshot to a hybrid mlkem768x25519 key {mib / hybrid[0]:7.1f} MiB/s over X25519 "
              f"{mib / classic[0]:7.1f} MiB/s: ratio {ratios['hybrid']:.3f} (target >= 0.98)   CPU seconds "
              f"{hybrid[1]:.2f} / {classic[1]:.2f}")
        print(f"snapshot peak memory {peak_kib / 1024:.1f} MiB (child process VmHWM; the same child idle after "
              f"imports: {idle['hwm_kib'] / 1024:.1f} MiB) (target < 100 MiB)")
        print(json.dumps({"size_mib": mib, "snapshot_ratio": round(ratios["snapshot"], 3),
                          "restore_ratio": round(ratios["restore"], 3),
                          "hybrid_over_x25519_snapshot_ratio": round(ratios["hybrid"], 3), "snapshot_peak_mib": round(peak_kib / 1024, 1),
                          "idle_mib": round(idle["hwm_kib"] / 1024, 1),
                          "runs_wall_cpu_s": {k: [[round(w, 2), round(c, 2)] for w, c in v] for k, v in runs.items()}}))
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
