"""The SQL work of a build (and of a steward's dry run), all inside one DuckDB connection.

1. `resolve_cohort`: the persons of the cohort: the query's result, minus opted-out persons,
   limited to persons the warehouse knows.
2. `register_person_map`: each person's pseudonym, date shift and the rank of the pseudonym in
   sorted order (rows sort on that integer), registered from NumPy arrays.
3. `write_tables`: each output table is one ``CREATE TABLE ... AS SELECT`` that reads the
   cohort's rows from the warehouse, joins the person map, transforms every column and writes
   the rows ordered by pseudonym: a single pass over the source, like a plain copy.

Record keys get 1..n in a random order: each table's own key by a positional join of its rows
with a permutation drawn in NumPy (the source id is never hashed or ordered on); a key that other
tables reference is first numbered the same way over its own table's rows, staged once, and the
references go through that map. Rows with the same pseudonym are ordered by their first date,
then by their new (random) id: never by anything of the source.

The connection runs only this module's SQL, never a requester's. Join build sides are written
on the right and the optimizer is told not to swap them: registered arrays have no statistics,
and letting it guess built million-row hash tables on the wrong side.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Renumbering:
    """How one output table gets its record keys."""

    own_column: str | None  # the table's own key, numbered positionally
    permutation: str | None  # temp table of 1..n shuffled, n = the table's cohort rows
    staged: str | None  # temp table of the table's rows when its key is referenced elsewhere


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
    """`person_map(person_id, pseudonym, shift, rank)`. A dry run passes no pseudonyms: it gets
    placeholders and no shift (nothing it computes depends on them)."""
    count = len(persons)
    names = np.array(pseudonyms if pseudonyms is not None else [f"P{i}" for i in range(count)], dtype=object)
    rank = np.empty(count, dtype=np.int64)
    rank[np.argsort(names.astype(str), kind="stable")] = np.arange(count)
    shifts = np.asarray(offsets if offsets is not None else np.zeros(count), dtype=np.int32)
    connection.register("person_map_input", {"person_id": persons, "pseudonym": names, "shift": shifts, "rank": rank})
    connection.execute("CREATE OR REPLACE TEMP TABLE person_map AS SELECT * FROM person_map_input")
    connection.unregister("person_map_input")


def cohort_rows(table: TablePlan) -> str:
    """The cohort's rows of a warehouse table, its requested source columns and the person's
    pseudonym, shift and rank."""
    columns = ", ".join(f"s.{quote(c)}" for c in table.source_columns)
    person = ", ".join(f"m.{name} AS {alias}" for name, alias in PERSON_COLUMNS.items())
    return (f"SELECT {columns}, {person} FROM wh.{quote(table.name)} s "
            f"JOIN person_map m ON s.{quote(table.person_key)} = m.person_id")


def write_tables(connection: duckdb.DuckDBPyConnection, plan: ExtractPlan, step: Step = lambda _: None) -> dict[str, int]:
    """Write every output table into the connection's main database; return row counts."""
    if plan.needs_identity and plan.identity:
        connection.execute(f"CREATE TEMP TABLE scrub_patterns AS {scrub_patterns_sql(plan.identity, 'person_map')}")
    renumbering, maps = _renumbering(connection, plan)
    rows = {}
    for table in plan.tables:
        connection.execute(output_table_sql(table, renumbering[table.name], maps))
        rows[table.name] = connection.execute(f"SELECT count(*) FROM main.{quote(table.name)}").fetchall()[0][0]
        step(f"write {table.name}")
    return rows


def _renumbering(connection: duckdb.DuckDBPyConnection, plan: ExtractPlan) -> tuple[dict[str, Renumbering], dict[str, str]]:
    domains = plan.record_key_domains()
    result: dict[str, Renumbering] = {}
    maps: dict[str, str] = {}
    for number, table in enumerate(plan.tables):
        own = next((c.source for c in table.columns
                    if c.transform == "renumber" and c.domain == f"{table.name}.{c.source}"), None)
        if own is None:
            result[table.name] = Renumbering(None, None, None)
            continue
        domain = f"{table.name}.{own}"
        referenced = any(use != (table.name, own) for use in domains[domain])
        staged = f"staged_{number}" if referenced else None
        if staged:
            connection.execute(f"CREATE TEMP TABLE {staged} AS {cohort_rows(table)}")
            count = connection.execute(f"SELECT count(*) FROM {staged}").fetchall()[0][0]
        else:
            count = connection.execute(f"SELECT count(*) FROM wh.{quote(table.name)} s SEMI JOIN person_map m "
                                       f"ON s.{quote(table.person_key)} = m.person_id").fetchall()[0][0]
        permutation = f"permutation_{number}"
        _register_table(connection, permutation, {"new_id": secure_permutation(count)})
        result[table.name] = Renumbering(own, permutation, staged)
        if staged:
            maps[domain] = _map_from_owner(connection, number, staged, own, permutation, domain)
    for number, (domain, uses) in enumerate(sorted(domains.items())):
        owner_table, _, owner_column = domain.partition(".")
        positional = owner_table in result and result[owner_table].own_column == owner_column
        if domain not in maps and (not positional or len(uses) > 1):
            maps[domain] = _map_from_references(connection, number, plan, uses)
    return result, maps


def _map_from_owner(connection: duckdb.DuckDBPyConnection, number: int, staged: str, column: str, permutation: str,
                    domain: str) -> str:
    name = f"key_map_{number}"
    connection.execute(f"CREATE TEMP TABLE {name} AS SELECT s.{quote(column)} AS src, p.new_id "
                       f"FROM {staged} s POSITIONAL JOIN {permutation} p WHERE s.{quote(column)} IS NOT NULL")
    rows, distinct = connection.execute(f"SELECT count(*), count(DISTINCT src) FROM {name}").fetchall()[0]
    if rows != distinct:
        raise KeyNotUnique(f"the record key {domain} is not unique in the warehouse ({rows - distinct} repeated ids), "
                           "yet other columns reference it; fix the catalog (is it really the table's key?)")
    return name


def _map_from_references(connection: duckdb.DuckDBPyConnection, number: int, plan: ExtractPlan,
                         uses: list[tuple[str, str]]) -> str:
    """Ids referenced by tables whose owner table is not in the extract: distinct ids, shuffled."""
    ids = " UNION ALL ".join(
        f"SELECT s.{quote(column)} AS id FROM wh.{quote(table)} s SEMI JOIN person_map m "
        f"ON s.{quote(plan.table(table).person_key)} = m.person_id" for table, column in uses)
    distinct = connection.execute(f"SELECT DISTINCT id FROM ({ids}) WHERE id IS NOT NULL").fetchnumpy()["id"]
    name = f"reference_map_{number}"
    _register_table(connection, name, {"src": np.asarray(distinct, dtype=np.int64),
                                       "new_id": secure_permutation(len(distinct))})
    return name


def _register_table(connection: duckdb.DuckDBPyConnection, name: str, columns: dict[str, np.ndarray]) -> None:
    connection.register(f"{name}_input", columns)
    connection.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM {name}_input")
    connection.unregister(f"{name}_input")


def output_table_sql(table: TablePlan, renumbering: Renumbering, maps: dict[str, str]) -> str:
    """CREATE TABLE of one output table, in one pass over its cohort rows, ordered by pseudonym."""
    rows = renumbering.staged or f"({cohort_rows(table)})"
    sources = [f"{rows} s"]
    if renumbering.permutation:
        sources.append(f"POSITIONAL JOIN {renumbering.permutation} p")
    expressions, dates = [], []
    for index, column in enumerate(table.columns):
        alias = None
        if column.transform == "renumber":
            if column.source == renumbering.own_column:
                alias = "p"
            else:
                alias = f"r{index}"
                sources.append(f"LEFT JOIN {maps[column.domain]} {alias} ON s.{quote(column.source)} = {alias}.src")
        if column.transform == "scrub" and not any(" sp ON " in source for source in sources):
            sources.append(f"LEFT JOIN scrub_patterns sp ON s.{quote(table.person_key)} = sp.person_id")
        expression = column_expression(column, domain_alias=alias)
        expressions.append(f"{expression} AS {quote(column.output)}")
        if column.transform == "shift_days":
            dates.append(expression)
    if renumbering.permutation:
        tie_break = ["p.new_id"]  # random
    else:  # no own key: the content itself
        tie_break = [column_expression(c, domain_alias=f"r{i}" if c.transform == "renumber" else None)
                     for i, c in enumerate(table.columns) if c.transform not in ("pseudonym", "shift_days", "scrub")]
    order = ", ".join([f"s.{PERSON_COLUMNS['rank']}", *dates[:1], *tie_break])
    return (f"CREATE TABLE main.{quote(table.name)} AS SELECT {', '.join(expressions)} "
            f"FROM {' '.join(sources)} ORDER BY {order}")
