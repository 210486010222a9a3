"""Site settings of the airlock (traitlets, in the same config file as the rest).

    c.AirlockSettings.small_cell_threshold = 10
    c.AirlockSettings.required_reviews = 2

Built from the same traitlets Config as `bubble_manager.config.BubbleManager`:
`AirlockSettings(config=settings.config)`.
"""

from __future__ import annotations

from traitlets import Enum, Integer, List, TraitError, Unicode, validate
from traitlets.config import Configurable

MIB = 1 << 20


class AirlockSettings(Configurable):
    """Limits, thresholds and review rules of output and import requests."""

    small_cell_threshold = Integer(10, help="Counts below this (and above zero) are small cells: flagged in "
                                            "tables ACRO marks as counts and in columns declared as counts."
                                   ).tag(config=True)
    required_reviews = Integer(1, help="Distinct stewards who must approve a file before it is released "
                                       "(1-3); none of them may be the study's requester or a member. One "
                                       "rejection rejects the file.").tag(config=True)
    max_file_bytes = Integer(50 * MIB, help="Largest single file of an output request.").tag(config=True)
    max_request_bytes = Integer(200 * MIB, help="Largest total size of one output request.").tag(config=True)
    max_request_files = Integer(200, help="Most files (and folders) in one output request.").tag(config=True)
    max_manifest_bytes = Integer(64 * 1024, help="Largest request.json the hub reads from an outbox folder."
                                 ).tag(config=True)
    max_outbox_requests = Integer(50, help="Most outbox folders listed for one member.").tag(config=True)
    free_text_min_characters = Integer(40, help="A text cell at least this long with at least "
                                                "free_text_min_words words is flagged as free text.").tag(config=True)
    free_text_min_words = Integer(6, help="See free_text_min_characters.").tag(config=True)
    max_cells_checked = Integer(2_000_000, help="Tables with more cells than this are sent to manual review "
                                                "instead of being checked cell by cell.").tag(config=True)
    parser_sandbox = Enum(["bwrap", "rlimits"], "bwrap",
                          help="How hostile files are parsed: 'bwrap' runs the parser as an unprivileged uid "
                               "in a bubblewrap sandbox with no network and no host files; 'rlimits' (for "
                               "hosts without bubblewrap, e.g. a hub pod) runs it as a child with resource "
                               "limits, as nobody when the hub is root, in a new network namespace when it can."
                          ).tag(config=True)
    parser_uid = Integer(65534, help="Unprivileged uid (and gid) the parser runs as when the hub is root."
                         ).tag(config=True)
    parser_timeout_seconds = Integer(60, help="Wall-clock (and CPU) seconds the parser may take for one request."
                                     ).tag(config=True)
    parser_memory_bytes = Integer(2048 * MIB, help="Address-space limit of the parser process.").tag(config=True)
    max_report_bytes = Integer(4 * MIB, help="Largest report the parser may return.").tag(config=True)
    import_max_bytes = Integer(20 * MIB, help="Largest file a researcher may upload as an import.").tag(config=True)
    import_extensions = List(Unicode(), [".py", ".r", ".sql", ".txt", ".md", ".csv", ".tsv", ".json", ".yaml",
                                         ".yml", ".ipynb", ".parquet", ".xlsx"],
                             help="File name extensions accepted for imports (lowercase, with the dot).").tag(config=True)

    @validate("required_reviews")
    def _reviews_in_range(self, proposal):  # noqa: ANN001 - traitlets signature
        value = int(proposal["value"])
        if not 1 <= value <= 3:
            raise TraitError(f"required_reviews must be between 1 and 3, not {value}")
        return value

    @validate("small_cell_threshold")
    def _threshold_positive(self, proposal):  # noqa: ANN001
        value = int(proposal["value"])
        if value < 1:
            raise TraitError(f"small_cell_threshold must be at least 1, not {value}")
        return value

    def check_options(self) -> dict:
        """What the parser child needs to know (sent to it as JSON)."""
        return {"threshold": self.small_cell_threshold, "free_text_characters": self.free_text_min_characters,
                "free_text_words": self.free_text_min_words, "max_cells": self.max_cells_checked}
