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
