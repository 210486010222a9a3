"""The extract plan (pure): which tables, columns and transforms an approved study gets.

Each requested column gets exactly one transform, decided by its catalog class:

=================  ===============  ==============================================================
class              transform        in the extract
=================  ===============  ==============================================================
person_key         ``pseudonym``    the study pseudonym (random token, see `pseudonyms.py`)
record_key         ``renumber``     a keyed permutation of the id (`renumber.py`), the same across
                                    the tables that share the key (``references``); never the
                                    source id or its order
quasi_identifier   ``year``         the year only, as INTEGER, column renamed ``*_year``
                   ``prefix:N``     the first N characters (postcode to 3 digits)
                   ``topcode:N``    values above N become N (ages over 89)
date               ``shift_days``   moved by the person's single random offset
free_text          ``scrub``        only if the approval names the column; the person's own
                                    direct identifiers are replaced by ``[removed]``
sensitive, plain   ``keep``         as is (sensitive columns are flagged in the risk report)
=================  ===============  ==============================================================

Never extracted: direct identifiers, identity and opt-out tables, ``*_source_value`` columns,
free text without approval. Submission already refuses unknown columns and direct identifiers
(`study_request.catalog_problems`); the plan checks again, since the catalog may have changed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ..catalog import Catalog, Column
from ..studies import Study
from ..study_request import catalog_problems

SCRUB_MARK = "[removed]"
CODE_SUFFIX = "_concept_id"


class PlanError(ValueError):
    """The study cannot be extracted as requested; the message names the column and the fix."""

    reason = "plan"


@dataclass(frozen=True)
class ColumnPlan:
    source: str
    output: str
    column_class: str
    source_type: str
    output_type: str
    transform: str
    domain: str | None = None  # record-key domain ("table.column" of the key) for `renumber`

    @property
    def is_code(self) -> bool:
        """OMOP concept columns: the risk report looks for rare codes in them."""
        return self.transform == "keep" and self.source.endswith(CODE_SUFFIX)


@dataclass(frozen=True)
class TablePlan:
    name: str
    person_key: str
    columns: tuple[ColumnPlan, ...]

    def column(self, output: str) -> ColumnPlan:
        return next(c for c in self.columns if c.output == output)

    @property
    def source_columns(self) -> list[str]:
        """Source columns the build reads: the requested ones plus the person key."""
        names = [c.source for c in self.columns]
        return names if self.person_key in names else [self.person_key, *names]

    @property
    def output_person_column(self) -> str | None:
        for column in self.columns:
            if column.transform == "pseudonym":
                return column.output
        return None


@dataclass(frozen=True)
class Exclusion:
    table: str
    column: str
    reason: str


@dataclass(frozen=True)
class IdentitySource:
    """An identity table whose values are scrubbed from approved free text."""

    table: str
    person_key: str
    columns: tuple[str, ...]


@dataclass(frozen=True)
class ExtractPlan:
    slug: str
    request_hash: str
    warehouse: str
    cohort_sql: str
    date_shift_days: int
    tables: tuple[TablePlan, ...]
    excluded: tuple[Exclusion, ...]
    person_table: tuple[str, str] | None  # (table, person key column): who exists in the warehouse
    opt_out: tuple[str, str] | None  # (table, person key column)
    identity: tuple[IdentitySource, ...] = field(default=())

    def table(self, name: str) -> TablePlan:
        return next(t for t in self.tables if t.name == name)

    def record_key_domains(self) -> dict[str, list[tuple[str, str]]]:
        """Each record-key domain and the (table, source column) pairs renumbered with it."""
        domains: dict[str, list[tuple[str, str]]] = {}
        for table in self.tables:
            for column in table.columns:
                if column.transform == "renumber":
                    domains.setdefault(column.domain, []).append((table.name, column.source))
        return domains

    @property
    def needs_identity(self) -> bool:
        return any(c.transform == "scrub" for t in self.tables for c in t.columns)

    def as_dict(self) -> dict[str, Any]:
        return {
            "study": self.slug,
            "request_hash": self.request_hash,
            "warehouse": self.warehouse,
            "date_shift_days": self.date_shift_days,
            "tables": {t.name: [asdict(c) for c in t.columns] for t in self.tables},
            "excluded": [asdict(e) for e in self.excluded],
            "person_table": self.person_table[0] if self.person_table else None,
            "opt_out_table": self.opt_out[0] if self.opt_out else None,
        }


def make_plan(study: Study, catalog: Catalog, *, date_shift_days: int = 180) -> ExtractPlan:
    """Decide the extract of `study` from `catalog`; raise PlanError if it cannot be built."""
    problems = catalog_problems(study.request, catalog)
    if problems:
        listed = "; ".join(f"{where}: {message}" for where, message in problems)
        raise PlanError(f"study {study.slug}: the catalog refuses this request ({listed}); "
                        "amend the request's data section")
    approved_text = set(study.free_text_approved)
    tables: list[TablePlan] = []
    excluded: list[Exclusion] = []
    for table_name, column_names in study.request.data.items():
        table = catalog.table(table_name)
        person_key = table.person_key
        if person_key is None:
            raise PlanError(f"study {study.slug}: table {table_name} has no person_key column in the catalog, so it "
                            "cannot be restricted to the cohort; remove it from the request or fix the catalog")
        planned: list[ColumnPlan] = []
        for name in column_names:
            column = table.columns[name]
            reason = _exclusion_reason(column, approved_text)
            if reason:
                excluded.append(Exclusion(table_name, name, reason))
                continue
            planned.append(_column_plan(catalog, column))
        _check_output_names(study.slug, table_name, planned)
        if not planned:
            raise PlanError(f"study {study.slug}: nothing of table {table_name} may leave the warehouse "
                            f"({', '.join(e.column for e in excluded if e.table == table_name)} excluded); "
                            "remove the table from the request")
        tables.append(TablePlan(table_name, person_key.name, tuple(planned)))
    opt_out = catalog.opt_out_table
    return ExtractPlan(
        slug=study.slug,
        request_hash=study.request_hash,
        warehouse=catalog.warehouse,
        cohort_sql=study.request.cohort,
        date_shift_days=date_shift_days,
        tables=tuple(tables),
        excluded=tuple(excluded),
        person_table=person_table(catalog),
        opt_out=(opt_out.name, opt_out.person_key.name) if opt_out else None,
        identity=tuple(_identity_sources(catalog)),
    )


def person_table(catalog: Catalog) -> tuple[str, str] | None:
    """The clinical table with one row per person (a person key, no record key) and its key."""
    for table in catalog.extractable_tables:
        classes = {c.column_class for c in table.columns.values()}
        if table.person_key is not None and "record_key" not in classes:
            return table.name, table.person_key.name
    return None


def _exclusion_reason(column: Column, approved_text: set[str]) -> str | None:
    if column.column_class == "direct_identifier":
        return "direct identifier: never leaves the warehouse"
    if column.is_source_value:
        return "*_source_value column: raw source codes and text are dropped"
    if column.column_class == "free_text" and column.qualified_name not in approved_text:
        return "free text: the approval does not name this column"
    return None


def _column_plan(catalog: Catalog, column: Column) -> ColumnPlan:
    kind = column.column_class

    def plan(transform: str, output_type: str = column.type, output: str = column.name,
             domain: str | None = None) -> ColumnPlan:
        return ColumnPlan(column.name, output, kind, column.type, output_type, transform, domain)

    if kind == "person_key":
        return plan("pseudonym", "VARCHAR")
    if kind == "record_key":
        return plan("renumber", "BIGINT", domain=column.references or column.qualified_name)
    if kind == "date":
        return plan("shift_days")
    if kind == "free_text":
        return plan("scrub" if catalog.identity_tables else "keep")
    if kind == "quasi_identifier":
        rule = column.generalise or ""
        if rule == "year":
            return plan("year", "INTEGER", year_column_name(column.name))
        if rule.startswith("prefix:"):
            return plan(rule, "VARCHAR")
        if rule.startswith("topcode:"):
            if column.type not in ("BIGINT", "INTEGER", "SMALLINT", "DOUBLE"):
                raise PlanError(f"catalog column {column.qualified_name}: 'topcode' needs a numeric column, "
                                f"not {column.type}; use prefix:N or year")
            return plan(rule)
        raise PlanError(f"catalog column {column.qualified_name}: quasi-identifier without a known generalisation")
    return plan("keep")


def year_column_name(name: str) -> str:
    return f"{name.removesuffix('_date')}_year"


def _check_output_names(slug: str, table: str, columns: list[ColumnPlan]) -> None:
    seen: dict[str, str] = {}
    for column in columns:
        if column.output in seen:
            raise PlanError(f"study {slug}: in table {table}, {column.source} (generalised to {column.output}) "
                            f"collides with {seen[column.output]}; request only one of them")
        seen[column.output] = column.source


def _identity_sources(catalog: Catalog) -> list[IdentitySource]:
    sources = []
    for table in catalog.identity_tables:
        key = table.person_key
        columns = tuple(c.name for c in table.columns.values()
                        if c.column_class == "direct_identifier" and c.type == "VARCHAR")
        if key is not None and columns:
            sources.append(IdentitySource(table.name, key.name, columns))
    return sources


def describe_plan(plan: ExtractPlan) -> str:
    """The plan as text for `bubble-manager extract plan`."""
    lines = [f"extract plan of {plan.slug} (request {plan.request_hash[:12]}, warehouse {plan.warehouse})",
             f"dates shifted per person by a random offset in [-{plan.date_shift_days}, +{plan.date_shift_days}] days "
             "(never 0)", "rows ordered by pseudonym; opted-out persons removed" if plan.opt_out
             else "rows ordered by pseudonym (the catalog has no opt-out register)"]
    for table in plan.tables:
        lines.append(f"  {table.name}")
        for column in table.columns:
            target = f" -> {column.output}" if column.output != column.source else ""
            domain = f" ({column.domain})" if column.domain else ""
            lines.append(f"    {column.source}{target}: {column.transform}{domain}")
    if plan.excluded:
        lines.append("  excluded")
        for item in plan.excluded:
            lines.append(f"    {item.table}.{item.column}: {item.reason}")
    return "\n".join(lines)

