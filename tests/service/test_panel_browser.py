"""The whole flow in a real browser (Playwright driving Debian's Chromium) against a real hub with
bwrap bubbles and the panel: a researcher requests, a steward asks for changes, the researcher
resubmits, the steward approves, an admin activates (the extract is built), the researcher opens
the bubble in JupyterLab, the admin sees it in the operations list (and the audit log with its
integrity status, the archives, the access review) and revokes the study, which stops the bubble.
A screenshot of each page is saved under test-artifacts/panel/.
"""

from __future__ import annotations

import datetime as dt
import re
import time

import pytest

from tests.browser import ARTIFACTS as BROWSER_ARTIFACTS, browser_missing_reason

from ..conftest import make_home_activatable

ARTIFACTS = BROWSER_ARTIFACTS / "panel"
SLUG = "panel-flow"
pytestmark = [pytest.mark.browser, pytest.mark.bwrap, pytest.mark.slow]


@pytest.fixture(scope="module")
def bubble_hub(small_warehouse):
    from tests.hubfixture import HubFixture, hub_for_module, hub_missing_reason

    def start(hub: HubFixture) -> None:
        make_home_activatable(hub.home, small_warehouse)
        start_with_panel(hub)

    yield from hub_for_module(browser_missing_reason() or hub_missing_reason(),
                              lambda: HubFixture.create(with_service=True), start)


def panel_url(hub) -> str:
    """With subdomain_host every service has its own subdomain, the panel too."""
    scheme, _, netloc = hub.url.partition("://")
    return f"{scheme}://bubble-manager--service.{netloc}/services/bubble-manager/"


def start_with_panel(hub) -> None:  # noqa: ANN001 - a HubFixture
    hub.start()
    wait_for_panel(hub)


def wait_for_panel(hub, timeout: float = 180) -> None:
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if requests.get(panel_url(hub) + "api/v1/openapi.json", timeout=5).status_code == 200:
            return
        time.sleep(1)
    raise RuntimeError(f"the bubble-manager service did not come up:\n{hub.log_tail()}")


class Person:
    """One signed-in browser context per person, with screenshots named after the step."""

    def __init__(self, browser, hub, name: str, password: str):
        self.name, self.hub = name, hub
        self.context = browser.new_context(viewport={"width": 1280, "height": 900})
        self.page = self.context.new_page()
        self.page.set_default_timeout(120_000)
        self.page.goto(f"{hub.url}/hub/login")
        self.page.fill("#username_input", name)
        self.page.fill("#password_input", password)
        self.page.click("#login_submit")
        self.page.wait_for_load_state()

    @property
    def panel(self) -> str:
        return panel_url(self.hub)

    def open(self, path: str = ""):
        response = self.page.goto(self.panel + path)
        if self.page.get_by_role("heading", name="Authorize access").count():
            with self.page.expect_navigation() as navigation:
                self.page.get_by_role("button", name="Authorize").click()
            response = navigation.value
        self.page.wait_for_load_state()
        return response

    def shot(self, step: str) -> None:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(ARTIFACTS / f"{step}.png"), full_page=True)


def fill_request(page, purpose: str) -> None:
    today = dt.date.today()
    page.fill("#title", "Statins in type 2 diabetes (panel test)")
    page.fill("#slug", SLUG)
    page.fill("#purpose", purpose)
    page.fill("#legal_basis", "public-interest research, MR-004")
    page.fill("#members", "alice@example.org")
    page.fill("#starts", str(today))
    page.fill("#ends", str(today + dt.timedelta(days=60)))
    for table, column in (("person", "person_id"), ("person", "birth_date"), ("condition_occurrence", "person_id"),
                          ("condition_occurrence", "condition_concept_id")):
        page.check(f'input[name="col:{table}"][value="{column}"]')
    page.fill("#cohort", "SELECT DISTINCT person_id FROM condition_occurrence WHERE condition_concept_id = 201826")


def test_request_review_activate_open_list_and_revoke(bubble_hub, chromium):
    from tests.hubfixture import ADA, ALICE, SAM

    hub = bubble_hub
    alice = Person(chromium, hub, ALICE, hub.password)
    sam = Person(chromium, hub, SAM, hub.password)
    ada = Person(chromium, hub, ADA, hub.password)

    # the researcher requests a study; the form is driven by the catalog
    alice.open()
    alice.shot("01-researcher-home")
    alice.open("studies/new")
    assert alice.page.locator('input[name="col:identity"]').count() == 0, "identity tables are never offered"
    fill_request(alice.page, "Describe statin exposure in adults with type 2 diabetes.")
    alice.shot("02-request-form")
    alice.page.click("#submit-request")
    alice.page.wait_for_url(re.compile(rf".*/studies/{SLUG}$"))
    assert alice.page.inner_text("#study-state") == "submitted"
    alice.shot("03-submitted")

    # the steward sees it in the queue and asks for changes
    sam.open("review")
    assert sam.page.locator(f'tr[data-slug="{SLUG}"]').count() == 1
    sam.shot("04-review-queue")
    sam.open(f"review/{SLUG}")
    sam.shot("05-review-page")
    sam.page.fill("#comment", "Please state the follow-up period.")
    sam.page.click("#request-changes")
    sam.page.wait_for_load_state()

    # the researcher sees the comment, edits and resubmits
    alice.open(f"studies/{SLUG}")
    assert alice.page.inner_text("#study-state") == "changes requested"
    assert "follow-up period" in alice.page.inner_text("#last-comment")
    alice.shot("06-changes-requested")
    alice.page.click("#edit-study")
    alice.page.fill("#purpose", "Describe statin exposure in adults with type 2 diabetes, 2018-2024 follow-up.")
    alice.page.click("#submit-request")
    alice.page.wait_for_url(re.compile(rf".*/studies/{SLUG}$"))
    assert alice.page.inner_text("#study-state") == "submitted"

    # the steward approves
    sam.open(f"review/{SLUG}")
    sam.page.fill("#comment", "Minimal data, sound legal basis.")
    sam.page.click("#approve")
    sam.page.wait_for_load_state()
    assert sam.page.inner_text("#study-state") == "approved"
    sam.shot("07-approved")

    # the admin builds the extract and activates
    ada.open(f"studies/{SLUG}")
    ada.page.click("#activate-study")
    ada.page.wait_for_url(re.compile(rf".*/studies/{SLUG}$"))
    assert ada.page.inner_text("#study-state") == "active", ada.page.content()[:2000]
    ada.shot("08-activated")

    # the researcher opens the bubble: JupyterLab through the proxy, on the user's subdomain
    alice.open()
    alice.shot("09-researcher-home-active")
    alice.page.click(f'tr[data-slug="{SLUG}"] .open-bubble')
    alice.page.wait_for_url(re.compile(rf".*/user/.+/{SLUG}/lab.*"), timeout=180_000)
    alice.page.wait_for_selector(".jp-LauncherCard, #jp-main-dock-panel", timeout=120_000)
    alice.shot("10-jupyterlab")

    # the admin sees it running, then revokes the study: the bubble stops
    ada.open("admin")
    row = ada.page.locator(f'tr[data-study="{SLUG}"]')
    assert row.count() == 1 and row.locator(".bubble-status").inner_text() in ("running", "idle")
    ada.shot("11-admin-bubbles")
    ada.open(f"admin/audit?study={SLUG}")
    assert "Chain intact" in ada.page.inner_text("#integrity")
    assert ada.page.locator("#audit-entries tbody tr").count() >= 6
    ada.shot("11a-admin-audit")
    ada.open("admin/archives")
    assert ada.page.locator("#archives").count() == 1
    ada.shot("11b-admin-archives")
    ada.open("admin/access")
    assert ada.page.locator("#access-people").count() == 1
    ada.shot("11c-admin-access-review")
    ada.open(f"studies/{SLUG}")
    ada.page.fill('#revoke-form input[name="comment"]', "Test of the revocation path.")
    ada.page.click("#revoke-study")
    ada.page.wait_for_url(re.compile(rf".*/studies/{SLUG}$"))
    assert ada.page.inner_text("#study-state") == "revoked"
    ada.shot("12-revoked")
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and hub.server_model(ALICE, SLUG):
        time.sleep(1)
    assert not hub.server_model(ALICE, SLUG), "the bubble of a revoked study must stop"
    actions = [e.action for e in hub.context.audit.entries(study=SLUG)]
    for expected in ("study.requested", "study.submitted", "study.changes_requested", "study.approved",
                     "study.activated", "study.revoked"):
        assert expected in actions


def test_admin_cannot_open_a_researchers_bubble_from_the_panel(bubble_hub, chromium):
    from tests.hubfixture import ADA, ALICE

    ada = Person(chromium, bubble_hub, ADA, bubble_hub.password)
    response = ada.page.goto(f"{bubble_hub.url}/hub/spawn/{ALICE}/alpha")
    ada.page.wait_for_load_state()
    assert response.status in (403, 404) or "403" in ada.page.content()
