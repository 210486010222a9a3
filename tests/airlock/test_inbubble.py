"""The bubble's side: the outbox command and notebook helper, and JupyterLab with downloads off."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from bubble_manager.airlock import quarantine
from bubble_manager.airlock.operations import AirlockOperations
from bubble_manager.inbubble.airlock import OutboxError, list_requests, main, request_output
from bubble_manager.runtime.spec import StudyPaths

from .conftest import BUBBLE_PYTHON
from .flows import ALICE, active_study


def test_an_acro_folder_becomes_an_outbox_request_without_do_not_release_summaries(acro_outputs, tmp_path):
    folder = request_output(acro=acro_outputs, justification="Table 2", name="table2", outbox=tmp_path)
    names = sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())
    assert names == ["acro/config.json", "acro/histogram_0.png", "acro/output_0_0.csv", "acro/output_1_0.csv",
                     "acro/output_2_0.csv", "acro/results.json", "request.json"]
    manifest = json.loads((folder / "request.json").read_text())
    assert manifest["format"] == quarantine.MANIFEST_FORMAT and manifest["acro"] is True
    assert stat_mode(folder) == 0o700
    assert [r["name"] for r in list_requests(tmp_path)] == ["table2"]


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


def test_what_the_command_refuses(acro_outputs, tmp_path, capsys):
    (tmp_path / "t.csv").write_text("a,n\nx,40\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "t.csv")
    with pytest.raises(OutboxError, match="symbolic link"):
        request_output(tmp_path / "link.csv", justification="x", outbox=tmp_path / "outbox")
    with pytest.raises(OutboxError, match="justification"):
        request_output(tmp_path / "t.csv", justification=" ", outbox=tmp_path / "outbox")
    with pytest.raises(OutboxError, match="not among the requested files"):
        request_output(tmp_path / "t.csv", justification="x", counts={"other.csv": ["n"]}, outbox=tmp_path / "outbox")
    with pytest.raises(OutboxError, match="no results.json"):
        request_output(acro=tmp_path, justification="x", outbox=tmp_path / "outbox")
    request_output(tmp_path / "t.csv", justification="x", name="once", outbox=tmp_path / "outbox")
    with pytest.raises(OutboxError, match="already exists"):
        request_output(tmp_path / "t.csv", justification="x", name="once", outbox=tmp_path / "outbox")
    assert sorted(p.name for p in (tmp_path / "outbox").iterdir()) == ["once"]  # no half-written folder
    assert main(["submit", str(tmp_path / "t.csv"), "--justification", "x", "--counts", "t.csv"]) == 2
    assert "FILE:COLUMN" in capsys.readouterr().err


def test_from_the_bubble_command_to_the_hub_quarantine(sqlite_context, acro_outputs, pseudonym, tmp_path):
    active_study(sqlite_context, "alpha")
    workspace = StudyPaths(sqlite_context.home, "alpha").workspace("alice")
    (tmp_path / "by_region.csv").write_text("region,patients\nnorth,120\nsouth,4\nwest,33\n")
    (tmp_path / "notes.txt").write_text(f"see {pseudonym}\n")
    request_output(tmp_path / "by_region.csv", tmp_path / "notes.txt", acro=acro_outputs, name="paper",
                   justification="Tables for the paper", counts={"by_region.csv": ["patients"]},
                   outbox=workspace / "outbox")
    document = AirlockOperations(sqlite_context).submit_output(ALICE, "alpha", "paper")
    verdicts = {f["path"]: (f["verdict"], sorted(x["check"] for x in f["report"]["flags"])) for f in document["files"]}
    assert verdicts["by_region.csv"] == ("flagged", ["small-cell"])
    assert verdicts["notes.txt"] == ("flagged", ["pseudonym"])
    assert verdicts["acro/output_0_0.csv"] == ("flagged", ["acro-threshold", "small-cell"])
    assert verdicts["acro/output_1_0.csv"] == ("pass", [])
    assert document["justification"] == "Tables for the paper"


# --- JupyterLab's server with the in-bubble extensions (the bubble environment, outside a sandbox) ---

def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class LabServer:
    def __init__(self, root: Path, *extra: str):
        self.root, self.port, self.token = root, free_port(), os.urandom(12).hex()
        (root / "home").mkdir(exist_ok=True)
        env = {"PATH": f"{BUBBLE_PYTHON.parent}:/usr/bin:/bin", "HOME": str(root / "home"), "LANG": "C.UTF-8",
               "BUBBLE_STUDY": "alpha", "JUPYTER_RUNTIME_DIR": str(root / "runtime")}
        self.process = subprocess.Popen(
            [str(BUBBLE_PYTHON), "-m", "jupyter_server", "--allow-root", "--no-browser", f"--port={self.port}",
             "--ip=127.0.0.1", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={root}", *extra],
            env=env, stdout=subprocess.DEVNULL, stderr=open(root / "server.log", "wb"), start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.call("GET", "/api/status")[0] == 200:
                return
            time.sleep(0.2)
        raise AssertionError((root / "server.log").read_text()[-3000:])

    def call(self, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
        request = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=body, method=method,
                                         headers={"Authorization": f"token {self.token}"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, error.read()
        except (urllib.error.URLError, ConnectionError):
            return 0, b""

    def stop(self) -> None:
        os.killpg(self.process.pid, 15)
        self.process.wait(timeout=30)


@pytest.fixture
def lab_root(tmp_path):
    if not BUBBLE_PYTHON.exists():
        pytest.skip(f"the bubble environment ({BUBBLE_PYTHON}) is missing: `make bubble-env` (mk/runtime.mk) builds it")
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "result.csv").write_text("group,n\na,3\n")
    notebook = {"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}
    (tmp_path / "work" / "analysis.ipynb").write_text(json.dumps(notebook))
    return tmp_path


DOWNLOADS = ["/files/work/result.csv", "/files/work/result.csv?download=1", "/view/work/result.csv",
             "/nbconvert/html/work/analysis.ipynb?download=true", "/nbconvert/script/work/analysis.ipynb"]


def test_downloads_answer_403_while_opening_and_saving_work(lab_root):
    server = LabServer(lab_root)
    try:
        for path in DOWNLOADS:
            status, body = server.call("GET", path)
            assert status == 403 and b"airlock" in body, path
        status, body = server.call("GET", "/api/contents/work/result.csv?content=1")
        assert status == 200 and json.loads(body)["content"] == "group,n\na,3\n"
        notebook = json.loads(server.call("GET", "/api/contents/work/analysis.ipynb?content=1")[1])
        notebook["content"]["cells"] = [{"cell_type": "markdown", "metadata": {}, "source": "saved from the lab"}]
        status, _ = server.call("PUT", "/api/contents/work/analysis.ipynb", json.dumps(
            {"type": "notebook", "format": "json", "content": notebook["content"]}).encode())
        assert status == 200
        assert "saved from the lab" in (lab_root / "work" / "analysis.ipynb").read_text()
    finally:
        server.stop()
    assert "download refused: GET /files/work/result.csv" in (lab_root / "server.log").read_text()


def test_positive_control_without_the_extension_the_file_downloads(lab_root):
    server = LabServer(lab_root, "--ServerApp.jpserver_extensions=bubble_manager.inbubble.nodownload=False")
    try:
        assert server.call("GET", "/files/work/result.csv") == (200, b"group,n\na,3\n")
    finally:
        server.stop()
