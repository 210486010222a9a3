"""Reading the files of a request into tables or text (runs only in the sandboxed parser child).

Formats are told by name and checked by content (magic bytes): a `.png` that is not a PNG is
flagged, not shown. CSV is read with the standard library, Parquet with DuckDB (no extensions,
one thread, its memory capped), XLSX with openpyxl in read-only mode after the archive's member
sizes are checked (no zip bombs) and with defusedxml when it is installed.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from pathlib import PurePosixPath
from typing import Any

from .checks import Table

IMAGE_MAGIC = {".png": (b"\x89PNG\r\n\x1a\n",), ".jpg": (b"\xff\xd8\xff",), ".jpeg": (b"\xff\xd8\xff",),
               ".gif": (b"GIF87a", b"GIF89a")}
FIGURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".svg", ".pdf", ".eps", ".tif", ".tiff", ".webp"}
TEXT_SUFFIXES = {".txt", ".md", ".tex", ".log", ".html", ".htm", ".rtf", ".py", ".r", ".sql", ".yaml", ".yml"}
TABLE_SUFFIXES = {".csv", ".tsv", ".parquet", ".xlsx"}
MAX_XLSX_UNCOMPRESSED = 512 << 20
MAX_XLSX_MEMBERS = 10000
MAX_XLSX_RATIO = 200


class FormatError(ValueError):
    """The file does not hold what its name says, or cannot be read safely."""


def kind_of(name: str, data: bytes) -> str:
    """'csv', 'parquet', 'xlsx', 'json', 'image', 'figure', 'text' or 'unknown' (content checked)."""
    suffix = PurePosixPath(name).suffix.lower()
    if suffix in IMAGE_MAGIC:
        if not data.startswith(IMAGE_MAGIC[suffix]):
            raise FormatError(f"named {suffix} but its content is not a {suffix[1:].upper()} image")
        return "image"
    if suffix in FIGURE_SUFFIXES:
        return "figure"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix == ".parquet":
        if not (data.startswith(b"PAR1") and data.endswith(b"PAR1")):
            raise FormatError("named .parquet but its content is not a Parquet file")
        return "parquet"
    if suffix == ".xlsx":
        if not data.startswith(b"PK\x03\x04"):
            raise FormatError("named .xlsx but its content is not an XLSX workbook")
        return "xlsx"
    if suffix in (".json", ".ipynb"):
        return "json"
    if suffix in TEXT_SUFFIXES:
        return "text"
    return "unknown"


def decode_text(data: bytes) -> str:
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def read_csv(name: str, data: bytes, max_cells: int) -> Table:
    text = decode_text(data)
    if "\x00" in text:
        raise FormatError("holds NUL bytes: not a text table")
    sample = text[:65536]
    delimiter = "\t" if name.lower().endswith(".tsv") else max((",", ";", "\t"), key=sample.count)
    csv.field_size_limit(10 << 20)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows: list[list[Any]] = []
    cells = 0
    for row in reader:
        cells += len(row)
        if cells > max_cells:
            raise FormatError(f"more than {max_cells} cells: too large to check cell by cell")
        rows.append(row)
    if not rows:
        return Table("", [], [])
    return Table("", [str(h) for h in rows[0]], rows[1:])


def read_parquet(path: str, max_cells: int, memory_limit: str = "512MB") -> Table:
    import duckdb

    config = {"threads": 1, "memory_limit": memory_limit, "autoload_known_extensions": False,
              "autoinstall_known_extensions": False, "allow_community_extensions": False, "temp_directory": ""}
    with duckdb.connect(":memory:", config=config) as db:
        db.execute("SET lock_configuration = true")
        relation = db.execute("SELECT * FROM read_parquet(?)", [path])
        header = [column[0] for column in relation.description]
        limit = max_cells // max(1, len(header)) + 1
        rows = [list(row) for row in relation.fetchmany(limit)]
    if len(rows) * max(1, len(header)) > max_cells:
        raise FormatError(f"more than {max_cells} cells: too large to check cell by cell")
    return Table("", header, rows)


def check_zip(data: bytes) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = archive.infolist()
        if len(members) > MAX_XLSX_MEMBERS:
            raise FormatError(f"the workbook holds more than {MAX_XLSX_MEMBERS} parts")
        total = sum(member.file_size for member in members)
        if total > MAX_XLSX_UNCOMPRESSED or total > MAX_XLSX_RATIO * max(len(data), 1 << 20):
            raise FormatError("the workbook expands to far more than its size (a zip bomb?)")


def read_xlsx(data: bytes, max_cells: int) -> list[Table]:
    check_zip(data)
    try:
        import defusedxml  # noqa: F401 - openpyxl uses it for every XML part when it is installed
    except ImportError:
        pass
    import openpyxl

    workbook = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    tables = []
    cells = 0
    try:
        for sheet in workbook.worksheets:
            rows: list[list[Any]] = []
            for row in sheet.iter_rows(values_only=True):
                cells += len(row)
                if cells > max_cells:
                    raise FormatError(f"more than {max_cells} cells: too large to check cell by cell")
                rows.append(list(row))
            header = [("" if h is None else str(h)) for h in rows[0]] if rows else []
            tables.append(Table(str(sheet.title), header, rows[1:]))
    finally:
        workbook.close()
    return tables


def read_json(data: bytes) -> Any:
    try:
        return json.loads(decode_text(data))
    except (ValueError, RecursionError) as error:
        raise FormatError(f"not valid JSON ({type(error).__name__})") from None


def json_strings(document: Any, limit: int = 1_000_000) -> list[str]:
    """Every string (keys too) of a JSON document, breadth-first, without recursion."""
    found: list[str] = []
    queue = [document]
    while queue and len(found) < limit:
        item = queue.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            found.extend(str(k) for k in item)
            queue.extend(item.values())
        elif isinstance(item, list):
            queue.extend(item)
    return found
