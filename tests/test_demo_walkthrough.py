"""`make demo-cli`: the CLI walkthrough runs to the end and shows the study it walked through."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "demo-walkthrough.sh"


@pytest.mark.slow
def test_walkthrough_takes_a_study_to_active_and_the_chain_verifies(tmp_path):
    home = tmp_path / "demo"
    env = {**os.environ, "BUBBLE_MANAGER_HOME": str(home), "DEMO_PERSONS": "400"}
    result = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    out = result.stdout
    for command in ("keys custodians add claire", "studies approve t2d-statins --actor carol   # expected to be refused",
                    "studies activate t2d-statins", "studies show t2d-statins", "audit verify"):
        assert f"$ bubble-manager {command}" in out, command
    shown = out.split("$ bubble-manager studies show t2d-statins", 1)[1]
    assert "state      active" in shown and "members    alice, bob" in shown
    assert "audit chain intact" in out
    assert (home / "studies" / "t2d-statins").is_dir()


def test_walkthrough_refuses_a_home_that_is_not_a_demo_folder(tmp_path):
    home = tmp_path / "precious"
    home.mkdir()
    (home / "bubble-manager.sqlite").write_text("not the demo's")
    env = {**os.environ, "BUBBLE_MANAGER_HOME": str(home)}
    result = subprocess.run(["bash", str(SCRIPT)], cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "is not a demo folder" in result.stderr
    assert (home / "bubble-manager.sqlite").read_text() == "not the demo's"
