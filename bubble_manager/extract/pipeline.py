"""The SQL work of a build (and of a steward's dry run), all inside one DuckDB connection.

1. `resolve_cohort`: the persons of the cohort: the query's result, minus opted-out persons,
   limited to persons the warehouse knows.
2. `register_person_map`: each person's pseudonym, date shift and the rank of the pseudonym in
   sorted order (so rows sort on an integer), registered from NumPy arrays.
3. `stage_tables`: per requested table, the cohort's rows and source columns joined with the
   person map, as temporary tables (spilled to the private folder if memory runs out).
4. `write_tables`: each output table is one ``CREATE TABLE ... AS SELECT`` over its staged
   rows, ordered by pseudonym. Record keys get 1..n in a random order: a table's own key by a
   positional join with a permutation drawn in NumPy (no hashing of the key at all), references
   to it through a map built the same way.

The connection runs only this module's SQL, never a requester's. Join build sides are written
on the right and the optimizer is told not to swap them: registered arrays have no statistics,
and letting it guess built million-row hash tables on the wrong side.
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
from .transforms import PERSON_COLUMNS, column_expression, scrub_patterns_sql

Step = Callable[[str], None]


class KeyNotUnique(ValueError):
    """A record key that other tables reference is not unique in its own table."""


def stage_name(table: str) -> str:
    return quote(f"stage_{table}")


@contextlib.contextmanager
def build_connection(database: str, *, memory_limit: str, threads: int, spill: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A DuckDB connection for this module's SQL only: spills to `spill`, no extension loading."""
    config = {"memory_limit": memory_limit, "temp_directory": str(spill),
              "autoload_known_extensions": False, "autoinstall_known_extensions": False}
    if threads:
        config["threads"] = threads
    connection = duckdb.connect(database, config=config)
    try:
        connection.execute("SET disabled_optimizers = 'build_side_probe_side'")
        yield connection
    finally:
        connection.close()


def attach_warehouse(connection: duckdb.DuckDBPyConnection, warehouse: Path, catalog: Catalog) -> None:
    connection.execute(f"ATTACH {sql_string(str(warehouse))} AS wh (READ_ONLY)")
    check_warehouse(connection, catalog)


def resolve_cohort(connection: duckdb.DuckDBPyConnection, plan: ExtractPlan, selected: np.ndarray) -> np.ndarray:
    """The cohort's person ids (sorted): selected, known to the warehouse, not opted out."""
    connection.register("cohort_selected", {"person_id": np.asarray(selected, dtype=np.int64)})
    conditions = []
    if plan.person_table:
        table, key = plan.person_table
        conditions.append(f"c.person_id IN (SELECT {quote(key)} FROM wh.{quote(table)})")
    if plan.opt_out:
        table, key = plan.opt_out
        conditions.append(f"c.person_id NOT IN (SELECT {quote(key)} FROM wh.{quote(table)} "
                          f"WHERE {quote(key)} IS NOT NULL)")
    where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
    persons = connection.execute(f"SELECT DISTINCT c.person_id FROM cohort_selected c {where} ORDER BY 1"
                                 ).fetchnumpy()["person_id"]
    connection.unregister("cohort_selected")
    return np.asarray(persons, dtype=np.int64)


def register_person_map(connection: duckdb.DuckDBPyConnection, persons: np.ndarray, pseudonyms: list[str] | None,
                        offsets: np.ndarray | None) -> None:
    """`person_map(person_id, pseudonym, shift, rank)`; a dry run passes no pseudonyms."""
    count = len(persons)
    names = np.array(pseudonyms if pseudonyms is not None else [None] * count, dtype=object)
    rank = np.empty(count, dtype=np.int64)
    rank[np.argsort(names.astype(str)) if pseudonyms is not None else np.arange(count)] = np.arange(count)
    shifts = np.asarray(offsets if offsets is not None else np.zeros(count), dtype=np.int32)
    connection.register("person_map_input", {"person_id": persons, "pseudonym": names, "shift": shifts, "rank": rank})
    connection.execute("CREATE OR REPLACE TEMP TABLE person_map AS SELECT * FROM person_map_input")
    connection.unregister("person_map_input")


def stage_tables(connection: duckdb.DuckDBPyConnection, plan: ExtractPlan, step: Step = lambda _: None) -> None:
    """The cohort's rows of every requested table, with the person's pseudonym, shift and rank."""
    person = ", ".join(f"m.{name} AS {alias}" for name, alias in PERSON_COLUMNS.items())
    for table in plan.tables:
        columns = ", ".join(f"s.{quote(c)}" for c in table.source_columns)
        connection.execute(f"CREATE OR REPLACE TEMP TABLE {stage_name(table.name)} AS SELECT {columns}, {person} "
                           f"FROM wh.{quote(table.name)} s JOIN person_map m ON s.{quote(table.person_key)} = m.person_id")
        step(f"read {table.name}")
    if plan.needs_identity and plan.identity:
        connection.execute(f"CREATE TEMP TABLE scrub_patterns AS {scrub_patterns_sql(plan.identity, 'person_map')}")


def write_tables(connection: duckdb.DuckDBPyConnection, plan: ExtractPlan, step: Step = lambda _: None) -> dict[str, int]:
    """Write every output table into the connection's main database; return row counts."""
    positional, maps = _renumbering(connection, plan)
    rows = {}
    for table in plan.tables:
        connection.execute(output_table_sql(table, positional.get(table.name), maps))
        rows[table.name] = connection.execute(f"SELECT count(*) FROM main.{quote(table.name)}").fetchall()[0][0]
        step(f"write {table.name}")
    return rows


def _renumbering(connection: duckdb.DuckDBPyConnection, plan: ExtractPlan) -> tuple[dict[str, tuple[str, str]], dict[str, str]]:
    """Per table, its own key's permutation (table -> (column, permutation table)); per domain
    that other columns reference, a map from source id to new id (domain -> map table)."""
    positional: dict[str, tuple[str, str]] = {}
    maps: dict[str, str] = {}
    for number, (domain, uses) in enumerate(sorted(plan.record_key_domains().items())):
        owner_table, _, owner_column = domain.partition(".")
        owned = (owner_table, owner_column) in uses
        referenced = any(use != (owner_table, owner_column) for use in uses)
        if owned and owner_table not in positional:
            count = connection.execute(f"SELECT count(*) FROM {stage_name(owner_table)}").fetchall()[0][0]
            permutation = f"key_permutation_{number}"
            _register_table(connection, permutation, {"new_id": secure_permutation(count)})
            positional[owner_table] = (owner_column, permutation)
            if referenced:
                maps[domain] = _map_from_owner(connection, number, owner_table, owner_column, permutation, domain)
        else:  # only referenced here, or a second own key of a table
            maps[domain] = _map_from_references(connection, number, uses)
    return positional, maps


def _map_from_owner(connection: duckdb.DuckDBPyConnection, number: int, table: str, column: str, permutation: str,
                    domain: str) -> str:
    name = f"key_map_{number}"
    connection.execute(f"CREATE TEMP TABLE {name} AS SELECT s.{quote(column)} AS src, p.new_id "
                       f"FROM {stage_name(table)} s POSITIONAL JOIN {permutation} p WHERE s.{quote(column)} IS NOT NULL")
    rows, distinct = connection.execute(f"SELECT count(*), count(DISTINCT src) FROM {name}").fetchall()[0]
    if rows != distinct:
        raise KeyNotUnique(f"the record key {domain} is not unique in the warehouse ({rows - distinct} repeated ids), "
                           "yet other columns reference it; fix the catalog (is it really the table's key?)")
    return name


def _map_from_references(connection: duckdb.DuckDBPyConnection, number: int, uses: list[tuple[str, str]]) -> str:
    """Ids referenced by tables whose owner table is not in the extract: distinct ids, shuffled."""
    ids = " UNION ALL ".join(f"SELECT {quote(column)} AS id FROM {stage_name(table)}" for table, column in uses)
    distinct = connection.execute(f"SELECT DISTINCT id FROM ({ids}) WHERE id IS NOT NULL").fetchnumpy()["id"]
    name = f"key_map_{number}"
    _register_table(connection, name, {"src": np.asarray(distinct, dtype=np.int64),
                                       "new_id": secure_permutation(len(distinct))})
    return name


def _register_table(connection: duckdb.DuckDBPyConnection, name: str, columns: dict[str, np.ndarray]) -> None:
    connection.register(f"{name}_input", columns)
    connection.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {name}_input")
    connection.unregister(f"{name}_input")


def output_table_sql(table: TablePlan, own: tuple[str, str] | None, maps: dict[str, str]) -> str:
    """CREATE TABLE of one output table from its staged rows, ordered by pseudonym."""
    sources = [f"{stage_name(table.name)} s"]
    if own is not None:
        sources.append(f"POSITIONAL JOIN {own[1]} p")
    expressions, order_dates, order_keys = [], [], []
    for index, column in enumerate(table.columns):
        alias = None
        if column.transform == "renumber":
            if own is not None and column.source == own[0]:
                alias = "p"
                order_keys.append("p.new_id")
            else:
                alias = f"r{index}"
                sources.append(f"LEFT JOIN {maps[column.domain]} {alias} ON s.{quote(column.source)} = {alias}.src")
        if column.transform == "scrub" and not any(" sp ON " in source for source in sources):
            sources.append(f"LEFT JOIN scrub_patterns sp ON s.{quote(table.person_key)} = sp.person_id")
        expression = column_expression(column, domain_alias=alias)
        expressions.append(f"{expression} AS {quote(column.output)}")
        if column.transform == "shift_days":
            order_dates.append(expression)
    if own is not None and not order_keys:
        order_keys.append("p.new_id")  # the own key was not requested: still a random tie-break
    if not order_keys:
        order_keys = [column_expression(c, domain_alias=f"r{i}" if c.transform == "renumber" else None)
                      for i, c in enumerate(table.columns) if c.transform not in ("pseudonym", "shift_days", "scrub")]
    # pseudonym, then the first date and a random tie-break: never the source order
    order = ", ".join(["s._bm_rank", *order_dates[:1], *order_keys])
    return (f"CREATE TABLE main.{quote(table.name)} AS SELECT {', '.join(expressions)} "
            f"FROM {' '.join(sources)} ORDER BY {order}")
