"""The study request document, identical in the CLI, the REST API and the panel.

`examples/study-request.yaml` (in the shared design folder) shows its fields. The requester is
not a field: it is whoever submits the document. An approval is bound to `request_hash`, the
sha256 of the document's canonical JSON form, so any edit after an approval voids it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from .catalog import Catalog, load_yaml_strict, duplicate_keys

SLUG_PATTERN = re.compile(r"^[a-z](?:[a-z0-9]|-(?=[a-z0-9])){0,29}$")
MEMBER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,99}$")
MEMORY_PATTERN = re.compile(r"^([1-9][0-9]*)([KMGT]i?)?$")
MEMORY_UNITS = {None: 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


class RequestError(ValueError):
    """A study request document is invalid. `problems` lists (field, message) pairs."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{field}: {message}" for field, message in problems))


def check_slug(slug: str) -> str:
    """Return `slug` if it is a valid study id (and JupyterHub server name), else raise ValueError."""
    if not isinstance(slug, str) or not SLUG_PATTERN.match(slug):
        raise ValueError(
            f"{slug!r} is not a valid study slug: use 1-30 characters, a lowercase letter first, "
            "then lowercase letters, digits and single dashes (not at the end), e.g. 't2d-statins'"
        )
    return slug


def memory_bytes(text: str) -> int:
    """Parse a memory size such as '4G' or '512Mi' into bytes."""
    match = MEMORY_PATTERN.match(text)
    if not match:
        raise ValueError(f"memory {text!r} is not a size such as 512M, 4G or 8Gi")
    return int(match.group(1)) * MEMORY_UNITS[match.group(2)]


class Resources(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    cpu: float = Field(default=1.0, gt=0, le=64, description="CPU cores a bubble may use")
    memory: str = Field(default="2G", description="memory limit of a bubble, e.g. 4G")

    @field_validator("memory", mode="before")
    @classmethod
    def _memory_is_a_size(cls, value: Any) -> str:
        value = str(value)
        size = memory_bytes(value)
        if not 256 * 2**20 <= size <= 512 * 2**30:
            raise ValueError(f"memory {value} must be between 256Mi and 512Gi")
        return value

    @property
    def memory_bytes(self) -> int:
        return memory_bytes(self.memory)


class StudyRequest(BaseModel):
    """What a researcher asks for. Field names are the contract between CLI, API and panel."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    title: str = Field(min_length=3, max_length=200)
    slug: str
    purpose: str = Field(min_length=10, max_length=10_000)
    legal_basis: str = Field(min_length=3, max_length=2_000)
    members: tuple[str, ...] = Field(min_length=1, max_length=100)
    starts: dt.date
    ends: dt.date
    data: dict[str, tuple[str, ...]] = Field(min_length=1)
    cohort: str = Field(min_length=1, max_length=20_000)
    resources: Resources = Field(default_factory=Resources)

    @field_validator("slug")
    @classmethod
    def _valid_slug(cls, value: str) -> str:
        return check_slug(value)

    @field_validator("members")
    @classmethod
    def _valid_members(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if not MEMBER_PATTERN.match(name):
                raise ValueError(f"{name!r} is not a valid user name")
        if len(set(value)) != len(value):
            raise ValueError("a member is listed twice")
        return value

    @field_validator("data")
    @classmethod
    def _valid_data(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        for table, columns in value.items():
            if not columns:
                raise ValueError(f"table {table!r} lists no columns")
            if len(set(columns)) != len(columns):
                raise ValueError(f"table {table!r} lists a column twice")
        return value

    @field_validator("ends")
    @classmethod
    def _ends_after_starts(cls, value: dt.date, info: ValidationInfo) -> dt.date:
        starts = info.data.get("starts")
        if starts is not None and value <= starts:
            raise ValueError(f"ends ({value}) must be after starts ({starts})")
        return value

    def canonical_json(self) -> str:
        return canonical_json(self.model_dump(mode="json"))

    @property
    def request_hash(self) -> str:
        return hashlib.sha256(self.canonical_json().encode("utf-8")).hexdigest()

    @property
    def columns(self) -> list[str]:
        """Requested columns as `table.column`, in request order."""
        return [f"{table}.{column}" for table, columns in self.data.items() for column in columns]


def canonical_json(value: Any) -> str:
    """The one JSON form that hashes and signatures are computed over."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def parse_request(document: Any) -> StudyRequest:
    """Validate a request document (a mapping); raise RequestError naming each bad field."""
    if not isinstance(document, dict):
        raise RequestError([("(document)", "a study request is a mapping of fields; see examples/study-request.yaml")])
    for key, line in duplicate_keys(document):
        raise RequestError([(str(key), f"written twice (line {line}); keep one")])
    try:
        return StudyRequest.model_validate(document)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            field = ".".join(str(part) for part in item["loc"]) or "(document)"
            message = item["msg"].removeprefix("Value error, ")
            if item["type"] == "extra_forbidden":
                message = "unknown field; see examples/study-request.yaml for the fields"
            problems.append((field, message))
        raise RequestError(problems) from None


def load_request_yaml(text: str) -> dict[str, Any]:
    """Parse request YAML text into a document (not yet validated)."""
    try:
        document = load_yaml_strict(text)
    except Exception as error:  # yaml.YAMLError and its kin
        raise RequestError([("(document)", f"not valid YAML: {error}")]) from None
    if not isinstance(document, dict):
        raise RequestError([("(document)", "a study request is a YAML mapping of fields")])
    return document


def catalog_problems(request: StudyRequest, catalog: Catalog) -> list[tuple[str, str]]:
    """What in the request the catalog refuses: unknown tables or columns, identity data."""
    problems: list[tuple[str, str]] = []
    for table_name, columns in request.data.items():
        table = catalog.tables.get(table_name)
        if table is None:
            problems.append((f"data.{table_name}", f"table {table_name!r} is not in the catalog"))
            continue
        if table.role == "identity":
            problems.append((f"data.{table_name}", f"table {table_name!r} holds direct identifiers and never leaves the warehouse"))
            continue
        if table.role == "opt_out":
            problems.append((f"data.{table_name}", f"table {table_name!r} is the opt-out register; it is applied, never extracted"))
            continue
        for column_name in columns:
            column = table.columns.get(column_name)
            where = f"data.{table_name}.{column_name}"
            if column is None:
                problems.append((where, f"column {table_name}.{column_name} is not in the catalog"))
            elif column.column_class == "direct_identifier":
                problems.append((where, f"column {table_name}.{column_name} is a direct identifier and never leaves the warehouse"))
    return problems


def free_text_columns(request: StudyRequest, catalog: Catalog) -> list[str]:
    """Requested free-text columns (`table.column`): they leave only if the approval names them."""
    found = []
    for table_name, columns in request.data.items():
        table = catalog.tables.get(table_name)
        for column_name in columns:
            column = table.columns.get(column_name) if table else None
            if column is not None and column.column_class == "free_text":
                found.append(column.qualified_name)
    return found
