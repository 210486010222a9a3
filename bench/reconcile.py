"""One reconciler tick with 1,000 and 10,000 studies in the store and nothing due, and their ratio.

The tick must load only what is due (indexed queries on study states and dates), so its time may
grow with the store far slower than the store does. Target: ratio at most 10 (linear or better);
aim under 1 s for 10,000 studies. Also printed, as the baseline measured in the same run: loading
every study of the store once (what a tick that scanned all studies would cost at least).

The stores hold a realistic mix: drafts, submitted requests, approved studies starting later,
active studies ending beyond the warning horizon, archived studies within retention, purged ones.

    .venv/bin/python bench/reconcile.py [--sizes 1000 10000] [--ticks 7] [--db-url postgresql+psycopg://...]
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bubble_manager import clock, studies  # noqa: E402
from bubble_manager.config import load_settings  # noqa: E402
from bubble_manager.lifecycle import Reconciler, reconcile  # noqa: E402
from bubble_manager.operations import Context  # noqa: E402
from bubble_manager.signing import init_signing_key  # noqa: E402
from bubble_manager.store import list_studies, save_study  # noqa: E402
from bubble_manager.studies import SYSTEM, Actor  # noqa: E402
from bubble_manager.study_request import parse_request  # noqa: E402
from bubble_manager.study_request import load_request_yaml  # noqa: E402

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CAROL, SAM = Actor("carol", frozenset({"researcher"})), Actor("sam", frozenset({"steward"}))
# (share of the store, how to build it)
MIX = [(0.10, "draft"), (0.10, "submitted"), (0.20, "approved"), (0.30, "active"), (0.20, "archived"),
       (0.10, "purged")]


EXAMPLE = load_request_yaml((REPO / "docs" / "examples" / "study-request.yaml").read_text())


def request_document(slug: str, members: list[str], starts: dt.date, ends: dt.date) -> dict:
    return {**EXAMPLE, "slug": slug, "title": f"Bench study {slug}", "members": members,
            "starts": starts.isoformat(), "ends": ends.isoformat()}


def build_study(slug: str, kind: str, number: int, catalog) -> studies.Study:  # noqa: ANN001
    policy = studies.Policy(max_study_days=3000)
    day = dt.timedelta(days=1)
    spread = number % 300
    if kind in ("draft", "submitted", "approved"):
        starts, ends, created = NOW.date() + 30 * day + spread * day, NOW.date() + 400 * day, NOW
    elif kind == "active":
        starts, ends, created = NOW.date() - 100 * day, NOW.date() + (30 + spread) * day, NOW - 101 * day
    else:
        starts, ends, created = NOW.date() - 900 * day, NOW.date() - (400 - spread) * day, NOW - 901 * day

    def run(study, actor, action, at):  # noqa: ANN001, ANN202
        return studies.apply(study, actor, action, now=at, policy=policy).study

    study = run(None, CAROL, studies.Create(parse_request(request_document(slug, ["alice"], starts, ends))), created)
    if kind == "draft":
        return study
    study = run(study, CAROL, studies.Submit(catalog), created)
    if kind == "submitted":
        return study
    study = run(study, SAM, studies.Approve("ok"), created)
    if kind == "approved":
        return study
    study = run(study, SYSTEM, studies.Activate(), clock.start_of_day(starts))
    if kind == "active":
        return study
    closed = clock.end_of_day(ends)
    study = run(study, SYSTEM, studies.Expire(), closed)
    if kind == "purged":
        study = run(study, SAM, studies.SetRetention(0, "bench"), closed)
    study = run(study, SYSTEM, studies.Archive(), closed)
    if kind == "purged":
        study = run(study, SYSTEM, studies.Purge(), closed + 2 * day)
    return study


def fill(context: Context, count: int) -> None:
    kinds = [kind for share, kind in MIX for _ in range(round(share * count))]
    for first in range(0, len(kinds), 250):  # small transactions: the session's flushes stay cheap
        with context.store.transaction() as session:
            for number, kind in enumerate(kinds[first:first + 250], start=first):
                save_study(session, build_study(f"s-{kind[:3]}-{number:05d}", kind, number, context.catalog))


def measure(count: int, ticks: int, db_url: str | None) -> dict[str, float]:
    home = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    try:
        (home / "warehouse").mkdir()
        shutil.copy(REPO / "bubble_manager" / "data" / "demo_catalog.yaml", home / "warehouse" / "warehouse.catalog.yaml")
        init_signing_key(home)
        context = Context.open(load_settings(home, db_url=db_url))
        started = time.perf_counter()
        fill(context, count)
        filled = time.perf_counter() - started
        clock.utcnow = lambda: NOW
        settings = Reconciler(config=context.settings.config)
        reports = [reconcile(context, hub=None, settings=settings) for _ in range(ticks + 1)]
        assert all(r.acquired and not r.steps and not r.planned for r in reports), "something was due"
        samples = sorted(r.seconds for r in reports[1:])          # the first one warms caches
        started = time.perf_counter()
        with context.store.transaction() as session:
            loaded = len(list_studies(session))
        scan = time.perf_counter() - started
        assert loaded == count
        context.close()
        return {"tick": statistics.median(samples), "tick_max": samples[-1], "scan_all": scan, "fill": filled}
    finally:
        shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[1000, 10_000], metavar=("SMALL", "LARGE"))
    parser.add_argument("--ticks", type=int, default=7, help="ticks measured per size (median reported)")
    parser.add_argument("--db-url", default=None, help="a PostgreSQL URL of an empty database (default: SQLite)")
    args = parser.parse_args()
    small, large = (measure(n, args.ticks, args.db_url) for n in args.sizes)
    for size, result in zip(args.sizes, (small, large)):
        print(f"{size:>6} studies: tick {result['tick'] * 1000:8.1f} ms (max {result['tick_max'] * 1000:.1f} ms)   "
              f"baseline, loading every study once: {result['scan_all'] * 1000:8.1f} ms   (store filled in "
              f"{result['fill']:.1f} s)")
    ratio = large["tick"] / small["tick"]
    growth = args.sizes[1] / args.sizes[0]
    print(f"tick ratio {args.sizes[1]:,}/{args.sizes[0]:,}: {ratio:.2f} (target <= {growth:.0f}: linear or better)")
    print(f"tick vs loading every study, {args.sizes[1]:,} studies: {large['tick'] / large['scan_all']:.4f}")
    print(f"{args.sizes[1]:,} studies: tick {'under' if large['tick'] < 1 else 'OVER'} 1 s")
    return 0 if ratio <= growth else 1


if __name__ == "__main__":
    sys.exit(main())
