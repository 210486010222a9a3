"""Cohort selection: one read-only SELECT returning `person_id`, run in a confined child process.

Three layers, each enough on its own for what it covers:

1. `check_cohort_sql` refuses, before anything runs, more than one statement, any statement but
   SELECT (PRAGMA, ATTACH, INSTALL/LOAD, SET, COPY...), every table function (``read_csv``,
   ``glob``, ``query_table``...), DESCRIBE/SHOW, and any table that is not a cohort table.
2. The query runs against the **cohort database**, derived from the warehouse, which physically
   holds only the columns the catalog marks ``cohort: true``: no direct identifier, no free text,
   no identity or opt-out table. A string-built table name (``query_table('iden'||'tity')``)
   defeats any parse-time check but still finds nothing.
3. The child process (`cohort_sandbox.py`) opens it read-only, external access off, extension
   autoload/autoinstall off, no spilling, configuration locked, memory capped; the parent kills
   it when it runs over its wall-clock limit.

Errors that may quote data (DuckDB's conversion errors do) reach the requester as a generic
message; the detail is kept in `CohortRefused.detail` for stewards, never in the audit log.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Iterator

import duckdb
import numpy as np

from ..catalog import Catalog
from ..study_request import canonical_json

STATEMENT_REFUSALS = {
    "PRAGMA": ("pragma", "PRAGMA statements are not allowed"),
    "ATTACH": ("attach", "ATTACH is not allowed: the cohort query sees only the cohort tables"),
    "DETACH": ("attach", "DETACH is not allowed"),
    "LOAD": ("extension", "INSTALL and LOAD are not allowed: extensions cannot be used in a cohort query"),
    "SET": ("set", "SET, RESET and USE are not allowed: the query's settings are fixed"),
    "COPY": ("not-select", "COPY is not allowed: the cohort query cannot read or write files"),
    "EXPORT": ("not-select", "EXPORT is not allowed: the cohort query cannot write files"),
    "MULTI": ("not-select", "PIVOT and UNPIVOT are not allowed"),
}
ALLOWED_NODES = {"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE", "CTE_NODE", "JOIN", "SUBQUERY",
                 "EMPTY", "EXPRESSION_LIST"}
SMALL_COUNT = "< {k}"
MIB = 2**20
SIZE = re.compile(r"^([0-9.]+)\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")
SIZE_UNITS = {"KB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}


class CohortRefused(ValueError):
    """The cohort query was refused or failed. `reason` is a stable code; the message is safe to
    show the requester; `detail` (possibly quoting data) is for stewards only."""

    def __init__(self, reason: str, message: str, detail: str | None = None):
        self.reason = reason
        self.detail = detail
        super().__init__(message)


# --- 1. parse-time checks ----------------------------------------------------------------------

def check_cohort_sql(sql: str, allowed_tables: set[str] | list[str]) -> str:
    """Return the single SELECT statement of `sql` or raise CohortRefused naming the problem."""
    if not isinstance(sql, str) or not sql.strip():
        raise CohortRefused("empty", "the cohort query is empty; write one SELECT that returns person_id")
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as error:
        raise CohortRefused("syntax", f"the cohort query is not valid SQL: {_first_line(error)}") from None
    if len(statements) != 1:
        raise CohortRefused("multiple-statements", f"the cohort query holds {len(statements)} statements; "
                            "write exactly one SELECT (no ';' between statements)")
    statement = statements[0]
    kind = statement.type.name
    if kind != "SELECT":
        reason, message = STATEMENT_REFUSALS.get(kind, ("not-select", f"{kind} statements are not allowed"))
        raise CohortRefused(reason, f"{message}; a cohort is one SELECT that returns person_id")
    query = statement.query.strip().rstrip(";").strip()
    tree = _syntax_tree(query)
    allowed = {name.lower() for name in allowed_tables} | {name.lower() for name in _cte_names(tree)}
    _check_tree(tree, allowed)
    return query


def _first_line(error: Exception) -> str:
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__


def _syntax_tree(query: str) -> Any:
    with duckdb.connect(":memory:", config={"enable_external_access": False,
                                           "autoload_known_extensions": False}) as connection:
        text = connection.execute("SELECT json_serialize_sql(?)", [query]).fetchall()[0][0]
    tree = json.loads(text)
    if tree.get("error"):
        message = str(tree.get("error_message", "")).splitlines()[0]
        if "Only SELECT" in message:
            raise CohortRefused("not-select", "this form of query (PIVOT, UNPIVOT...) is not allowed; "
                                "a cohort is one plain SELECT that returns person_id")
        raise CohortRefused("syntax", f"the cohort query is not valid SQL: {message}")
    return tree


def _cte_names(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        cte_map = node.get("cte_map")
        if isinstance(cte_map, dict):
            for entry in cte_map.get("map", []):
                yield str(entry.get("key", ""))
        for value in node.values():
            yield from _cte_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _cte_names(value)


def _check_tree(node: Any, allowed: set[str]) -> None:
    """Deny by default: every table reference and query node must be of a known, allowed kind."""
    if isinstance(node, list):
        for value in node:
            _check_tree(value, allowed)
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if isinstance(kind, str) and "class" not in node:  # table references, query nodes, modifiers
        if kind == "TABLE_FUNCTION":
            name = (node.get("function") or {}).get("function_name", "?")
            raise CohortRefused("table-function", f"table functions such as {name}() are not allowed in a cohort "
                                "query; select FROM the cohort tables by name")
        if kind == "SHOW_REF":
            raise CohortRefused("not-select", "DESCRIBE, SHOW and SUMMARIZE are not allowed; the catalog lists "
                                "the cohort tables and their columns")
        if kind == "BASE_TABLE":
            _check_table(node, allowed)
        elif kind not in ALLOWED_NODES and not kind.endswith("_MODIFIER") and not kind.startswith("ORDER_"):
            raise CohortRefused("not-select", f"{kind.replace('_', ' ').lower()} is not allowed in a cohort query")
    for value in node.values():
        _check_tree(value, allowed)


def _check_table(node: dict, allowed: set[str]) -> None:
    name = str(node.get("table_name", ""))
    if node.get("catalog_name") or node.get("schema_name") not in ("", "main"):
        qualified = ".".join(p for p in (node.get("catalog_name"), node.get("schema_name"), name) if p)
        raise CohortRefused("unknown-table", f"{qualified} is not a cohort table; name the cohort tables without "
                            "a database or schema")
    if name.lower() not in allowed:
        raise CohortRefused("unknown-table", f"{name} is not a cohort table; a cohort query may read "
                            f"{', '.join(sorted(allowed))}")


def cohort_sql_problems(sql: str, catalog: Catalog) -> list[tuple[str, str]]:
    """For submission: what `check_cohort_sql` refuses, as (field, message) pairs."""
    try:
        check_cohort_sql(sql, catalog.cohort_tables())
    except CohortRefused as refused:
        return [("cohort", str(refused))]
    return []


# --- 2. the cohort database ---------------------------------------------------------------------

def warehouse_fingerprint(warehouse: Path, catalog: Catalog) -> str:
    """Identifies a warehouse version: its file's identity, size and modification time, and the
    catalog it is read with. Any write to the warehouse changes it."""
    try:
        status = os.stat(warehouse)
    except FileNotFoundError:
        raise FileNotFoundError(f"the warehouse {warehouse} does not exist; set c.BubbleManager.warehouse_path "
                                "or build the demo warehouse (`bubble-manager demo-warehouse`)") from None
    catalog_hash = hashlib.sha256(canonical_json(dict(catalog.raw) or catalog.warehouse).encode()).hexdigest()
    body = {"device": status.st_dev, "inode": status.st_ino, "size": status.st_size,
            "mtime_ns": status.st_mtime_ns, "catalog": catalog_hash}
    return hashlib.sha256(canonical_json(body).encode()).hexdigest()


def check_warehouse(connection: duckdb.DuckDBPyConnection, catalog: Catalog, database: str = "wh") -> None:
    """Refuse a warehouse that lacks a table or column the catalog lists."""
    rows = connection.execute(
        "SELECT table_name, column_name FROM information_schema.columns WHERE table_catalog = ?", [database]
    ).fetchall()
    present: dict[str, set[str]] = {}
    for table, column in rows:
        present.setdefault(table, set()).add(column)
    for table in catalog.tables.values():
        if table.name not in present:
            raise ValueError(f"the warehouse has no table {table.name}, which the catalog {catalog.source} lists; "
                             "fix the catalog or point c.BubbleManager.warehouse_path at the right warehouse")
        missing = [c for c in table.columns if c not in present[table.name]]
        if missing:
            raise ValueError(f"the warehouse table {table.name} has no column {', '.join(missing)}, which the catalog "
                             f"{catalog.source} lists; fix the catalog or the warehouse")


def ensure_cohort_database(warehouse: Path, catalog: Catalog, folder: Path) -> Path:
    """The cohort database of this warehouse version, derived now if it is not there yet.

    Older versions in `folder` are removed. Written under a temporary name, fsynced, renamed.
    """
    warehouse = Path(warehouse)
    fingerprint = warehouse_fingerprint(warehouse, catalog)
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = folder / f"cohort-{fingerprint[:24]}.duckdb"
    if target.exists():
        return target
    with exclusive_lock(folder / ".lock"):
        if target.exists():
            return target
        temporary = folder / f".{target.name}.{secrets.token_hex(6)}.tmp"
        try:
            with duckdb.connect(str(temporary)) as connection:
                connection.execute(f"ATTACH {sql_string(str(warehouse))} AS wh (READ_ONLY)")
                check_warehouse(connection, catalog)
                for table, columns in catalog.cohort_tables().items():
                    names = ", ".join(quote(c.name) for c in columns)
                    connection.execute(f"CREATE TABLE {quote(table)} AS SELECT {names} FROM wh.{quote(table)}")
                connection.execute("DETACH wh")
                connection.execute("CHECKPOINT")
            fsync_path(temporary)
            os.chmod(temporary, 0o440)
            os.replace(temporary, target)
            fsync_path(folder)
        finally:
            remove_quietly(temporary, Path(f"{temporary}.wal"))
        for old in folder.glob("cohort-*.duckdb"):
            if old != target:
                remove_quietly(old)
    return target


# --- 3. running the query -----------------------------------------------------------------------

class RunningQuery:
    """A cohort query running in its child process; `result()` waits for it (or kills it)."""

    def __init__(self, database: Path, sql: str, *, timeout: float, memory_limit: str, threads: int):
        self.timeout = timeout
        self.memory_limit = memory_limit
        self.started = time.monotonic()
        request = {"database": str(database), "sql": sql, "memory_limit": memory_limit, "threads": threads,
                   "memory_bytes": duckdb_size_bytes(memory_limit) + 3 * 2**30}
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-m", "bubble_manager.extract.cohort_sandbox"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True,
            start_new_session=True, env={"PATH": os.defpath, "LC_ALL": "C.UTF-8"}, cwd="/",
        )
        stdin, self.process.stdin = self.process.stdin, None  # communicate() must not touch it again
        try:  # the request is small: it fits the pipe buffer, so this never blocks on the child
            stdin.write(json.dumps(request).encode("utf-8"))
            stdin.close()
        except BrokenPipeError:
            pass

    def cancel(self) -> None:
        _kill(self.process)

    def result(self) -> np.ndarray:
        """The distinct person ids the query selects, or CohortRefused."""
        remaining = max(0.0, self.timeout - (time.monotonic() - self.started))
        try:
            output, errors = self.process.communicate(timeout=remaining)
        except subprocess.TimeoutExpired:
            _kill(self.process)
            raise CohortRefused("timeout", f"the cohort query ran over its time limit of {self.timeout:g} s and was "
                                "stopped; simplify it (fewer joins, more selective conditions)") from None
        except BaseException:
            _kill(self.process)
            raise
        header, _, payload = output.partition(b"\n")
        try:
            status = json.loads(header.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            killed = self.process.returncode is not None and self.process.returncode < 0
            raise CohortRefused("crashed", "the cohort query process stopped without an answer"
                                + (" (killed)" if killed else "") + "; it may have run out of memory",
                                detail=errors.decode("utf-8", "replace")[-2000:]) from None
        if not status.get("ok"):
            raise _refusal_from_child(status, self.memory_limit)
        ids = np.frombuffer(payload, dtype="<i8").astype(np.int64)
        if len(ids) != status.get("count"):
            raise CohortRefused("crashed", "the cohort query process returned a truncated answer")
        return ids


def run_cohort_query(database: Path, sql: str, *, timeout: float, memory_limit: str, threads: int) -> np.ndarray:
    """Run `sql` in a confined child process; return the distinct person ids it selects.

    No parse-time checks here (see `select_cohort`): this is the last layer on its own.
    """
    return RunningQuery(database, sql, timeout=timeout, memory_limit=memory_limit, threads=threads).result()


def _kill(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.communicate()


def _refusal_from_child(status: dict, memory_limit: str) -> CohortRefused:
    kind, message = status.get("kind"), str(status.get("message", ""))
    if kind == "syntax":
        return CohortRefused("syntax", f"the cohort query is not valid SQL: {_first_line(Exception(message))}")
    if kind == "binder":
        # Binding happens before any row is read: these name tables, columns and types only.
        hint = (" (the query must return a column named person_id)"
                if 'column "person_id" not found' in message else "")
        return CohortRefused("binder", f"the cohort query does not fit the cohort tables{hint}: "
                             f"{_first_line(Exception(message))}")
    if kind == "memory":
        return CohortRefused("memory", f"the cohort query ran over its memory limit of {memory_limit} and was "
                             "stopped; make it more selective", detail=message)
    return CohortRefused("runtime", f"the cohort query failed while running ({status.get('error_type', 'error')}); "
                         "the message may quote data, so it is shown to stewards only", detail=message)


def start_cohort(database: Path, sql: str, allowed_tables: set[str] | list[str], *, timeout: float,
                 memory_limit: str, threads: int) -> RunningQuery:
    """Check `sql`, then start it confined; collect the person ids with `.result()`."""
    query = check_cohort_sql(sql, allowed_tables)
    return RunningQuery(database, query, timeout=timeout, memory_limit=memory_limit, threads=threads)


def select_cohort(database: Path, sql: str, allowed_tables: set[str] | list[str], *, timeout: float,
                  memory_limit: str, threads: int) -> np.ndarray:
    """Check `sql`, then run it confined; the person ids it selects (opt-outs not yet removed)."""
    return start_cohort(database, sql, allowed_tables, timeout=timeout, memory_limit=memory_limit,
                        threads=threads).result()


def shown_count(count: int, k: int) -> str:
    """A cohort count as stewards see it: small counts suppressed."""
    return SMALL_COUNT.format(k=k) if count < k else str(count)


# --- small helpers shared with build.py ----------------------------------------------------------

def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def duckdb_size_bytes(text: str) -> int:
    match = SIZE.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a DuckDB size such as 512MB or 2GB")
    return int(float(match.group(1)) * SIZE_UNITS[match.group(2)])


def fsync_path(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_quietly(*paths: Path) -> None:
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """An advisory lock file (flock): released when the process dies, so a crash never leaves it held."""
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)
