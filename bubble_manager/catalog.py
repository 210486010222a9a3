"""The warehouse data dictionary: tables, columns, their types and classes.

The catalog is a YAML file that a data steward maintains beside the warehouse. Every column has
exactly one class, which decides what the extract does with it:

==================  =========================================================================
class               in an extract
==================  =========================================================================
direct_identifier   never leaves the warehouse (name, NIR, address, phone, e-mail)
person_key          replaced by the study pseudonym
record_key          renumbered per study, in random order
quasi_identifier    generalised (``generalise``: ``year``, ``prefix:N``, ``topcode:N``)
date                shifted by one random offset per person
free_text           excluded unless the approval names the column
sensitive           kept as is, flagged in the risk report
plain               kept as is
==================  =========================================================================

Tables have a role: ``clinical`` (default, extractable), ``identity`` (direct identifiers of
persons, never extractable) or ``opt_out`` (the register of patients who objected).
A column marked ``cohort: true`` may be used in a cohort query; direct identifiers and free text
never can.

Example::

    warehouse: demo-eds
    tables:
      person:
        columns:
          person_id: {type: BIGINT, class: person_key, cohort: true}
          birth_date: {type: DATE, class: quasi_identifier, generalise: year, cohort: true}
      visit_occurrence:
        columns:
          visit_occurrence_id: {type: BIGINT, class: record_key}
          person_id: {type: BIGINT, class: person_key, cohort: true}
      condition_occurrence:
        columns:
          visit_occurrence_id: {type: BIGINT, class: record_key,
                                references: visit_occurrence.visit_occurrence_id}
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import yaml

COLUMN_CLASSES = (
    "direct_identifier",
    "person_key",
    "record_key",
    "quasi_identifier",
    "date",
    "free_text",
    "sensitive",
    "plain",
)
TABLE_ROLES = ("clinical", "identity", "opt_out")
COLUMN_TYPES = (
    "BIGINT",
    "INTEGER",
    "SMALLINT",
    "DOUBLE",
    "VARCHAR",
    "DATE",
    "TIMESTAMP",
    "BOOLEAN",
)
INTEGER_TYPES = ("BIGINT", "INTEGER", "SMALLINT")
NEVER_COHORT = ("direct_identifier", "free_text")
GENERALISATIONS = re.compile(r"^(year|prefix:[1-9][0-9]?|topcode:[1-9][0-9]{0,2})$")
IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
TABLE_KEYS = {"description", "role", "columns"}
COLUMN_KEYS = {"type", "class", "cohort", "generalise", "references", "description"}


class CatalogError(ValueError):
    """The catalog file is invalid; the message names the file, table and column."""


@dataclass(frozen=True)
class Column:
    table: str
    name: str
    type: str
    column_class: str
    cohort: bool = False
    generalise: str | None = None
    references: str | None = None
    description: str = ""

    @property
    def qualified_name(self) -> str:
        return f"{self.table}.{self.name}"

    @property
    def is_source_value(self) -> bool:
        """OMOP `*_source_value` columns carry raw source codes and text; extracts drop them."""
        return self.name.endswith("_source_value")


@dataclass(frozen=True)
class Table:
    name: str
    role: str
    columns: dict[str, Column]
    description: str = ""

    @property
    def person_key(self) -> Column | None:
        keys = [c for c in self.columns.values() if c.column_class == "person_key"]
        return keys[0] if keys else None

    @property
    def cohort_columns(self) -> list[Column]:
        return [c for c in self.columns.values() if c.cohort]


@dataclass(frozen=True)
class Catalog:
    warehouse: str
    tables: dict[str, Table]
    source: str = "<memory>"
    raw: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def table(self, name: str) -> Table:
        try:
            return self.tables[name]
        except KeyError:
            known = ", ".join(sorted(self.tables))
            raise KeyError(f"table {name!r} is not in the catalog {self.source} (known: {known})") from None

    def column(self, table: str, column: str) -> Column:
        columns = self.table(table).columns
        try:
            return columns[column]
        except KeyError:
            raise KeyError(f"column {table}.{column} is not in the catalog {self.source}") from None

    @property
    def extractable_tables(self) -> list[Table]:
        return [t for t in self.tables.values() if t.role == "clinical"]

    @property
    def opt_out_table(self) -> Table | None:
        registers = [t for t in self.tables.values() if t.role == "opt_out"]
        return registers[0] if registers else None

    @property
    def identity_tables(self) -> list[Table]:
        return [t for t in self.tables.values() if t.role == "identity"]

    def cohort_tables(self) -> dict[str, list[Column]]:
        """Clinical tables and the columns a cohort query may read, in catalog order."""
        selectable = {}
        for table in self.extractable_tables:
            columns = table.cohort_columns
            if columns:
                selectable[table.name] = columns
        return selectable


class _MappingWithDuplicates(dict):
    """A YAML mapping that remembers keys written twice (PyYAML silently keeps the last one)."""

    duplicates: list[tuple[Any, int]]


def _construct_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> _MappingWithDuplicates:
    loader.flatten_mapping(node)
    mapping = _MappingWithDuplicates()
    mapping.duplicates = []
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in mapping:
            mapping.duplicates.append((key, key_node.start_mark.line + 1))
        mapping[key] = loader.construct_object(value_node, deep=True)
    return mapping


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that records duplicate keys instead of dropping them silently."""


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def load_yaml_strict(text: str) -> Any:
    """Parse YAML safely, keeping track of duplicate keys (see `duplicate_keys`)."""
    return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass


def duplicate_keys(mapping: Any) -> list[tuple[Any, int]]:
    """Keys that appeared twice in a mapping parsed by `load_yaml_strict`, with their line."""
    return list(getattr(mapping, "duplicates", []))


def load_catalog(path: str | Path) -> Catalog:
    """Read and validate a catalog YAML file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise CatalogError(f"{path}: catalog file not found; pass the data dictionary YAML of your warehouse") from None
    try:
        document = load_yaml_strict(text)
    except yaml.YAMLError as error:
        raise CatalogError(f"{path}: not valid YAML: {error}") from None
    return parse_catalog(document, source=str(path))


def parse_catalog(document: Any, source: str = "<memory>") -> Catalog:
    """Validate a catalog already parsed from YAML (a mapping)."""
    if not isinstance(document, Mapping):
        raise CatalogError(f"{source}: a catalog is a mapping with 'warehouse' and 'tables'")
    unknown = set(document) - {"warehouse", "tables", "description"}
    if unknown:
        raise CatalogError(f"{source}: unknown top-level key(s) {sorted(unknown)}; allowed: warehouse, tables, description")
    warehouse = document.get("warehouse")
    if not isinstance(warehouse, str) or not warehouse.strip():
        raise CatalogError(f"{source}: 'warehouse' (the warehouse's name) is missing")
    raw_tables = document.get("tables")
    if not isinstance(raw_tables, Mapping) or not raw_tables:
        raise CatalogError(f"{source}: 'tables' is missing or empty; list the warehouse tables under it")
    for name, line in duplicate_keys(raw_tables):
        raise CatalogError(f"{source}: line {line}: table {name!r} is defined twice; keep one definition")
    tables = {name: _parse_table(source, name, spec) for name, spec in raw_tables.items()}
    catalog = Catalog(warehouse=warehouse, tables=tables, source=source, raw=document)
    _check_whole(catalog)
    return catalog


def _parse_table(source: str, name: Any, spec: Any) -> Table:
    where = f"{source}: table {name!r}"
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise CatalogError(f"{where}: a table name is lowercase letters, digits and underscores, starting with a letter")
    if not isinstance(spec, Mapping):
        raise CatalogError(f"{where}: expected a mapping with 'columns'")
    unknown = set(spec) - TABLE_KEYS
    if unknown:
        raise CatalogError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(TABLE_KEYS)}")
    role = spec.get("role", "clinical")
    if role not in TABLE_ROLES:
        raise CatalogError(f"{where}: unknown role {role!r}; use one of {', '.join(TABLE_ROLES)}")
    raw_columns = spec.get("columns")
    if not isinstance(raw_columns, Mapping) or not raw_columns:
        raise CatalogError(f"{where}: no columns; list each column with its type and class")
    for column_name, line in duplicate_keys(raw_columns):
        raise CatalogError(f"{where}: line {line}: column {column_name!r} is defined twice; keep one definition")
    columns: dict[str, Column] = {}
    for column_name, column_spec in raw_columns.items():
        column = _parse_column(source, name, column_name, column_spec)
        columns[column.name] = column
    return Table(name=name, role=role, columns=columns, description=str(spec.get("description", "")))


def _parse_column(source: str, table: str, name: Any, spec: Any) -> Column:
    where = f"{source}: table {table!r}, column {name!r}"
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise CatalogError(f"{where}: a column name is lowercase letters, digits and underscores, starting with a letter")
    if not isinstance(spec, Mapping):
        raise CatalogError(f"{where}: expected a mapping such as {{type: BIGINT, class: plain}}")
    unknown = set(spec) - COLUMN_KEYS
    if unknown:
        raise CatalogError(f"{where}: unknown key(s) {sorted(unknown)}; allowed: {sorted(COLUMN_KEYS)}")
    column_type = str(spec.get("type", "")).upper()
    if column_type not in COLUMN_TYPES:
        raise CatalogError(f"{where}: unknown or missing type {spec.get('type')!r}; use one of {', '.join(COLUMN_TYPES)}")
    column_class = spec.get("class")
    if column_class not in COLUMN_CLASSES:
        raise CatalogError(f"{where}: unknown or missing class {column_class!r}; use one of {', '.join(COLUMN_CLASSES)}")
    cohort = spec.get("cohort", False)
    if not isinstance(cohort, bool):
        raise CatalogError(f"{where}: 'cohort' must be true or false")
    if cohort and column_class in NEVER_COHORT:
        raise CatalogError(f"{where}: a {column_class} column can never be used to select a cohort; remove 'cohort: true'")
    generalise = spec.get("generalise")
    if generalise is not None:
        if column_class != "quasi_identifier":
            raise CatalogError(f"{where}: 'generalise' only applies to quasi_identifier columns")
        if not isinstance(generalise, str) or not GENERALISATIONS.match(generalise):
            raise CatalogError(f"{where}: unknown generalisation {generalise!r}; use year, prefix:N or topcode:N")
        if generalise == "year" and column_type not in ("DATE", "TIMESTAMP"):
            raise CatalogError(f"{where}: 'generalise: year' needs a DATE or TIMESTAMP column")
    elif column_class == "quasi_identifier":
        raise CatalogError(f"{where}: a quasi_identifier needs 'generalise' (year, prefix:N or topcode:N)")
    if column_class == "date" and column_type not in ("DATE", "TIMESTAMP"):
        raise CatalogError(f"{where}: a date column must have type DATE or TIMESTAMP, not {column_type}")
    if column_class == "record_key" and column_type not in INTEGER_TYPES:
        raise CatalogError(f"{where}: a record_key must be an integer column ({', '.join(INTEGER_TYPES)}), not "
                           f"{column_type}: extracts renumber it with a keyed permutation of integers; expose an "
                           "integer key in the warehouse (a view can number text keys)")
    references = spec.get("references")
    if references is not None and column_class != "record_key":
        raise CatalogError(f"{where}: 'references' only applies to record_key columns")
    return Column(
        table=table,
        name=name,
        type=column_type,
        column_class=column_class,
        cohort=cohort,
        generalise=generalise,
        references=references,
        description=str(spec.get("description", "")),
    )


def _check_whole(catalog: Catalog) -> None:
    source = catalog.source
    registers = [t.name for t in catalog.tables.values() if t.role == "opt_out"]
    if len(registers) > 1:
        raise CatalogError(f"{source}: more than one opt_out table ({', '.join(registers)}); keep a single register")
    for table in catalog.tables.values():
        keys = [c.name for c in table.columns.values() if c.column_class == "person_key"]
        if len(keys) > 1:
            raise CatalogError(f"{source}: table {table.name!r} has several person_key columns ({', '.join(keys)}); keep one")
        if table.role == "opt_out" and not keys:
            raise CatalogError(f"{source}: table {table.name!r}: the opt_out register needs its person_key column")
        for column in table.columns.values():
            if column.references is None:
                continue
            target_table, _, target_column = column.references.partition(".")
            target = catalog.tables.get(target_table)
            if target is None or target_column not in target.columns:
                raise CatalogError(
                    f"{source}: table {table.name!r}, column {column.name!r}: references {column.references!r}, "
                    "which is not a column of the catalog"
                )
            if target.columns[target_column].column_class != "record_key":
                raise CatalogError(
                    f"{source}: table {table.name!r}, column {column.name!r}: references {column.references!r}, "
                    "which is not a record_key"
                )
