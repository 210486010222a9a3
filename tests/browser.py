"""A real browser for the tests: Debian's Chromium driven by Playwright (its own download is
impossible here, so it is launched by path). `make test` installs both (mk/auth.mk)."""

from __future__ import annotations

from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def browser_missing_reason() -> str | None:
    if not CHROMIUM.exists():
        return "Debian's chromium is missing at /usr/bin/chromium: `make test` installs it (SYSTEM_PACKAGES in mk/auth.mk)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is missing: `make test` installs the authtest extra (mk/auth.mk)"
    return None


@pytest.fixture(scope="module")
def chromium():
    """One headless Chromium per test module."""
    reason = browser_missing_reason()
    if reason:
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()

