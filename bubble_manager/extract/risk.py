"""Disclosure risk of an extract, as plain data the panel shows and the manifest stores.

* k-anonymity over the quasi-identifiers after generalisation, per table that has them: the
  number of equivalence classes, the smallest one, and how many records sit in classes under k;
* the rarest approved codes (OMOP ``*_concept_id`` columns): codes held by fewer than k persons
  single a person out, whatever the generalisation;
* the sensitive and free-text columns the extract carries.

`dry_run` gives a steward the cohort size (suppressed under k) and this report before approval,
without writing anything but a private spill folder that is removed afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import duckdb

from .. import clock
from ..operations import Context, StudyOperations
from ..studies import Actor, State
from .cohort import CohortRefused, ensure_cohort_database, quote, select_cohort, shown_count, warehouse_fingerprint
from .pipeline import attach_warehouse, build_connection, register_person_map, resolve_cohort, write_tables
from .plan import ExtractPlan, make_plan
from .settings import ExtractSettings, cohort_database_folder, extract_settings

DRY_RUN_STATES = {State.submitted, State.approved, State.active}


def risk_report(connection: duckdb.DuckDBPyConnection, plan: ExtractPlan, persons: int, *, k: int,
                rarest: int) -> dict[str, Any]:
    """The risk report over the output tables as written (see `pipeline.write_tables`)."""
    groups = [_classes(connection, table.name, [c.output for c in table.columns if c.column_class == "quasi_identifier"], k)
              for table in plan.tables]
    groups = [g for g in groups if g is not None]
    return {
        "k": k,
        "persons": persons,
        "quasi_identifiers": groups,
        "k_anonymous": all(g["smallest_class"] is None or g["smallest_class"] >= k for g in groups),
        "rare_codes": _rare_codes(connection, plan, k, rarest),
        "sensitive_columns": [f"{t.name}.{c.output}" for t in plan.tables for c in t.columns
                              if c.column_class == "sensitive"],
        "free_text_columns": [f"{t.name}.{c.output}" for t in plan.tables for c in t.columns
                              if c.column_class == "free_text"],
    }


def _classes(connection: duckdb.DuckDBPyConnection, table: str, columns: list[str], k: int) -> dict[str, Any] | None:
    if not columns:
        return None
    keys = ", ".join(quote(c) for c in columns)
    records, classes, smallest, under = connection.execute(
        f"SELECT coalesce(sum(size), 0), count(*), min(size), coalesce(sum(size) FILTER (WHERE size < {int(k)}), 0) "
        f"FROM (SELECT count(*) AS size FROM main.{quote(table)} GROUP BY {keys})"
    ).fetchall()[0]
    return {"table": table, "columns": columns, "records": int(records), "classes": int(classes),
            "smallest_class": None if smallest is None else int(smallest),
            "records_in_classes_under_k": int(under)}


def _rare_codes(connection: duckdb.DuckDBPyConnection, plan: ExtractPlan, k: int, rarest: int) -> dict[str, Any]:
    """Codes held by the fewest persons (records, for a table requested without its person column).

    Two passes keep it cheap: a HyperLogLog estimate of the holders of every code, then exact
    counts for the codes that could matter (estimates under 3k, or close to the rarest ones).
    HyperLogLog counts small sets almost exactly, so no code under k can hide above 3k.
    """
    columns = [(table, column) for table in plan.tables for column in table.columns if column.is_code]
    if not columns:
        return {"columns": [], "codes": 0, "codes_under_k": 0, "rarest": []}

    def holders(table, exact: bool) -> str:
        person = table.output_person_column
        if person is None:
            return "count(*)"
        return f"count(DISTINCT {quote(person)})" if exact else f"approx_count_distinct({quote(person)})"

    estimates = " UNION ALL ".join(
        f"SELECT '{table.name}.{column.output}' AS code_column, CAST({quote(column.output)} AS VARCHAR) AS code, "
        f"{holders(table, exact=False)} AS estimate FROM main.{quote(table.name)} "
        f"WHERE {quote(column.output)} IS NOT NULL GROUP BY {quote(column.output)}" for table, column in columns)
    connection.execute(f"CREATE OR REPLACE TEMP TABLE code_estimates AS {estimates}")
    codes, nth = connection.execute(
        f"SELECT count(*), (SELECT estimate FROM code_estimates ORDER BY estimate LIMIT 1 OFFSET {int(rarest) - 1}) "
        "FROM code_estimates").fetchall()[0]
    threshold = max(3 * k, int(1.25 * (nth or 0)) + 1)
    exact = " UNION ALL ".join(
        f"SELECT '{table.name}.{column.output}' AS code_column, CAST({quote(column.output)} AS VARCHAR) AS code, "
        f"{holders(table, exact=True)} AS persons FROM main.{quote(table.name)} "
        f"WHERE CAST({quote(column.output)} AS VARCHAR) IN (SELECT code FROM code_estimates WHERE code_column = "
        f"'{table.name}.{column.output}' AND estimate <= {threshold}) GROUP BY {quote(column.output)}"
        for table, column in columns)
    connection.execute(f"CREATE OR REPLACE TEMP TABLE code_counts AS {exact}")
    under = connection.execute(f"SELECT count(*) FROM code_counts WHERE persons < {int(k)}").fetchall()[0][0]
    rows = connection.execute("SELECT code_column, code, persons FROM code_counts ORDER BY persons, code_column, code "
                              f"LIMIT {int(rarest)}").fetchall()
    connection.execute("DROP TABLE code_counts")
    connection.execute("DROP TABLE code_estimates")
    return {"columns": [f"{t.name}.{c.output}" for t, c in columns], "codes": int(codes), "codes_under_k": int(under),
            "rarest": [{"column": c, "code": code, "persons": int(p)} for c, code, p in rows]}


# --- the steward's dry run ----------------------------------------------------------------------

def dry_run(context: Context, actor: Actor, slug: str) -> dict[str, Any]:
    """Cohort size (under k shown as '< k') and risk report of a study, for a steward; audited.

    Refused to anyone but a steward who neither requested nor belongs to the study.
    """
    study = StudyOperations(context).get(slug)
    if not actor.has("steward") or study.involved(actor.name):
        context.audit.record(actor=actor.name, action="extract.refused", study=slug,
                             detail={"attempted": "dry-run", "rule": "steward-only"})
        raise PermissionError(f"only a steward who is not part of study {slug} may see its cohort size and risk")
    if study.state not in DRY_RUN_STATES:
        raise ValueError(f"study {slug} is {study.state.value}; a dry run needs a submitted, approved or active study")
    settings = extract_settings(context)
    plan = make_plan(study, context.catalog, date_shift_days=settings.date_shift_days)
    warehouse = Path(context.settings.warehouse_path)
    started = clock.utcnow()
    try:
        result = _dry_run(context, settings, plan, warehouse)
    except CohortRefused as refused:
        context.audit.record(actor=actor.name, action="extract.dry-run", study=slug,
                             detail={"outcome": "refused", "reason": refused.reason})
        raise
    context.audit.record(actor=actor.name, action="extract.dry-run", study=slug,
                         detail={"outcome": "ok", "request_hash": plan.request_hash,
                                 "seconds": round((clock.utcnow() - started).total_seconds(), 3)})
    return result


def _dry_run(context: Context, settings: ExtractSettings, plan: ExtractPlan, warehouse: Path) -> dict[str, Any]:
    catalog = context.catalog
    database = ensure_cohort_database(warehouse, catalog, cohort_database_folder(context, settings))
    selected = select_cohort(database, plan.cohort_sql, catalog.cohort_tables(),
                             timeout=settings.cohort_timeout_seconds, memory_limit=settings.cohort_memory_limit,
                             threads=settings.cohort_threads)
    k = settings.k_anonymity
    scratch = context.home / "tmp"
    scratch.mkdir(mode=0o700, exist_ok=True)
    spill = Path(tempfile.mkdtemp(prefix="dry-run-", dir=scratch))
    try:
        with build_connection(":memory:", memory_limit=settings.build_memory_limit,
                              threads=settings.build_threads, spill=spill) as connection:
            attach_warehouse(connection, warehouse, catalog)
            persons = resolve_cohort(connection, plan, selected)
            register_person_map(connection, persons, None, None)
            write_tables(connection, plan)
            report = risk_report(connection, plan, len(persons), k=k, rarest=settings.rarest_codes)
    finally:
        shutil.rmtree(spill, ignore_errors=True)
    result: dict[str, Any] = {"study": plan.slug, "request_hash": plan.request_hash, "k": k,
                              "cohort": shown_count(len(persons), k),
                              "warehouse_fingerprint": warehouse_fingerprint(warehouse, catalog)}
    if len(persons) < k:
        result["risk"] = None
        result["note"] = f"the cohort has fewer than {k} persons: every record is in a class under k; no detail shown"
    else:
        result["risk"] = report
    return result


def describe_risk(report: dict[str, Any] | None) -> str:
    """The risk report as text lines for the CLI."""
    if not report:
        return "risk: not shown"
    k = report["k"]
    lines = [f"risk report (k={k}): {'k-anonymous' if report['k_anonymous'] else 'NOT k-anonymous'} over the "
             "generalised quasi-identifiers"]
    for group in report["quasi_identifiers"]:
        lines.append(f"  {group['table']} ({', '.join(group['columns'])}): {group['classes']} classes, smallest "
                     f"{group['smallest_class']}, {group['records_in_classes_under_k']} of {group['records']} "
                     f"records in classes under {k}")
    codes = report["rare_codes"]
    lines.append(f"  codes: {codes['codes_under_k']} of {codes['codes']} approved codes held by fewer than {k} persons")
    for item in codes["rarest"]:
        lines.append(f"    {item['column']} = {item['code']}: {item['persons']} person(s)")
    for name in report["sensitive_columns"]:
        lines.append(f"  sensitive column: {name}")
    for name in report["free_text_columns"]:
        lines.append(f"  free text column (approved, scrubbed of the person's own identifiers): {name}")
    return "\n".join(lines)
