"""What the bubble shows about its study (pure): read from the bubble's environment and the
extract's manifest, rendered as Markdown (STUDY.md in the home folder, shown by JupyterLab) and
as an HTML page. Column names, classes and transforms only: never any value of the extract."""

from __future__ import annotations

import datetime as dt
import html
import json
from pathlib import Path
from typing import Any, Mapping

TRANSFORM_TEXT = {
    "pseudonym": "replaced by the study's pseudonym of the person",
    "renumber": "renumbered for this study, in random order",
    "shift_days": "shifted by a random number of days, the same for all dates of a person",
    "year": "generalised to the year",
    "scrub": "free text with the person's identifiers removed",
    "keep": "as in the warehouse",
}


def load_study_info(environ: Mapping[str, str], manifest_path: Path | None = None) -> dict[str, Any]:
    """The study as the bubble knows it: its variables and the signed manifest's body."""
    manifest_path = Path(manifest_path or environ.get("BUBBLE_MANIFEST", "/data/manifest.json"))
    try:
        document = json.loads(manifest_path.read_text(encoding="utf-8"))
        body = document.get("manifest", {}) if isinstance(document, dict) else {}
    except (OSError, ValueError):
        body = {}
    plan = body.get("plan") if isinstance(body.get("plan"), dict) else {}
    tables = plan.get("tables") if isinstance(plan.get("tables"), dict) else {}
    return {
        "study": environ.get("BUBBLE_STUDY", ""),
        "title": environ.get("BUBBLE_STUDY_TITLE", ""),
        "ends": environ.get("BUBBLE_STUDY_ENDS", ""),
        "expires_at": environ.get("BUBBLE_EXPIRES_AT", ""),
        "extract": environ.get("BUBBLE_EXTRACT", "/data/extract.duckdb"),
        "built_at": body.get("created_at", ""),
        "persons": body.get("persons"),
        "rows": body.get("rows") if isinstance(body.get("rows"), dict) else {},
        "date_shift_days": plan.get("date_shift_days"),
        "tables": {str(name): [c for c in columns if isinstance(c, dict)] for name, columns in tables.items()
                   if isinstance(columns, list)},
        "excluded": [e for e in plan.get("excluded", []) if isinstance(e, dict)],
        "manifest_found": bool(body),
    }


def days_left(info: Mapping[str, Any], now: dt.datetime) -> int | None:
    try:
        expires = dt.datetime.fromisoformat(str(info["expires_at"]))
    except (KeyError, ValueError):
        return None
    return max(0, (expires - now).days)


def transform_text(name: str, shift_days: Any = None) -> str:
    kind, _, argument = name.partition(":")
    if kind == "prefix" and argument:
        return f"generalised to its first {argument} characters"
    if kind == "topcode" and argument:
        return f"values above {argument} shown as {argument}"
    text = TRANSFORM_TEXT.get(name, name)
    if name == "shift_days" and shift_days:
        text += f" (at most {shift_days} days)"
    return text


def _md(text: Any) -> str:
    return str(text).replace("\\", "\\\\").replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;") \
        .replace("`", "\\`").replace("\n", " ")


def study_markdown(info: Mapping[str, Any], now: dt.datetime) -> str:
    left = days_left(info, now)
    lines = [f"# Study {_md(info['study'])}: {_md(info['title'])}", "",
             f"- **Ends:** {_md(info['ends'])} (end of day, UTC)" + (f", {left} days left" if left is not None else ""),
             f"- **Extract:** `{_md(info['extract'])}` (read-only DuckDB; "
             f"`duckdb.connect('{_md(info['extract'])}', read_only=True)`)",
             "- **Your files:** `work/` (yours) and `shared/` (all members of the study); everything else is "
             "lost when the bubble stops.",
             "- **No network:** nothing can be downloaded or sent from here; outputs leave only through an "
             "output request reviewed by a data steward."]
    if info.get("built_at"):
        lines.append(f"- **Extract built:** {_md(info['built_at'])}" +
                     (f", {info['persons']} persons" if info.get("persons") is not None else ""))
    lines += ["", "## Data dictionary", ""]
    if not info["tables"]:
        lines.append("The extract's manifest could not be read.")
    for table, columns in sorted(info["tables"].items()):
        rows = info["rows"].get(table)
        lines += [f"### {_md(table)}" + (f" ({rows} rows)" if rows is not None else ""), "",
                  "| column | class | type | transform |", "|---|---|---|---|"]
        for column in columns:
            lines.append(f"| {_md(column.get('output', ''))} | {_md(column.get('column_class', ''))} | "
                         f"{_md(column.get('output_type', ''))} | "
                         f"{_md(transform_text(str(column.get('transform', '')), info.get('date_shift_days')))} |")
        lines.append("")
    if info["excluded"]:
        lines += ["## Left out of the extract", ""]
        lines += [f"- {_md(e.get('table', ''))}.{_md(e.get('column', ''))}: {_md(e.get('reason', ''))}"
                  for e in info["excluded"]]
    return "\n".join(lines) + "\n"


def study_html(info: Mapping[str, Any], now: dt.datetime) -> str:
    esc = html.escape
    left = days_left(info, now)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Study "
             f"{esc(info['study'])}</title><style>body{{font-family:sans-serif;margin:2em;max-width:60em}}"
             "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left}"
             "</style></head><body>",
             f"<h1>Study {esc(info['study'])}: {esc(info['title'])}</h1>",
             f"<p>Ends <strong>{esc(info['ends'])}</strong> (end of day, UTC)"
             + (f", {left} days left" if left is not None else "") + ".</p>",
             f"<p>Extract: <code>{esc(info['extract'])}</code> (read-only DuckDB).</p>",
             "<h2>Data dictionary</h2>"]
    for table, columns in sorted(info["tables"].items()):
        rows = info["rows"].get(table)
        parts.append(f"<h3>{esc(table)}" + (f" ({esc(str(rows))} rows)" if rows is not None else "") + "</h3>")
        parts.append("<table><tr><th>column</th><th>class</th><th>type</th><th>transform</th></tr>")
        for column in columns:
            parts.append("<tr>" + "".join(f"<td>{esc(str(value))}</td>" for value in (
                column.get("output", ""), column.get("column_class", ""), column.get("output_type", ""),
                transform_text(str(column.get("transform", "")), info.get("date_shift_days")))) + "</tr>")
        parts.append("</table>")
    if info["excluded"]:
        parts.append("<h2>Left out of the extract</h2><ul>")
        parts += [f"<li>{esc(str(e.get('table', '')))}.{esc(str(e.get('column', '')))}: "
                  f"{esc(str(e.get('reason', '')))}</li>" for e in info["excluded"]]
        parts.append("</ul>")
    parts.append("</body></html>")
    return "".join(parts)
