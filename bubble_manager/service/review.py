"""What a steward sees before deciding: the extract plan, the cohort size and the risk report.

A thin adapter over the extract subsystem (`extract.plan.make_plan`, `extract.risk.dry_run`):
the dry run is audited there and refused to anyone but an uninvolved steward.
"""

from __future__ import annotations

from typing import Any

from ..operations import Context
from ..studies import Actor, Study


def plan_rows(context: Context, study: Study) -> list[dict[str, str]]:
    from ..extract.plan import make_plan

    plan = make_plan(study, context.catalog)
    rows = [{"table": table.name, "column": column.output, "class": column.column_class,
             "transform": column.transform} for table in plan.tables for column in table.columns]
    rows += [{"table": e.table, "column": e.column, "class": "excluded", "transform": e.reason}
             for e in plan.excluded]
    return rows


def risk_lines(report: dict[str, Any] | None) -> dict[str, Any]:
    if not report:
        return {}
    lines: dict[str, Any] = {"k_anonymous": "yes" if report["k_anonymous"] else "NO",
                             "persons": report["persons"]}
    for group in report["quasi_identifiers"]:
        key = f"{group['table']} ({', '.join(group['columns'])})"
        lines[key] = (f"{group['classes']} classes, smallest {group['smallest_class']}, "
                      f"{group['records_in_classes_under_k']} records in classes under k={report['k']}")
    rare = report.get("rare_codes") or {}
    if rare.get("codes"):
        lines["rare codes"] = f"{rare['codes_under_k']} of {rare['codes']} codes held by fewer than {report['k']} persons"
    for name in ("sensitive_columns", "free_text_columns"):
        if report.get(name):
            lines[name] = ", ".join(report[name])
    return lines


def steward_report(context: Context, actor: Actor, study: Study) -> dict[str, Any]:
    """Plan, cohort size (small counts suppressed) and risk, for the review page."""
    from ..extract.risk import dry_run

    result = dry_run(context, actor, study.slug)
    return {"plan": plan_rows(context, study), "cohort_size": result["cohort"],
            "risk": risk_lines(result.get("risk")) or {"note": result.get("note", "")}}
