"""Benchmark: build the synthetic demo warehouse, against DuckDB writing the same shape from range().

Usage: python bench/warehouse.py [--persons 1000000] [--seed 0] [--events-per-person 25]

The baseline, measured in the same run and the same temporary folder, creates every catalog
table with ``CREATE TABLE AS SELECT`` simple expressions of ``range()``: same tables, column
types and row counts, no randomness, no realism. The ratio ours/baseline is build time over
baseline time (lower is better; 1.0 would mean realism costs nothing).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from bubble_manager.catalog import Catalog, load_catalog
from bubble_manager.extract.demo_warehouse import PACKAGED_CATALOG, build_demo_warehouse

# One simple expression of the row number i per catalog type; k varies it between columns.
BASELINE_EXPRESSIONS = {
    "BIGINT": "CAST(i * 7919 + {k} AS BIGINT)",
    "INTEGER": "CAST(i % 100000 + {k} AS INTEGER)",
    "SMALLINT": "CAST(i % 1000 + {k} AS SMALLINT)",
    "DOUBLE": "CAST(i / 7.0 + {k} AS DOUBLE)",
    "VARCHAR": "'v' || CAST(i + {k} AS VARCHAR)",
    "DATE": "DATE '2010-01-01' + CAST((i + {k}) % 5844 AS INTEGER)",
    "TIMESTAMP": "TIMESTAMP '2010-01-01' + to_seconds(i + {k})",
    "BOOLEAN": "(i + {k}) % 2 = 0",
}


def build_baseline(path: Path, catalog: Catalog, rows: dict[str, int]) -> float:
    """Write the baseline file; return its seconds (connect to fsync, like the real build)."""
    started = time.perf_counter()
    con = duckdb.connect(str(path))
    try:
        for table in catalog.tables.values():
            columns = ", ".join(
                f"{BASELINE_EXPRESSIONS[column.type].format(k=k)} AS {column.name}"
                for k, column in enumerate(table.columns.values())
            )
            con.execute(f"CREATE TABLE {table.name} AS SELECT {columns} FROM range({rows[table.name]}) AS r(i)")
        con.execute("CHECKPOINT")
    finally:
        con.close()
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    return time.perf_counter() - started


def check_same_shape(ours: Path, baseline: Path) -> None:
    def shape(path: Path) -> list[tuple]:
        with duckdb.connect(str(path), read_only=True) as con:
            return con.execute(
                "SELECT table_name, column_name, data_type, (SELECT estimated_size FROM duckdb_tables() t "
                "WHERE t.table_name = c.table_name) FROM information_schema.columns c ORDER BY ALL"
            ).fetchall()

    if shape(ours) != shape(baseline):
        raise SystemExit("the baseline does not have the same tables, types and row counts as the warehouse")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=1_000_000, help="persons to generate (default 1000000)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--events-per-person", type=float, default=25.0, help="mean condition+drug+measurement rows per person")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    catalog = load_catalog(PACKAGED_CATALOG)
    with tempfile.TemporaryDirectory(prefix="bm-bench-warehouse-") as folder:
        summary = build_demo_warehouse(
            Path(folder) / "warehouse.duckdb",
            args.persons,
            seed=args.seed,
            progress=not args.no_progress,
            events_per_person=args.events_per_person,
        )
        baseline_path = Path(folder) / "baseline.duckdb"
        baseline_seconds = build_baseline(baseline_path, catalog, summary.rows)
        check_same_shape(summary.path, baseline_path)
        ours_size, baseline_size = summary.path.stat().st_size, baseline_path.stat().st_size
    total = summary.total_rows
    print(f"demo warehouse: {args.persons:,} persons, seed {args.seed}, {os.cpu_count()} CPUs")
    for table, count in summary.rows.items():
        print(f"  {table:<22} {count:>12,} rows")
    events = sum(summary.rows[t] for t in ("condition_occurrence", "drug_exposure", "measurement"))
    print(f"  events per person      {events / args.persons:>12.1f}")
    print(f"ours:     {total:>12,} rows in {summary.seconds:7.2f} s = {total / summary.seconds:>12,.0f} rows/s, {ours_size / 1e6:,.0f} MB")
    print(f"baseline: {total:>12,} rows in {baseline_seconds:7.2f} s = {total / baseline_seconds:>12,.0f} rows/s, {baseline_size / 1e6:,.0f} MB")
    print(f"ratio ours/baseline (time): {summary.seconds / baseline_seconds:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
