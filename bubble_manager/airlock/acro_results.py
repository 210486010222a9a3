"""ACRO's `results.json` (the SACRO project's semi-automatic output checker), read as plain data.

ACRO runs in the bubble: `acro.finalise(folder, "json")` writes each output's files beside a
`results.json` that records, per output, its status (`pass`, `fail`, `review`), the method that made
it (`crosstab`, `pivot_table`, `hist`...), its statistical barn (`Frequencies` for counts,
`LinearAggregations` for means...) and, per file, the checks it ran with the cells that failed
(`MinimumThresholdCheck`, `NKCheck`, `PPercentCheck`...). This module turns that document, which
comes from the bubble and is hostile input, into small validated records; it never imports acro.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

DOMINANCE_CHECKS = frozenset({"NKCheck", "PPercentCheck"})
THRESHOLD_CHECKS = frozenset({"MinimumThresholdCheck", "SurvivalThresholdCheck", "DegreesOfFreedomCheck"})
COUNT_BARNS = frozenset({"Frequencies"})
MAX_OUTPUTS = 5000
MAX_CELLS_KEPT = 200


class AcroResultsError(ValueError):
    """The document is not an ACRO results file this version understands."""


@dataclass(frozen=True)
class AcroFileChecks:
    """One file of one ACRO output, with the checks ACRO ran on it."""

    output: str
    status: str
    kind: str
    method: str
    statbarn: str
    exception: str
    comments: tuple[str, ...]
    check_status: dict[str, str]
    failed_cells: dict[str, list[list[int]]] = field(default_factory=dict)
    data_rows: int = 0
    data_columns: int = 0

    @property
    def is_counts(self) -> bool:
        """A frequency table: every data cell is a number of persons."""
        return self.statbarn in COUNT_BARNS

    @property
    def do_not_release(self) -> bool:
        return "DONT_RELEASE" in self.output or any("DO NOT RELEASE" in c.upper() for c in self.comments)

    def as_dict(self) -> dict[str, Any]:
        return {"output": self.output, "status": self.status, "type": self.kind, "method": self.method,
                "statbarn": self.statbarn, "exception": self.exception, "comments": list(self.comments),
                "checks": {name: {"status": status, "cells": self.failed_cells.get(name, [])}
                           for name, status in sorted(self.check_status.items())}}


def _text(value: Any, limit: int = 2000) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _cells(value: Any) -> list[list[int]]:
    cells: list[list[int]] = []
    if isinstance(value, list):
        for cell in value[:MAX_CELLS_KEPT]:
            if (isinstance(cell, list) and len(cell) == 2 and all(isinstance(i, int) and not isinstance(i, bool)
                                                                  and 0 <= i < 10**7 for i in cell)):
                cells.append([cell[0], cell[1]])
    return cells


def _shape(outcome: Any) -> tuple[int, int]:
    """Data rows and columns of the table (`outcome` maps column label to {row label: verdict})."""
    if not isinstance(outcome, dict) or not outcome:
        return 0, 0
    first = next(iter(outcome.values()))
    return (len(first) if isinstance(first, dict) else 0), len(outcome)


def parse_results(document: Any, folder: str = "") -> dict[str, AcroFileChecks]:
    """Map each file named in `document` (path relative to the request, under `folder`) to its checks."""
    if not isinstance(document, dict) or not isinstance(document.get("results"), dict):
        raise AcroResultsError("not an ACRO results file: no 'results' object")
    tool = document.get("tool")
    if isinstance(tool, dict) and tool.get("name") not in (None, "ACRO"):
        raise AcroResultsError("not an ACRO results file: written by another tool")
    outputs = document["results"]
    if len(outputs) > MAX_OUTPUTS:
        raise AcroResultsError(f"more than {MAX_OUTPUTS} outputs in one ACRO results file")
    found: dict[str, AcroFileChecks] = {}
    for uid, output in outputs.items():
        if not isinstance(output, dict):
            continue
        properties = output.get("properties") if isinstance(output.get("properties"), dict) else {}
        fair = output.get("fair") if isinstance(output.get("fair"), dict) else {}
        statuses = fair.get("check_status") if isinstance(fair.get("check_status"), dict) else {}
        comments = output.get("comments") if isinstance(output.get("comments"), list) else []
        rows, columns = _shape(output.get("outcome"))
        for entry in output.get("files") or []:
            if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
                continue
            name = PurePosixPath(entry["name"]).name
            if not name or name in (".", ".."):
                continue
            sdc = entry.get("sdc") if isinstance(entry.get("sdc"), dict) else {}
            summary = sdc.get("summary") if isinstance(sdc.get("summary"), dict) else {}
            cells = sdc.get("cells") if isinstance(sdc.get("cells"), dict) else {}
            check_status = {str(k)[:80]: str(v)[:20] for k, v in statuses.items()}
            for check, count in summary.items():
                if isinstance(count, int) and not isinstance(count, bool):
                    check_status.setdefault(str(check)[:80], "fail" if count > 0 else "pass")
                    if count > 0:
                        check_status[str(check)[:80]] = "fail"
            failed = {str(check)[:80]: _cells(value) for check, value in cells.items() if _cells(value)}
            path = f"{folder}/{name}" if folder else name
            found[path] = AcroFileChecks(
                output=str(uid)[:200], status=_text(output.get("status"), 20), kind=_text(output.get("type"), 40),
                method=_text(properties.get("method"), 80), statbarn=_text(fair.get("statbarn"), 80),
                exception=_text(output.get("exception")), comments=tuple(_text(c) for c in comments[:20]),
                check_status=check_status, failed_cells=failed, data_rows=rows, data_columns=columns)
    return found


def looks_like_acro_results(name: str, document: Any) -> bool:
    return (PurePosixPath(name).name == "results.json" and isinstance(document, dict)
            and isinstance(document.get("results"), dict)
            and (isinstance(document.get("tool"), dict) or "version" in document))
