"""Archive settings: custodian quorum, snapshot limits, compression.

Built from the same traitlets Config as `bubble_manager.config.BubbleManager`:
`ArchiveSettings(config=settings.config)`, set in the config file as `c.ArchiveSettings.x = ...`.
"""

from __future__ import annotations

from traitlets import Bool, Integer, Unicode
from traitlets.config import Configurable

MAX_CUSTODIANS = 16  # SLIP-39 allows at most 16 groups; each custodian holds one.


class ArchiveSettings(Configurable):
    custodian_threshold = Integer(2, help="k: how many custodians must decrypt their share to rebuild a study's "
                                          "archive key (at least 2 unless allow_weak_quorum).").tag(config=True)
    custodian_count = Integer(0, help="n: how many registered custodians receive a share of each new study's "
                                      "archive key (the first n by name); 0 means every registered custodian."
                              ).tag(config=True)
    allow_weak_quorum = Bool(False, help="Allow a threshold of 1 (any single custodian can open an archive). "
                                         "For tests and demos only.").tag(config=True)
    max_file_bytes = Integer(20 * 1024**3, help="Largest single workspace file put in an archive; bigger files "
                                                "are left out with a warning in the archive's report."
                             ).tag(config=True)
    max_total_bytes = Integer(200 * 1024**3, help="Most workspace bytes one archive may hold; files past the cap "
                                                  "are left out with a warning.").tag(config=True)
    max_members = Integer(1_000_000, help="Most files, folders and links one archive may hold.").tag(config=True)
    zstd_level = Integer(3, help="zstd compression level of archives (1-19).").tag(config=True)
    zstd_threads = Integer(2, help="zstd worker threads (jobs of 1 MiB each); 0 compresses on the snapshot's "
                                   "own thread.").tag(config=True)
    bubble_python = Unicode("", help="Python of the bubble environment, whose `pip list` describes the "
                                     "environment inside archives (default: home/bubble-env/bin/python if "
                                     "present, else the hub's own Python).").tag(config=True)
