"""Runtime fixtures: one real hub home (and hub) per test session, shared by the bwrap tests."""

from __future__ import annotations

import pytest

from tests.hubfixture import HubFixture, hub_for_module, hub_missing_reason


@pytest.fixture(scope="session")
def hub_home():
    """A hub home with studies and extracts, not started (for `sandbox exec` tests)."""
    yield from hub_for_module(hub_missing_reason(), HubFixture.create)


@pytest.fixture(scope="session")
def running_hub(hub_home: HubFixture):
    """The same home with its hub started (CHP, LocalBubbleSpawner, unix sockets)."""
    hub_home.start()
    yield hub_home
    hub_home.stop_all_bubbles()
    hub_home.stop_hub()
