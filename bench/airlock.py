"""The airlock's cost: checks in the sandboxed parser against the same checks in-process, and the
no-follow quarantine copy against a plain copy, with their ratios (baselines measured in this run).

Targets: for a table of 1,000,000 cells the sandbox (bubblewrap, nobody, limits, a fresh Python)
adds at most 50% (ratio <= 1.5); a small request costs well under a second (the sandbox's fixed
cost: bwrap, setpriv and a Python start); the quarantine copy of 200 files (100 MiB) is at most 4x a
plain `shutil.copytree`, which neither hashes (sha256) nor fsyncs each file as the quarantine does.

    .venv/bin/python bench/airlock.py [--cells 1000000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bubble_manager.airlock.checks import CheckOptions  # noqa: E402
from bubble_manager.airlock.parser_child import RequestChecker  # noqa: E402
from bubble_manager.airlock.quarantine import MANIFEST, MANIFEST_FORMAT, stage_outbox_request  # noqa: E402
from bubble_manager.airlock.sandbox import ParserInput, run_parser  # noqa: E402
from bubble_manager.airlock.settings import AirlockSettings  # noqa: E402


def best(runs: int, action) -> float:  # noqa: ANN001
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        action()
        times.append(time.perf_counter() - started)
    return min(times)


def table(path: Path, cells: int) -> Path:
    columns = 10
    with path.open("w") as out:
        out.write(",".join(["group"] + [f"n{i}" for i in range(1, columns)]) + "\n")
        for row in range(cells // columns):
            out.write(",".join([f"g{row % 97}"] + [str(10 + (row * j) % 900) for j in range(1, columns)]) + "\n")
    return path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    settings = AirlockSettings(max_cells_checked=10 * args.cells)
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-airlock-") as scratch:
        root = Path(scratch)
        for label, cells in (("small table (40 cells)", 40), (f"large table ({args.cells:,} cells)", args.cells)):
            path = table(root / f"t{cells}.csv", cells)
            counts = tuple(f"n{i}" for i in range(1, 10))
            data = path.read_bytes()

            def in_process() -> None:
                RequestChecker(CheckOptions.from_dict(settings.check_options()), scratch).check(path.name, data,
                                                                                                list(counts))

            def sandboxed() -> None:
                run_parser(settings, [ParserInput(path.name, path, len(data), counts)])

            baseline, measured = best(args.runs, in_process), best(args.runs, sandboxed)
            results[label] = {"in_process_s": round(baseline, 3), "sandboxed_s": round(measured, 3),
                              "ratio": round(measured / baseline, 2)}
        workspace = root / "workspace"
        folder = workspace / "outbox" / "big"
        folder.mkdir(parents=True)
        block = bytes(range(256)) * 2048
        for number in range(200):
            (folder / f"part{number:03d}.bin").write_bytes(block)
        (folder / MANIFEST).write_text(json.dumps({"format": MANIFEST_FORMAT, "justification": "bench"}))
        home = root / "home"

        def plain() -> None:
            target = root / "plain"
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(folder, target)

        def quarantined() -> None:
            staged = stage_outbox_request(home, "bench", workspace, "big", max_file_bytes=1 << 30,
                                          max_total_bytes=1 << 32, max_files=1000, max_manifest_bytes=65536)
            staged.discard()

        baseline, measured = best(args.runs, plain), best(args.runs, quarantined)
        results["quarantine copy (200 files, 100 MiB)"] = {"plain_copy_s": round(baseline, 3),
                                                          "no_follow_copy_s": round(measured, 3),
                                                          "ratio": round(measured / baseline, 2)}
    for label, figures in results.items():
        print(f"{label:42s} " + "  ".join(f"{k} {v}" for k, v in figures.items()))
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
