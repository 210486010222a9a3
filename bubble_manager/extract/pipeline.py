"""The SQL work of a build (and of a steward's dry run), all inside one DuckDB connection.

1. `stage_cohort`: the cohort (query result, minus opted-out persons, limited to persons the
   warehouse knows) and, per requested table, the cohort's rows and requested columns as
   temporary tables. The warehouse is attached read-only as ``wh``.
2. `write_tables`: the person map (pseudonym, date shift) and one random renumbering per
   record-key domain are registered from NumPy arrays; each output table is one
   ``CREATE TABLE ... AS SELECT`` joining them, ordered by pseudonym.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Callable, Iterator

import duckdb
import numpy as np

from ..catalog import Catalog
from .cohort import check_warehouse, quote, sql_string
from .plan import ExtractPlan, TablePlan
from .pseudonyms import secure_permutation
from .transforms import column_expression, scrub_patterns_sql

ORDER_COLUMN = "_bm_order"  # catalog names start with a letter, so this never collides


def stage_name(table: str) -> str:
    return quote(f"stage_{table}")


@contextlib.contextmanager
def build_connection(database: str, *, memory_limit: str, threads: int, spill: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection for trusted SQL only (never the requester's): spills to `spill`."""
    config = {"memory_limit": memory_limit, "temp_directory": str(spill),
              "autoload_known_extensions": False, "autoinstall_known_extensions": False}
    if threads:
        config["threads"] = threads
    connection = duckdb.connect(database, config=config)
    try:
        yield connection
    finally:
        connection.close()


def attach_warehouse(connection: duckdb.DuckDBPyConnection, warehouse: Path, catalog: Catalog) -> None:
    connection.execute(f"ATTACH {sql_string(str(warehouse))} AS wh (READ_ONLY)")
    check_warehouse(connection, catalog)


def stage_cohort(connection: duckdb.DuckDBPyConnection, plan: ExtractPlan, selected: np.ndarray,
                 step: Callable[[str], None] = lambda _: None) -> np.ndarray:
    """Stage the cohort and its rows; return the cohort's person ids (sorted)."""
    connection.register("cohort_selected", {"person_id": np.asarray(selected, dtype=np.int64)})
    conditions = []
    if plan.person_table:
        table, key = plan.person_table
        conditions.append(f"EXISTS (SELECT 1 FROM wh.{quote(table)} p WHERE p.{quote(key)} = c.person_id)")
    if plan.opt_out:
        table, key = plan.opt_out
        conditions.append(f"NOT EXISTS (SELECT 1 FROM wh.{quote(table)} o WHERE o.{quote(key)} = c.person_id)")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    connection.execute("CREATE TEMP TABLE cohort AS SELECT DISTINCT c.person_id "
                       f"FROM cohort_selected c {where} ORDER BY c.person_id")
    connection.unregister("cohort_selected")
    persons = connection.execute("SELECT person_id FROM cohort ORDER BY person_id").fetchnumpy()["person_id"]
    step("cohort")
    for table in plan.tables:
        columns = ", ".join(f"s.{quote(c)}" for c in table.source_columns)
        connection.execute(f"CREATE TEMP TABLE {stage_name(table.name)} AS SELECT {columns} FROM wh.{quote(table.name)} s "
                           f"WHERE s.{quote(table.person_key)} IN (SELECT person_id FROM cohort)")
        step(f"read {table.name}")
    if plan.needs_identity and plan.identity:
        connection.execute(f"CREATE TEMP TABLE scrub_patterns AS {scrub_patterns_sql(plan.identity, 'cohort')}")
    return np.asarray(persons, dtype=np.int64)


def write_tables(connection: duckdb.DuckDBPyConnection, plan: ExtractPlan, persons: np.ndarray, pseudonyms: list[str],
                 offsets: np.ndarray, step: Callable[[str], None] = lambda _: None) -> dict[str, int]:
    """Write every output table into the connection's main database; return row counts."""
    connection.register("person_map_input", {"person_id": persons, "pseudonym": np.array(pseudonyms, dtype=object),
                                             "shift": np.asarray(offsets, dtype=np.int32)})
    connection.execute("CREATE TEMP TABLE person_map AS SELECT * FROM person_map_input")
    connection.unregister("person_map_input")
    aliases = _renumber_domains(connection, plan)
    rows = {}
    for table in plan.tables:
        connection.execute(output_table_sql(table, aliases))
        rows[table.name] = connection.execute(f"SELECT count(*) FROM main.{quote(table.name)}").fetchall()[0][0]
        step(f"write {table.name}")
    return rows


def _renumber_domains(connection: duckdb.DuckDBPyConnection, plan: ExtractPlan) -> dict[str, str]:
    """One map per record-key domain: each distinct source id gets 1..n in a random order."""
    aliases = {}
    for number, (domain, uses) in enumerate(sorted(plan.record_key_domains().items())):
        ids = " UNION ALL ".join(f"SELECT {quote(column)} AS id FROM {stage_name(table)}" for table, column in uses)
        connection.execute(f"CREATE TEMP TABLE key_source_{number} AS "
                           f"SELECT id, row_number() OVER () AS position FROM (SELECT DISTINCT id FROM ({ids}) "
                           "WHERE id IS NOT NULL)")
        count = connection.execute(f"SELECT count(*) FROM key_source_{number}").fetchall()[0][0]
        connection.register("permutation_input", {"position": np.arange(1, count + 1, dtype=np.int64),
                                                  "new_id": secure_permutation(count)})
        connection.execute(f"CREATE TEMP TABLE key_map_{number} AS SELECT k.id AS src, p.new_id "
                           f"FROM key_source_{number} k JOIN permutation_input p USING (position)")
        connection.unregister("permutation_input")
        connection.execute(f"DROP TABLE key_source_{number}")
        aliases[domain] = f"key_map_{number}"
    return aliases


def output_table_sql(table: TablePlan, maps: dict[str, str]) -> str:
    joins = [f"JOIN person_map m ON s.{quote(table.person_key)} = m.person_id"]
    expressions = []
    for index, column in enumerate(table.columns):
        alias = None
        if column.transform == "renumber":
            alias = f"r{index}"
            joins.append(f"LEFT JOIN {maps[column.domain]} {alias} ON s.{quote(column.source)} = {alias}.src")
        if column.transform == "scrub" and not any(" sp ON " in join for join in joins):
            joins.append(f"LEFT JOIN scrub_patterns sp ON s.{quote(table.person_key)} = sp.person_id")
        expressions.append(f"{column_expression(column, domain_alias=alias)} AS {quote(column.output)}")
    dates = [quote(c.output) for c in table.columns if c.transform == "shift_days"]
    others = [quote(c.output) for c in table.columns if c.transform not in ("shift_days", "pseudonym")]
    order = ", ".join([ORDER_COLUMN, *dates, *others])
    return (f"CREATE TABLE main.{quote(table.name)} AS SELECT * EXCLUDE ({ORDER_COLUMN}) FROM ("
            f"SELECT m.pseudonym AS {ORDER_COLUMN}, {', '.join(expressions)} "
            f"FROM {stage_name(table.name)} s {' '.join(joins)}) ORDER BY {order}")
