"""Automatic disclosure checks (pure): what a steward should look at in each file, and why.

Each file gets a report: its category (table, ACRO table, figure, text, unknown...), a verdict and
the flags behind it. `pass`: every check that applies ran and found nothing; `flagged`: a check
found something (small cells, dominance, a pseudonym, a day-level date, free text, ACRO's own
failures); `manual`: no automatic check applies (figures, text, unknown formats, tables too
large to check). Every file is still reviewed by a steward: the report tells them where to look.
Flags point at cells by number (row after the header, column, table), never by value or label (a
label may itself be a value, even a pseudonym), so reports are safe to store and show.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..extract.pseudonyms import PSEUDONYM_PATTERN, is_pseudonym
from .acro_results import DOMINANCE_CHECKS, THRESHOLD_CHECKS, AcroFileChecks

PASS, FLAGGED, MANUAL = "pass", "flagged", "manual"
MAX_CELLS_LISTED = 50
DAY_DATE = re.compile(r"\b(?:(?:19|20)\d{2}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])"
                      r"|(?:0[1-9]|[12]\d|3[01])[/.](?:0[1-9]|1[0-2])[/.](?:19|20)\d{2})\b")
NUMBER = re.compile(r"^\s*[-+]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][-+]?\d+)?\s*$")


@dataclass
class Table:
    """One table of a file (a CSV, a Parquet file, a sheet of a workbook)."""

    name: str
    header: list[str]
    rows: list[list[Any]]


@dataclass
class Flag:
    check: str
    message: str
    cells: list[list[Any]] = field(default_factory=list)
    count: int = 0

    def add(self, row: int, column: int, table: int = 1) -> None:
        """Count one cell: `row` 1 is the first row after the header (0 is the header), `column` from 1."""
        self.count += 1
        if len(self.cells) < MAX_CELLS_LISTED:
            self.cells.append([row, column, table])

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "message": self.message, "cells": self.cells, "count": self.count}


@dataclass
class CheckOptions:
    threshold: int = 10
    free_text_characters: int = 40
    free_text_words: int = 6
    max_cells: int = 2_000_000

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CheckOptions":
        return cls(threshold=int(data.get("threshold", 10)),
                   free_text_characters=int(data.get("free_text_characters", 40)),
                   free_text_words=int(data.get("free_text_words", 6)),
                   max_cells=int(data.get("max_cells", 2_000_000)))


def as_number(value: Any) -> float | None:
    """A cell as a number, if it is one (CSV cells are text: '12', '3.0', '1,5')."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value) if not (isinstance(value, float) and math.isnan(value)) else None
    if isinstance(value, str) and NUMBER.match(value):
        try:
            return float(value.strip().replace(",", "."))
        except ValueError:
            return None
    return None


def contains_pseudonym(text: str) -> bool:
    return any(is_pseudonym(match.group(0)) for match in PSEUDONYM_PATTERN.finditer(text))


def is_free_text(text: str, options: CheckOptions) -> bool:
    return len(text) >= options.free_text_characters and len(text.split()) >= options.free_text_words


class TableChecker:
    """Runs the cell checks over the tables of one file and collects the flags."""

    def __init__(self, options: CheckOptions):
        self.options = options
        self.flags: dict[str, Flag] = {}
        self.notes: list[str] = []

    def flag(self, check: str, message: str) -> Flag:
        if check not in self.flags:
            self.flags[check] = Flag(check, message)
        return self.flags[check]

    def check_table(self, table: Table, count_columns: Iterable[str] = (), *, all_counts: bool = False,
                    index_columns: int = 0, number: int = 1) -> dict[str, Any]:
        """Check every cell; `count_columns` (or, with `all_counts`, every column after the first
        `index_columns`) hold counts of persons. `number` is the table's place in its file."""
        declared = set(count_columns)
        header = [str(h) for h in table.header]
        unknown = len(declared - set(header))
        if unknown:
            self.notes.append(f"{unknown} declared count column(s) not found in table {number}")
        width = max([len(header)] + [len(row) for row in table.rows[:1000]])
        counted = {j for j in range(width)
                   if (j < len(header) and header[j] in declared) or (all_counts and j >= index_columns)}
        threshold = self.options.threshold
        for j, name in enumerate(header):
            self._text_cell(name, 0, j + 1, number)
        for r, row in enumerate(table.rows, start=1):
            for j, value in enumerate(row):
                if j in counted:
                    amount = as_number(value)
                    if amount is not None and 0 < amount < threshold:
                        self.flag("small-cell", f"counts below {threshold} (and above 0)").add(r, j + 1, number)
                if isinstance(value, str):
                    self._text_cell(value, r, j + 1, number)
                elif isinstance(value, (dt.date, dt.datetime)):
                    self.flag("day-date", "dates at day resolution (give months or years)").add(r, j + 1, number)
        return {"table": number, "rows": len(table.rows), "columns": width,
                "count_columns": sorted(j + 1 for j in counted)}

    def _text_cell(self, value: str, row: int, column: int, table: int) -> None:
        if contains_pseudonym(value):
            self.flag("pseudonym", "a study pseudonym (persons must not be identifiable in outputs)").add(
                row, column, table)
        if DAY_DATE.search(value):
            self.flag("day-date", "dates at day resolution (give months or years)").add(row, column, table)
        if is_free_text(value, self.options):
            self.flag("free-text", "free text (read it: it may describe a person)").add(row, column, table)

    def check_text(self, text: str) -> None:
        """A text document: pseudonyms and day dates by line; the whole is free text for a human."""
        for number, line in enumerate(text.splitlines(), start=1):
            if contains_pseudonym(line):
                self.flag("pseudonym", "a study pseudonym (persons must not be identifiable in outputs)").add(
                    number, 0)
            if DAY_DATE.search(line):
                self.flag("day-date", "dates at day resolution (give months or years)").add(number, 0)

    def check_acro(self, acro: AcroFileChecks, index_columns: int = 0) -> None:
        """ACRO's own verdicts on the output this file belongs to; ACRO numbers data cells from 0,
        after the row labels (`index_columns` of them in the file)."""
        for check, status in sorted(acro.check_status.items()):
            if status != "fail":
                continue
            cells = acro.failed_cells.get(check, [])
            if check in DOMINANCE_CHECKS:
                flag = self.flag("dominance", "ACRO: a few contributors dominate a cell (NK rule or p% rule)")
            elif check in THRESHOLD_CHECKS:
                flag = self.flag("acro-threshold", "ACRO: cells computed from too few persons")
            else:
                flag = self.flag(f"acro-{check}", f"ACRO's {check} failed")
            if not cells:
                flag.count += 1
            for r, c in cells:
                flag.add(r + 1, c + 1 + index_columns)
        if acro.do_not_release:
            self.flag("acro-do-not-release", "ACRO marks this output DO NOT RELEASE (for output checkers only)"
                      ).count += 1
        if acro.exception:
            self.notes.append("the researcher asked ACRO for an exception: " + acro.exception[:500])
        if acro.status == "review":
            self.notes.append("ACRO asks for a manual review of this output")

    def report(self, category: str, *, manual_reason: str = "") -> dict[str, Any]:
        flags = [flag.as_dict() for flag in self.flags.values()]
        verdict = FLAGGED if flags else (MANUAL if manual_reason else PASS)
        notes = list(self.notes) + ([manual_reason] if manual_reason else [])
        return {"category": category, "verdict": verdict, "flags": flags, "notes": notes}


def overall_verdict(verdicts: Iterable[str]) -> str:
    found = set(verdicts)
    return FLAGGED if FLAGGED in found else (MANUAL if MANUAL in found else PASS)
