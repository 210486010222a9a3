"""The parser child: reads a request's files from stdin, checks them, prints one JSON report.

Started by `sandbox.run_parser` inside a bubblewrap sandbox (no network, no host files but the
Python it runs, an unprivileged uid) or at least with resource limits. Input: one JSON line
``{"options": {...}, "files": [{"path", "size", "counts"}]}`` then the bytes of each file in that
order (ACRO's `results.json` files first). Output: one JSON line ``{"ok": true, "reports": {...}}``.
Nothing here trusts the files: any failure of a parser becomes a flag on that file.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import PurePosixPath
from typing import Any, BinaryIO

from .acro_results import AcroFileChecks, AcroResultsError, looks_like_acro_results, parse_results
from .checks import CheckOptions, TableChecker
from .formats import FormatError, decode_text, json_strings, kind_of, read_csv, read_json, read_parquet, read_xlsx


def read_exactly(stream: BinaryIO, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = stream.read(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the parent sent fewer bytes than announced")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


class RequestChecker:
    """Checks the files of one request in order, remembering ACRO's verdicts for the files that follow."""

    def __init__(self, options: CheckOptions, work_dir: str):
        self.options = options
        self.work_dir = work_dir
        self.acro: dict[str, AcroFileChecks] = {}

    def check(self, path: str, data: bytes, counts: list[str]) -> dict[str, Any]:
        checker = TableChecker(self.options)
        try:
            kind = kind_of(path, data)
        except FormatError as error:
            checker.flag("format", str(error)).count += 1
            return checker.report("unknown")
        try:
            return self._check_kind(kind, path, data, counts, checker)
        except FormatError as error:
            if "too large" in str(error):
                return checker.report("table", manual_reason=f"not checked automatically: {error}")
            checker.flag("unreadable", f"could not be read: {error}").count += 1
            return checker.report(kind)
        except MemoryError:
            checker.flag("unreadable", "could not be read within the parser's memory limit").count += 1
            return checker.report(kind)
        except Exception as error:  # a parser bug or a hostile file: never the error text (it may quote data)
            checker.flag("unreadable", f"could not be read ({type(error).__name__})").count += 1
            return checker.report(kind)

    def _check_kind(self, kind: str, path: str, data: bytes, counts: list[str], checker: TableChecker) -> dict:
        acro = self.acro.get(path)
        if acro is not None and kind not in ("csv", "parquet", "xlsx"):
            checker.check_acro(acro)
        if kind in ("csv", "parquet", "xlsx"):
            return self._check_tables(kind, path, data, counts, checker, acro)
        if kind == "json":
            document = read_json(data)
            if looks_like_acro_results(path, document):
                folder = str(PurePosixPath(path).parent)
                try:
                    self.acro.update(parse_results(document, "" if folder == "." else folder))
                except AcroResultsError as error:
                    checker.flag("format", str(error)).count += 1
                checker.check_text("\n".join(json_strings(document)))
                return checker.report("acro-results")
            checker.check_text("\n".join(json_strings(document)))
            return checker.report("data", manual_reason="structured data: no table checks apply, read it")
        if kind in ("image", "figure"):
            return checker.report("figure", manual_reason="figures are reviewed by eye")
        if kind == "text":
            checker.check_text(decode_text(data))
            return checker.report("text", manual_reason="text is reviewed by eye (free text)")
        return checker.report("unknown", manual_reason="unknown format: no automatic check applies")

    def _check_tables(self, kind: str, path: str, data: bytes, counts: list[str], checker: TableChecker,
                      acro: AcroFileChecks | None) -> dict:
        max_cells = self.options.max_cells
        if kind == "csv":
            tables = [read_csv(path, data, max_cells)]
        elif kind == "parquet":
            fd, temporary = tempfile.mkstemp(suffix=".parquet", dir=self.work_dir)
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                tables = [read_parquet(temporary, max_cells)]
            finally:
                os.unlink(temporary)
        else:
            tables = read_xlsx(data, max_cells)
        summaries = []
        for number, table in enumerate(tables, start=1):
            if acro is not None and number == 1:
                index_columns = max(1, len(table.header) - acro.data_columns) if acro.data_columns else 1
                checker.check_acro(acro, index_columns)
            if acro is not None and acro.is_counts:
                summaries.append(checker.check_table(table, all_counts=True, index_columns=index_columns,
                                                     number=number))
            else:
                summaries.append(checker.check_table(table, counts, number=number))
        counted = any(summary["count_columns"] for summary in summaries)
        manual = ""
        if not counted and acro is None:
            manual = "no column declared as counts: small cells were not checked, read the table"
        report = checker.report("acro-table" if acro is not None else "table", manual_reason=manual)
        report["tables"] = summaries
        if acro is not None:
            report["acro"] = acro.as_dict()
        return report


PR_SET_NO_NEW_PRIVS = 38


def drop_privileges(uid: int) -> None:
    """Load every parser first, then become `uid` for good (the 'rlimits' mode run by root)."""
    import ctypes

    import duckdb  # noqa: F401
    import openpyxl  # noqa: F401
    try:
        import defusedxml  # noqa: F401
    except ImportError:
        pass
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
    if os.getuid() != uid or os.geteuid() != uid or os.getgroups():
        raise SystemExit("could not drop privileges")


def main() -> int:
    stdin = sys.stdin.buffer
    header = json.loads(stdin.readline().decode("utf-8"))
    if header.get("drop_to") is not None:
        drop_privileges(int(header["drop_to"]))
    options = CheckOptions.from_dict(header.get("options", {}))
    checker = RequestChecker(options, header.get("work_dir") or tempfile.gettempdir())
    reports: dict[str, Any] = {}
    for entry in header["files"]:
        data = read_exactly(stdin, int(entry["size"]))
        reports[entry["path"]] = checker.check(entry["path"], data, [str(c) for c in entry.get("counts", [])])
    sys.stdout.write(json.dumps({"ok": True, "reports": reports}) + "\n")
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
