"""In a real browser (Playwright driving Debian's Chromium) against a real hub with bwrap bubbles and
the panel: JupyterLab offers no download and its `/files/` and export URLs answer 403, while opening
and saving notebooks works; then an output made with ACRO in the bubble leaves through the airlock:
the member confirms the outbox in the panel, a steward reviews it, the member downloads it once.
Screenshots of each step go under test-artifacts/airlock/.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from bubble_manager.runtime.spec import StudyPaths
from tests.browser import ARTIFACTS as BROWSER_ARTIFACTS, browser_missing_reason
from tests.service.test_panel_browser import Person, start_with_panel

ARTIFACTS = BROWSER_ARTIFACTS / "airlock"
pytestmark = [pytest.mark.browser, pytest.mark.bwrap, pytest.mark.slow]


@pytest.fixture(scope="module")
def bubble_hub():
    from tests.hubfixture import HubFixture, hub_for_module, hub_missing_reason

    yield from hub_for_module(browser_missing_reason() or hub_missing_reason(),
                              lambda: HubFixture.create(with_service=True), start_with_panel)


def shot(person: Person, step: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    person.page.screenshot(path=str(ARTIFACTS / f"{step}.png"), full_page=True)


@pytest.fixture(scope="module")
def alice_in_lab(bubble_hub, chromium):
    """alice signed in, her bubble of study alpha started, JupyterLab open; a table and a notebook in work/."""
    from tests.hubfixture import ALICE

    alice = Person(chromium, bubble_hub, ALICE, bubble_hub.password)
    alice.page.goto(f"{bubble_hub.url}/hub/spawn/{ALICE}/alpha")
    alice.page.wait_for_url(re.compile(r".*/user/.+/alpha/lab.*"), timeout=180_000)
    alice.page.wait_for_selector(".jp-LauncherCard", timeout=120_000)
    workspace = StudyPaths(bubble_hub.home, "alpha").workspace(ALICE)
    owner = workspace.stat()
    notebook = {"cells": [{"cell_type": "markdown", "metadata": {}, "source": "first"}], "metadata": {},
                "nbformat": 4, "nbformat_minor": 5}
    for name, content in (("result.csv", "group,n\na,3\n"), ("analysis.ipynb", json.dumps(notebook))):
        (workspace / name).write_text(content)
        os.chown(workspace / name, owner.st_uid, owner.st_gid)
    lab = re.match(r"(.*/user/[^/]+/alpha/)", alice.page.url).group(1)
    return alice, lab, workspace


def browser_fetch(page, url: str) -> tuple[int, str]:
    """A request the page itself makes (its cookies, its origin), as a script in the lab could."""
    return tuple(page.evaluate("async (url) => { const r = await fetch(url, {credentials: 'same-origin'}); "
                               "return [r.status, await r.text()]; }", url))


def close_dialogs(page) -> None:
    """Dismiss what the restored workspace may ask (a kernel for the reopened notebook)."""
    for _ in range(5):
        dialog = page.locator(".jp-Dialog")
        if not dialog.count():
            return
        shot_page(page, "dialog")
        page.keyboard.press("Escape")
        page.wait_for_timeout(500)


def shot_page(page, step: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{step}.png"), full_page=True)


def menu_items(page, menu: str) -> list[str]:
    page.click(f'.lm-MenuBar-itemLabel:text-is("{menu}")')
    page.wait_for_selector(".lm-Menu-content")
    items = page.locator(".lm-Menu-content > .lm-Menu-item:not(.lm-mod-hidden) .lm-Menu-itemLabel").all_inner_texts()
    page.keyboard.press("Escape")
    return items


def test_jupyterlab_downloads_fail_while_notebooks_open_and_save(alice_in_lab):
    alice, lab, workspace = alice_in_lab
    page = alice.page
    file_menu = menu_items(page, "File")
    assert "Save All" in file_menu, f"the File menu was not read: {file_menu}"  # control
    assert not [item for item in file_menu if "Download" in item or "Export" in item], file_menu
    shot(alice, "01-lab-file-menu")

    # the browser's own requests to the bubble: every download route answers 403
    for path in ("files/work/result.csv", "files/work/result.csv?download=1", "view/work/result.csv",
                 "nbconvert/html/work/analysis.ipynb?download=true"):
        status, text = browser_fetch(page, lab + path)
        assert status == 403 and "airlock" in text, (path, status)
    page.goto(lab + "files/work/result.csv")
    assert "Downloads are disabled" in page.content()
    shot(alice, "02-files-refused")
    logs = list((alice.hub.runtime_dir / "bubbles").glob("*/bubble.log"))  # the launchers' root-only logs
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not any("download refused: GET" in p.read_text() for p in logs):
        time.sleep(0.5)
    assert any("download refused: GET" in p.read_text() and p.stat().st_mode & 0o077 == 0 for p in logs)

    # opening and saving a notebook works (through the contents API)
    page.goto(lab + "lab/tree/work/analysis.ipynb")
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    page.wait_for_timeout(2000)
    close_dialogs(page)
    page.click(".jp-Notebook .jp-Cell")
    page.keyboard.press("Enter")
    page.keyboard.press("Control+a")
    page.keyboard.type("edited in the browser")
    page.keyboard.press("Escape")
    page.keyboard.press("Control+s")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and "edited in the browser" not in (workspace / "analysis.ipynb").read_text():
        time.sleep(0.5)
    assert "edited in the browser" in (workspace / "analysis.ipynb").read_text()
    shot(alice, "03-notebook-saved")

    # the context menu of the file browser offers no download either
    page.goto(lab + "lab/tree/work")
    page.wait_for_selector('.jp-DirListing-item[title*="result.csv"]', timeout=60_000)
    close_dialogs(page)
    page.click('.jp-DirListing-item[title*="result.csv"]', button="right")
    page.wait_for_selector(".lm-Menu-content")
    context_items = page.locator(".lm-Menu-content .lm-Menu-itemLabel").all_inner_texts()
    assert "Rename" in context_items, context_items  # control
    assert not [item for item in context_items if "Download" in item or "Browser Tab" in item], context_items
    shot(alice, "04-context-menu")
    page.keyboard.press("Escape")


ACRO_IN_THE_BUBBLE = r"""
import os
os.chdir("/home/jovyan/work")
import pandas as pd
from acro import ACRO
acro = ACRO(suppress=False)
df = pd.DataFrame({"sex": ["F"] * 60 + ["M"] * 43, "treated": ["yes"] * 50 + ["no"] * 10 + ["yes"] * 40 + ["no"] * 3})
acro.crosstab(df.sex, df.treated)
large = pd.DataFrame({"sex": ["F"] * 60 + ["M"] * 45, "treated": ["yes"] * 30 + ["no"] * 30 + ["yes"] * 20 + ["no"] * 25})
acro.crosstab(large.sex, large.treated)
acro.finalise("acro_outputs", "json")
from bubble_manager.inbubble.airlock import request_output
print(request_output(acro="acro_outputs", name="paper", justification="Table 2 of the paper"))
"""


def test_an_acro_output_leaves_through_the_panel_once(bubble_hub, chromium, alice_in_lab):
    from tests.hubfixture import ALICE, SAM, run_in_kernel

    hub = bubble_hub
    alice, lab, workspace = alice_in_lab
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:  # its own event loop, away from Playwright's
        result = pool.submit(run_in_kernel, hub, ALICE, "alpha", ACRO_IN_THE_BUBBLE, token=hub.user_token(ALICE),
                             timeout=300).result()
    assert result["error"] is None and "/work/outbox/paper" in result["stdout"], result
    assert (workspace / "outbox" / "paper" / "acro" / "results.json").exists()

    # the member confirms the outbox folder in the panel
    alice.open("studies/alpha")
    alice.page.click("#study-airlock")
    alice.page.wait_for_url(re.compile(r".*/studies/alpha/airlock$"))
    row = alice.page.locator('tr[data-outbox="paper"]')
    assert row.count() == 1 and "Table 2 of the paper" in row.inner_text()
    shot(alice, "05-outbox-in-the-panel")
    row.locator(".submit-outbox").click()
    alice.page.wait_for_url(re.compile(r".*/airlock/requests/\d+$"))
    request_id = int(alice.page.url.rsplit("/", 1)[1])
    verdicts = {section.get_attribute("data-path"): section.locator(".file-verdict").inner_text()
                for section in alice.page.locator(".airlock-file").all()}
    assert verdicts["acro/output_0_0.csv"] == "flagged" and verdicts["acro/output_1_0.csv"] == "pass"
    assert alice.page.locator(".review-form").count() == 0  # a member never gets the review forms
    shot(alice, "06-request-submitted")

    # a steward reviews each table: the one with a cell of 3 is rejected, the other approved
    sam = Person(chromium, hub, SAM, hub.password)
    sam.open()
    sam.page.click("#nav-airlock")
    sam.page.wait_for_url(re.compile(r".*/airlock/review$"))
    assert sam.page.locator(f'tr[data-request="{request_id}"]').count() == 1
    shot(sam, "07-review-queue")
    sam.open(f"airlock/requests/{request_id}")
    flagged = sam.page.locator('.airlock-file[data-path="acro/output_0_0.csv"]')
    assert "small-cell" in flagged.locator(".file-flags").inner_text()
    shot(sam, "08-review-page")
    for path, decision, comment in (("acro/output_0_0.csv", "reject", "A cell of 3: suppress it."),
                                    ("acro/output_1_0.csv", "approve", "Every cell is 10 or more.")):
        section = sam.page.locator(f'.airlock-file[data-path="{path}"]')
        section.locator('input[name="comment"]').fill(comment)
        section.locator(f'button[value="{decision}"]').click()
        sam.page.wait_for_url(re.compile(rf".*/airlock/requests/{request_id}$"))
    states = {s.get_attribute("data-path"): s.locator(".file-state").inner_text()
              for s in sam.page.locator(".airlock-file").all()}
    assert states["acro/output_0_0.csv"] == "rejected" and states["acro/output_1_0.csv"] == "approved"
    shot(sam, "09-reviewed")

    # the member downloads the approved table, once
    alice.open(f"airlock/requests/{request_id}")
    approved = alice.page.locator('.airlock-file[data-path="acro/output_1_0.csv"]')
    assert alice.page.locator('.airlock-file[data-path="acro/output_0_0.csv"] .download-file').count() == 0
    with alice.page.expect_download() as download:
        approved.locator(".download-file").click()
    saved = Path(download.value.path())
    assert saved.read_bytes() == (workspace / "outbox" / "paper" / "acro" / "output_1_0.csv").read_bytes()
    assert download.value.suggested_filename == "output_1_0.csv"
    alice.open(f"airlock/requests/{request_id}")
    assert approved.locator(".downloaded").count() == 1 and approved.locator(".download-file").count() == 0
    shot(alice, "10-downloaded")
    file_id = approved.get_attribute("data-file")
    again = alice.page.goto(f"{alice.panel}airlock/requests/{request_id}/files/{file_id}/download", timeout=30_000)
    assert again.status == 409 and "already downloaded" in alice.page.content(), hub.log_tail()

    actions = [(e.action, e.actor) for e in hub.context.audit.entries(study="alpha", action="airlock.*")]
    assert ("airlock.submitted", ALICE) in actions and ("airlock.downloaded", ALICE) in actions
    assert actions.count(("airlock.reviewed", SAM)) == 2 and ("airlock.refused", ALICE) in actions


def test_an_import_reaches_the_bubble_only_after_review(bubble_hub, chromium, alice_in_lab, tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from tests.hubfixture import ALICE, SAM, run_in_kernel

    hub = bubble_hub
    alice, _, _ = alice_in_lab
    script = tmp_path / "helper.py"
    script.write_text("def rate(events, persons):\n    return events / persons\n")
    alice.open("studies/alpha/airlock")
    alice.page.set_input_files('#import-form input[type="file"]', str(script))
    alice.page.fill('#import-form input[name="justification"]', "a shared helper for the rates")
    alice.page.click("#import-form button")
    alice.page.wait_for_url(re.compile(r".*/airlock/requests/\d+$"))
    request_id = int(alice.page.url.rsplit("/", 1)[1])
    shot(alice, "11-import-uploaded")
    delivered = f"/home/jovyan/shared/imports/{request_id}-helper.py"
    read = (f"import os\nprint(os.path.exists({delivered!r}))\n"
            f"print(open({delivered!r}).read() if os.path.exists({delivered!r}) else '')\n"
            f"try:\n    open({delivered!r}, 'a')\nexcept OSError as error:\n    print(type(error).__name__)\n")

    def in_bubble() -> dict:
        with ThreadPoolExecutor(1) as pool:
            return pool.submit(run_in_kernel, hub, ALICE, "alpha", read, token=hub.user_token(ALICE)).result()

    assert in_bubble()["stdout"].startswith("False")  # not before a steward approves it
    sam = Person(chromium, hub, SAM, hub.password)
    sam.open(f"airlock/requests/{request_id}")
    section = sam.page.locator('.airlock-file[data-path="helper.py"]')
    section.locator('input[name="comment"]').fill("Plain arithmetic, no data.")
    section.locator('button[value="approve"]').click()
    sam.page.wait_for_url(re.compile(rf".*/airlock/requests/{request_id}$"))
    assert f"shared/imports/{request_id}-helper.py" in sam.page.locator(".delivered").inner_text()
    shot(sam, "12-import-approved")
    output = in_bubble()["stdout"]
    assert output.startswith("True") and "return events / persons" in output and "PermissionError" in output
