"""Site settings of the extract subsystem (traitlets, set in the same config file as the rest).

    c.ExtractSettings.date_shift_days = 365
    c.ExtractSettings.cohort_timeout_seconds = 120
"""

from __future__ import annotations

import re
from pathlib import Path

from traitlets import Float, Integer, TraitError, Unicode, validate
from traitlets.config import Configurable

DUCKDB_MEMORY = re.compile(r"^[1-9][0-9]*(\.[0-9]+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$")


class ExtractSettings(Configurable):
    """How extracts are built and how cohort queries are confined."""

    date_shift_days = Integer(180, help="Each person's dates move by one random number of days in "
                                        "[-N, +N] (never 0), the same for all of that person's dates.").tag(config=True)
    k_anonymity = Integer(10, help="k of the risk report (records in equivalence classes under k are "
                                   "counted) and the threshold under which cohort counts show as '< k'.").tag(config=True)
    rarest_codes = Integer(10, help="How many of the rarest approved codes the risk report lists.").tag(config=True)
    cohort_timeout_seconds = Float(60.0, help="Wall-clock limit of a cohort query; the child process "
                                              "running it is killed when it runs over.").tag(config=True)
    cohort_memory_limit = Unicode("1GB", help="DuckDB memory_limit of the cohort query process "
                                              "(no spilling to disk).").tag(config=True)
    cohort_threads = Integer(1, help="DuckDB threads of the cohort query process.").tag(config=True)
    build_memory_limit = Unicode("2GB", help="DuckDB memory_limit while building an extract (spills to a "
                                             "private temporary folder, removed afterwards).").tag(config=True)
    build_threads = Integer(0, help="DuckDB threads while building an extract; 0 uses every core.").tag(config=True)
    cohort_database_folder = Unicode(help="Where the cohort database derived from the warehouse is kept "
                                          "(default HOME/warehouse/cohort).").tag(config=True)

    @validate("date_shift_days")
    def _shift_range(self, proposal):  # noqa: ANN001 - traitlets signature
        if not 1 <= proposal["value"] <= 3650:
            raise TraitError("date_shift_days must be between 1 and 3650")
        return proposal["value"]

    @validate("k_anonymity", "rarest_codes")
    def _positive(self, proposal):  # noqa: ANN001
        if proposal["value"] < 1:
            raise TraitError(f"{proposal['trait'].name} must be at least 1")
        return proposal["value"]

    @validate("cohort_timeout_seconds")
    def _timeout(self, proposal):  # noqa: ANN001
        if not 0 < proposal["value"] <= 86400:
            raise TraitError("cohort_timeout_seconds must be above 0 and at most one day")
        return proposal["value"]

    @validate("cohort_threads", "build_threads")
    def _threads(self, proposal):  # noqa: ANN001
        minimum = 1 if proposal["trait"].name == "cohort_threads" else 0
        if not minimum <= proposal["value"] <= 256:
            raise TraitError(f"{proposal['trait'].name} must be between {minimum} and 256")
        return proposal["value"]

    @validate("cohort_memory_limit", "build_memory_limit")
    def _memory(self, proposal):  # noqa: ANN001
        if not DUCKDB_MEMORY.match(proposal["value"]):
            raise TraitError(f"{proposal['trait'].name} {proposal['value']!r} is not a DuckDB size such as 512MB or 2GB")
        return proposal["value"]


def extract_settings(context) -> ExtractSettings:  # noqa: ANN001 - an operations.Context
    """The extract settings from the same traitlets config as the context's settings."""
    cached = context.extras.get("extract_settings")
    if cached is None:
        cached = ExtractSettings(config=context.settings.config)
        context.extras["extract_settings"] = cached
    return cached


def cohort_database_folder(context, settings: ExtractSettings) -> Path:  # noqa: ANN001
    return Path(settings.cohort_database_folder) if settings.cohort_database_folder else context.home / "warehouse" / "cohort"
