"""The SQL work of a build (and of a steward's dry run), all inside one DuckDB connection.

1. `resolve_cohort`: the persons of the cohort: the query's result, minus opted-out persons,
   limited to persons the warehouse knows.
2. `register_person_map`: each person's pseudonym, date shift and the rank of the pseudonym in
   sorted order (rows sort on that integer), registered from NumPy arrays.
3. `write_tables`: each output table is one ``CREATE TABLE ... AS SELECT`` that reads the
   cohort's rows from the warehouse, joins the person map, transforms every column and writes
   the rows ordered by pseudonym: a single pass over the source, like a plain copy.

Record keys are renumbered by a keyed permutation computed in the same pass (`renumber.py`):
the same source id gets the same new id in every table of the build, so references need no
lookup table. Rows with the same pseudonym are ordered by their first date, then by their new
(pseudorandom) id: never by anything of the source.

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
from .renumber import OUT_OF_RANGE, new_round_keys, with_permuted_keys
from .transforms import PERSON_COLUMNS, column_expression, scrub_patterns_sql

Step = Callable[[str], None]


class RecordKeyOutOfRange(ValueError):
    """A record key holds a value the keyed permutation cannot renumber (see `renumber.py`)."""


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
    rows = "cohort_selected c"  # the (small) cohort is the build side of each join: written on the right
    if plan.person_table:
        table, key = plan.person_table
        rows = f"(SELECT {quote(key)} AS person_id FROM wh.{quote(table)}) c SEMI JOIN cohort_selected s USING (person_id)"
    if plan.opt_out:
        table, key = plan.opt_out
        rows += (f" ANTI JOIN (SELECT {quote(key)} AS person_id FROM wh.{quote(table)} "
                 f"WHERE {quote(key)} IS NOT NULL) o USING (person_id)")
    persons = connection.execute(f"SELECT DISTINCT c.person_id FROM {rows} ORDER BY 1").fetchnumpy()["person_id"]
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
    round_keys = {domain: new_round_keys() for domain in plan.record_key_domains()}
    rows = {}
    for table in plan.tables:
        try:
            connection.execute(output_table_sql(table, round_keys))
        except duckdb.InvalidInputException as error:
            message = str(error)
            if OUT_OF_RANGE not in message:
                raise
            raise RecordKeyOutOfRange(message[message.index("record key "):]) from None
        rows[table.name] = connection.execute(f"SELECT count(*) FROM main.{quote(table.name)}").fetchall()[0][0]
        step(f"write {table.name}")
    return rows


def output_table_sql(table: TablePlan, round_keys: dict[str, tuple[int, ...]]) -> str:
    """CREATE TABLE of one output table, in one pass over its cohort rows, ordered by pseudonym,
    then by the row's first (shifted) date, then by its new record id (random), or by its content
    when the table has no key of its own. Output columns are ordered on by position (1-based)."""
    keys = [(c.source, round_keys[c.domain], f"{table.name}.{c.source}") for c in table.columns
            if c.transform == "renumber"]
    sources = [f"({with_permuted_keys(cohort_rows(table), keys)}) s"]
    expressions, dates, own_key, content = [], [], [], []
    for position, column in enumerate(table.columns, start=1):
        if column.transform == "scrub" and len(sources) == 1:
            sources.append(f"LEFT JOIN scrub_patterns sp ON s.{quote(table.person_key)} = sp.person_id")
        if column.transform == "renumber" and column.domain == f"{table.name}.{column.source}":
            own_key.append(str(position))
        expression = column_expression(column)
        expressions.append(f"{expression} AS {quote(column.output)}")
        if column.transform == "shift_days":
            dates.append(str(position))
        elif column.transform not in ("pseudonym", "scrub"):
            content.append(str(position))
    order = ", ".join([f"s.{PERSON_COLUMNS['rank']}", *dates[:1], *(own_key or content)])
    return (f"CREATE TABLE main.{quote(table.name)} AS SELECT {', '.join(expressions)} "
            f"FROM {' '.join(sources)} ORDER BY {order}")
