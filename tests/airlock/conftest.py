"""Airlock fixtures: real ACRO outputs made in the bubble environment, files of every kind."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bubble_manager.extract.pseudonyms import new_pseudonyms

BUBBLE_PYTHON = Path(os.environ.get("BUBBLE_ENV", "/opt/bubble-manager/bubble-env")) / "bin" / "python"
ACRO_SESSION = Path(__file__).with_name("acro_session.py")


@pytest.fixture(scope="session")
def acro_outputs(tmp_path_factory) -> Path:
    """A folder written by `acro.finalise(..., "json")`: three tables, a histogram, ACRO's results.json;
    beside it `figure.png`, a plain matplotlib figure."""
    if not BUBBLE_PYTHON.exists():
        pytest.skip(f"the bubble environment ({BUBBLE_PYTHON}) is missing: `make bubble-env` (mk/runtime.mk) "
                    "builds it with acro")
    scratch = tmp_path_factory.mktemp("acro")
    folder = scratch / "acro_outputs"
    completed = subprocess.run([str(BUBBLE_PYTHON), str(ACRO_SESSION), str(folder), str(scratch / "figure.png")],
                               cwd=scratch, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    shutil.rmtree(folder / "checksums")
    return folder


@pytest.fixture(scope="session")
def pseudonym() -> str:
    return new_pseudonyms(1)[0]


# --- a real hub running the service (tests/service/servicehub.py), with the airlock configured -----

from tests.service.conftest import api, hub, smtp_sink, store_context  # noqa: E402,F401 - fixtures, reused


@pytest.fixture(scope="session")
def service_home(tmp_path_factory, smtp_sink) -> Path:
    """The service's home for airlock tests: two reviews per file (so the rule is exercised end to end),
    e-mails to a real SMTP sink."""
    from bubble_manager.config import load_settings
    from bubble_manager.operations import Context
    from bubble_manager.signing import init_signing_key

    from tests.conftest import DEMO_CATALOG

    home = tmp_path_factory.mktemp("airlock-service-home")
    (home / "warehouse").mkdir()
    shutil.copy(DEMO_CATALOG, home / "warehouse" / "warehouse.catalog.yaml")
    (home / "bubble_manager_config.py").write_text(
        "c.AirlockSettings.required_reviews = 2\n"
        f"c.ServiceSettings.smtp_host = '127.0.0.1'\nc.ServiceSettings.smtp_port = {smtp_sink.port}\n"
        "c.ServiceSettings.email_domain = 'chu.example'\n")
    init_signing_key(home)
    Context.open(load_settings(home)).close()
    return home


@pytest.fixture(scope="session")
def tokens(hub) -> dict[str, str]:
    return {user: hub.token_for(user) for user in ("carol", "alice", "bob", "mallory", "sam", "tom", "adam", "nobody")}
