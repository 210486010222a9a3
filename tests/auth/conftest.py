"""Auth fixtures: a real hub signing in through the real development OIDC provider (node)."""

from __future__ import annotations

import pytest

from bubble_manager.auth.devprovider import provider_missing_reason
from tests.browser import start_or_close


def oidc_hub_missing_reason() -> str | None:
    from tests.hubfixture import hub_missing_reason

    return provider_missing_reason() or hub_missing_reason()


@pytest.fixture(scope="module")
def oidc_hub():
    reason = oidc_hub_missing_reason()
    if reason:
        pytest.skip(reason)
    from .oidchub import OIDCHub

    hub = OIDCHub.create_with_provider()
    start_or_close(hub)
    yield hub
    leftovers = hub.close()
    assert leftovers == [], f"processes or cgroups left behind: {leftovers}"
