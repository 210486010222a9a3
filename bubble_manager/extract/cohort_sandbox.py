"""The child process that runs one cohort query (started by `cohort.run_cohort_query`).

Reads a JSON request on stdin: ``{"database", "sql", "memory_limit", "memory_bytes", "threads"}``.
Writes one JSON line on stdout, then, if the query succeeded, the person ids as little-endian
int64. The database is opened read-only with external access off (no files, no network),
extension autoload and autoinstall off, no spilling, and the configuration locked before the
query runs; the address space is capped too. Errors are classified here; the parent decides
what the requester may see.
"""

from __future__ import annotations

import array
import json
import resource
import sys

ERROR_KINDS = {
    "ParserException": "syntax",
    "BinderException": "binder",
    "CatalogException": "binder",
    "OutOfMemoryException": "memory",
}


def _limit_resources(memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if memory_bytes > 0:
        resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))


def _import_duckdb():  # noqa: ANN202 - the DuckDB module
    """DuckDB's compiled module alone: the `duckdb` package around it adds 0.1 s of imports
    (relational API, package metadata) to every cohort query and is not needed here."""
    try:
        import _duckdb
    except ImportError:  # a DuckDB build that does not ship it under that name
        import duckdb as _duckdb
    return _duckdb


def _reply(status: dict, payload: bytes = b"") -> None:
    out = sys.stdout.buffer
    out.write(json.dumps(status).encode("utf-8") + b"\n")
    out.write(payload)
    out.flush()


def main() -> int:
    request = json.loads(sys.stdin.buffer.read().decode("utf-8"))
    _limit_resources(int(request.get("memory_bytes", 0)))
    duckdb = _import_duckdb()  # after the limits, so the library's own allocations count too

    config = {
        "access_mode": "READ_ONLY",
        "enable_external_access": False,
        "autoload_known_extensions": False,
        "autoinstall_known_extensions": False,
        "allow_community_extensions": False,
        "temp_directory": "",
        "memory_limit": request["memory_limit"],
        "threads": int(request["threads"]),
        "lock_configuration": True,
    }
    wrapped = ("SELECT DISTINCT CAST(person_id AS BIGINT) AS person_id FROM (\n"
               f"{request['sql']}\n) AS cohort WHERE person_id IS NOT NULL")
    try:
        connection = duckdb.connect(request["database"], read_only=True, config=config)
        ids = array.array("q", (row[0] for row in connection.execute(wrapped).fetchall()))
    except duckdb.Error as error:
        kind = ERROR_KINDS.get(type(error).__name__, "runtime")
        _reply({"ok": False, "kind": kind, "error_type": type(error).__name__, "message": str(error)})
        return 0
    except MemoryError:
        _reply({"ok": False, "kind": "memory", "error_type": "MemoryError", "message": "out of memory"})
        return 0
    if sys.byteorder != "little":
        ids.byteswap()
    _reply({"ok": True, "count": len(ids)}, ids.tobytes())
    return 0


if __name__ == "__main__":
    sys.exit(main())
