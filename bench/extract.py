"""Benchmark: build a study extract, against a plain DuckDB copy of the same rows and columns.

Usage: python bench/extract.py [--persons 1000000] [--warehouse FILE] [--memory-limit 2GB]
                               [--cohort-share 10] [--threads 0]

A demo warehouse of `--persons` persons (about 25 events each) is built, or reused with
`--warehouse`. A study requesting every clinical table and column (the extract drops the source
values) selects about `--cohort-share` percent of the persons. Measured in the same run, with the
same DuckDB memory limit and threads:

* extract: `build_extract` end to end (sandboxed cohort query, opt-outs, pseudonyms, date
  shifts, generalisation, random renumbering of record keys, rows ordered by pseudonym, risk
  report, checkpoint, fsync, sha256, vault, signed manifest), with the cohort database already
  derived, as it is for every build but the first on a warehouse version;
* baseline: one plain ``CREATE TABLE AS SELECT`` per table of the same source columns for the
  same persons into a new DuckDB file, checkpointed: no protection at all.

It prints both times and the ratio extract/baseline (target: at most 1.5), plus the one-off
cost of deriving the cohort database.
"""

from __future__ import annotations

import argparse
import datetime as dt
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bubble_manager import clock  # noqa: E402
from bubble_manager.archive.age import X25519Identity  # noqa: E402
from bubble_manager.archive.keys import add_custodian  # noqa: E402
from bubble_manager.config import load_settings  # noqa: E402
from bubble_manager.extract.build import build_extract  # noqa: E402
from bubble_manager.extract.cohort import ensure_cohort_database, quote, sql_string  # noqa: E402
from bubble_manager.extract.demo_warehouse import build_demo_warehouse, catalog_path_for  # noqa: E402
from bubble_manager.extract.plan import make_plan  # noqa: E402
from bubble_manager.extract.settings import cohort_database_folder, extract_settings  # noqa: E402
from bubble_manager.operations import Context, StudyOperations  # noqa: E402
from bubble_manager.signing import init_signing_key  # noqa: E402
from bubble_manager.studies import Actor  # noqa: E402

TABLES = ("person", "visit_occurrence", "condition_occurrence", "drug_exposure", "measurement", "note")


def study_document(catalog, share: int) -> dict:
    data = {name: [c for c in catalog.table(name).columns if catalog.column(name, c).column_class != "free_text"]
            for name in TABLES}
    return {"title": "Extract benchmark", "slug": "bench", "purpose": "Measure the extract build against a plain copy.",
            "legal_basis": "benchmark on synthetic data", "members": ["alice"], "starts": "2026-12-01",
            "ends": "2027-05-31", "data": data,
            "cohort": f"SELECT person_id FROM person WHERE hash(person_id) % 100 < {share}"}


def make_home(root: Path, warehouse: Path, memory_limit: str, threads: int) -> Path:
    home = root / "home"
    (home / "warehouse").mkdir(parents=True)
    shutil.copy(catalog_path_for(warehouse), home / "warehouse" / "warehouse.catalog.yaml")
    (home / "warehouse" / "warehouse.duckdb").symlink_to(warehouse.resolve())
    (home / "bubble_manager_config.py").write_text(
        "c.ArchiveSettings.custodian_threshold = 2\n"
        f"c.ExtractSettings.build_memory_limit = {memory_limit!r}\n"
        f"c.ExtractSettings.build_threads = {threads}\n"
        "c.ExtractSettings.cohort_timeout_seconds = 600\n"
        "c.ExtractSettings.cohort_memory_limit = '2GB'\n")
    init_signing_key(home)
    return home


def baseline(out: Path, warehouse: Path, plan, cohort_sql: str, memory_limit: str, threads: int, spill: Path) -> float:
    """The same persons' rows and source columns, copied with plain CREATE TABLE AS SELECT."""
    started = time.perf_counter()
    config = {"memory_limit": memory_limit, "temp_directory": str(spill)}
    if threads:
        config["threads"] = threads
    with duckdb.connect(str(out), config=config) as connection:
        connection.execute(f"ATTACH {sql_string(str(warehouse))} AS wh (READ_ONLY)")
        connection.execute(f"CREATE TEMP TABLE cohort AS SELECT person_id FROM ({cohort_sql.replace('FROM person', 'FROM wh.person')})")
        for table in plan.tables:
            columns = ", ".join(f"s.{quote(c)}" for c in table.source_columns)
            connection.execute(f"CREATE TABLE main.{quote(table.name)} AS SELECT {columns} FROM wh.{quote(table.name)} s "
                               f"WHERE s.{quote(table.person_key)} IN (SELECT person_id FROM cohort)")
        connection.execute("DETACH wh")
        connection.execute("CHECKPOINT")
    return time.perf_counter() - started


def cpu_seconds() -> float:
    """CPU time of this process's threads and of the processes it waited for (the cohort child)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measured(run) -> tuple[float, float]:  # noqa: ANN001 - a callable
    """Wall seconds and CPU seconds of `run()`."""
    cpu, started = cpu_seconds(), time.perf_counter()
    run()
    return time.perf_counter() - started, cpu_seconds() - cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000)
    parser.add_argument("--warehouse", type=Path, help="reuse this demo warehouse (its catalog beside it)")
    parser.add_argument("--memory-limit", default="2GB")
    parser.add_argument("--threads", type=int, default=0, help="DuckDB threads (0: every core)")
    parser.add_argument("--cohort-share", type=int, default=10, help="percent of persons in the cohort")
    parser.add_argument("--rounds", type=int, default=1, help="alternate extract and baseline this many times")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-extract-") as scratch:
        root = Path(scratch)
        warehouse = args.warehouse
        if warehouse is None:
            warehouse = root / "warehouse" / "warehouse.duckdb"
            started = time.perf_counter()
            summary = build_demo_warehouse(warehouse, args.persons, seed=1, progress=True)
            print(f"warehouse: {summary.persons} persons, {summary.total_rows} rows in "
                  f"{time.perf_counter() - started:.1f} s")
        clock.utcnow = lambda: dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.timezone.utc)
        context = Context.open(load_settings(make_home(root, warehouse, args.memory_limit, args.threads)))
        for name in ("ada", "bert", "chloe"):
            add_custodian(context, name, X25519Identity.generate().recipient().to_string(), actor="bench")
        document = study_document(context.catalog, args.cohort_share)
        operations = StudyOperations(context)
        operations.request(Actor("carol", frozenset({"researcher"})), document)
        operations.submit(Actor("carol", frozenset({"researcher"})), "bench")
        study = operations.approve(Actor("sam", frozenset({"steward"})), "bench")
        plan = make_plan(study, context.catalog)
        settings = extract_settings(context)

        started = time.perf_counter()
        ensure_cohort_database(warehouse, context.catalog, cohort_database_folder(context, settings))
        derive = time.perf_counter() - started

        admin = Actor("admin", frozenset({"admin"}))
        ours, theirs, results = [], [], []
        for round_number in range(args.rounds):
            ours.append(measured(lambda: results.append(build_extract(context, admin, "bench", progress=True))))
            spill = root / f"baseline-spill-{round_number}"
            spill.mkdir()
            out = root / f"baseline-{round_number}.duckdb"
            theirs.append(measured(lambda: baseline(out, warehouse, plan, document["cohort"], args.memory_limit,
                                                    args.threads, spill)))
            out.unlink()
            shutil.rmtree(spill)
        result = results[-1]
        context.close()

    (best_ours, ours_cpu), (best_theirs, theirs_cpu) = min(ours), min(theirs)
    rows = sum(result.rows.values())
    print(f"cohort: {result.persons} persons, extract rows: {rows} ({', '.join(f'{t} {n}' for t, n in result.rows.items())})")
    print(f"memory limit {args.memory_limit}, threads {args.threads or 'all'}")
    print(f"cohort database (once per warehouse version): {derive:.2f} s")
    print(f"extract build: {best_ours:.2f} s, {ours_cpu:.2f} CPU s   (rounds: {', '.join(f'{t:.2f}' for t, _ in ours)})")
    print(f"baseline CREATE TABLE AS copy: {best_theirs:.2f} s, {theirs_cpu:.2f} CPU s   "
          f"(rounds: {', '.join(f'{t:.2f}' for t, _ in theirs)})")
    print(f"ratio extract/baseline: {best_ours / best_theirs:.2f} (target <= 1.5); "
          f"CPU time ratio {ours_cpu / theirs_cpu:.2f}")
    print(f"ratio with the cohort database derived in the same build: {(best_ours + derive) / best_theirs:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
