"""SQL expressions of the plan's transforms, over a staged source row.

Names in the SQL: ``s`` is the staged source row, which carries the person's pseudonym, date
shift and pseudonym rank (`PERSON_COLUMNS`) and each record key's new id
(`renumber.renumbered_column`); ``sp.pattern`` is the person's scrub pattern (for approved free text).
"""

from __future__ import annotations

from .cohort import quote, sql_string
from .plan import SCRUB_MARK, ColumnPlan, IdentitySource
from .renumber import renumbered_column

MIN_SCRUB_LENGTH = 2  # a one-letter "name" would blank out every such letter
PERSON_COLUMNS = {"pseudonym": "_bm_pseudonym", "shift": "_bm_shift", "rank": "_bm_rank"}  # never catalog names


def column_expression(column: ColumnPlan) -> str:
    """The output value of `column` for the current row."""
    source = f"s.{quote(column.source)}"
    transform = column.transform
    if transform == "pseudonym":
        return "s._bm_pseudonym"
    if transform == "renumber":
        return f"s.{quote(renumbered_column(column.source))}"
    if transform == "shift_days":
        if column.source_type == "TIMESTAMP":
            return f"{source} + to_days(s._bm_shift)"
        return f"CAST({source} + s._bm_shift AS DATE)"
    if transform == "scrub":
        return scrub_expression(source)
    return generalised_expression(column, source)


def generalised_expression(column: ColumnPlan, source: str) -> str:
    """Quasi-identifier generalisations (also used by the risk report) and plain copies."""
    transform = column.transform
    if transform == "year":
        return f"CAST(year({source}) AS INTEGER)"
    if transform.startswith("prefix:"):
        return f"left(CAST({source} AS VARCHAR), {int(transform.split(':')[1])})"
    if transform.startswith("topcode:"):
        cap = int(transform.split(":")[1])
        return f"CAST(CASE WHEN {source} > {cap} THEN {cap} ELSE {source} END AS {column.source_type})"
    if transform == "keep":
        return source
    raise ValueError(f"no SQL for transform {transform!r}")


def scrub_expression(text: str) -> str:
    """Replace the person's own direct identifiers in `text` (``sp.pattern``, see `scrub_patterns_sql`)."""
    return (f"CASE WHEN sp.pattern IS NULL THEN {text} "
            f"ELSE regexp_replace({text}, sp.pattern, {sql_string(SCRUB_MARK)}, 'gi') END")


def scrub_patterns_sql(identity: tuple[IdentitySource, ...], cohort_table: str) -> str:
    """One case-insensitive alternation per cohort person of all their direct identifier values,
    longest first (so a full name wins over a part of it), escaped as literals."""
    values = " UNION ".join(
        f"SELECT {quote(source.person_key)} AS person_id, {quote(name)} AS value FROM wh.{quote(source.table)} "
        f"WHERE {quote(source.person_key)} IN (SELECT person_id FROM {cohort_table})"
        for source in identity for name in source.columns)
    return ("SELECT person_id, string_agg(regexp_escape(value), '|' ORDER BY length(value) DESC, value) AS pattern "
            f"FROM ({values}) WHERE length(value) >= {MIN_SCRUB_LENGTH} GROUP BY person_id")
