"""Site configuration: one traitlets Configurable, set from a Python config file.

Like JupyterHub and KubeSpawner, every setting is a trait with `help=`. The CLI reads
`$BUBBLE_MANAGER_HOME` (default `./var`) and `--config FILE` at its edge; nothing deeper in the
code reads the environment.
"""

from __future__ import annotations

from pathlib import Path

from traitlets import Enum, Float, Integer, Unicode, default
from traitlets.config import Config, Configurable, PyFileConfigLoader

from .studies import Policy


class BubbleManager(Configurable):
    home = Unicode("var", help="Folder holding the store, keys, audit checkpoints, warehouse, studies "
                               "and archives (`$BUBBLE_MANAGER_HOME`).").tag(config=True)
    db_url = Unicode(help="SQLAlchemy URL of the store: sqlite:///PATH (default, under home) or "
                          "postgresql+psycopg://user@host/db.").tag(config=True)
    catalog_path = Unicode(help="Data dictionary YAML of the warehouse (default: beside the warehouse, "
                                "<warehouse stem>.catalog.yaml, as `bubble-manager demo-warehouse` writes it)."
                           ).tag(config=True)
    warehouse_path = Unicode(help="The warehouse DuckDB file (default home/warehouse/warehouse.duckdb)."
                             ).tag(config=True)
    required_approvals = Integer(1, help="Distinct stewards who must approve a request or amendment (1-5)."
                                 ).tag(config=True)
    max_study_days = Integer(1095, help="Longest study period allowed, in days, start and end included."
                             ).tag(config=True)
    retention_days = Integer(3650, help="Days archives are kept after a study ends, before they are purged "
                                        "(a steward may override it per study).").tag(config=True)
    max_retention_days = Integer(7305, help="Longest retention a steward may set, in days (20 years)."
                                 ).tag(config=True)
    audit_sink = Enum(["file", "syslog"], "file", help="Where signed audit checkpoints go: an append-only "
                                                       "file (put it on another volume) or syslog.").tag(config=True)
    audit_checkpoint_path = Unicode(help="Checkpoint file for the 'file' sink (default home/audit/checkpoints.jsonl)."
                                    ).tag(config=True)
    audit_checkpoint_interval = Float(0.0, help="At most this many seconds between a committed batch of audit "
                                                "entries and its checkpoint (batches within it share one); 0 "
                                                "checkpoints after every batch.").tag(config=True)

    @default("db_url")
    def _default_db_url(self) -> str:
        return f"sqlite:///{Path(self.home).resolve() / 'bubble-manager.sqlite'}"

    @default("catalog_path")
    def _default_catalog_path(self) -> str:
        warehouse = Path(self.warehouse_path)
        return str(warehouse.with_name(f"{warehouse.stem}.catalog.yaml"))

    @default("warehouse_path")
    def _default_warehouse_path(self) -> str:
        return str(Path(self.home) / "warehouse" / "warehouse.duckdb")

    @default("audit_checkpoint_path")
    def _default_checkpoint_path(self) -> str:
        return str(Path(self.home) / "audit" / "checkpoints.jsonl")

    @property
    def home_path(self) -> Path:
        return Path(self.home)

    def policy(self) -> Policy:
        return Policy(required_approvals=self.required_approvals, max_study_days=self.max_study_days,
                      retention_days=self.retention_days, max_retention_days=self.max_retention_days)


def load_settings(home: str | Path, config_file: str | Path | None = None, **overrides: object) -> BubbleManager:
    """Settings from an optional config file (`c.BubbleManager.x = ...`), then explicit overrides."""
    config = Config()
    path = Path(config_file) if config_file else Path(home) / "bubble_manager_config.py"
    if config_file and not path.exists():
        raise FileNotFoundError(f"config file {path} not found")
    if path.exists():
        config.merge(PyFileConfigLoader(path.name, str(path.parent)).load_config())
    config.BubbleManager.home = str(home)
    for name, value in overrides.items():
        if value is not None:
            setattr(config.BubbleManager, name, value)
    return BubbleManager(config=config)
