"""Auth fixtures: a real hub signing in through the real development OIDC provider (node)."""

from __future__ import annotations

import pytest

from bubble_manager.auth.devprovider import provider_missing_reason


def oidc_hub_missing_reason() -> str | None:
    from tests.hubfixture import hub_missing_reason

    return provider_missing_reason() or hub_missing_reason()


@pytest.fixture(scope="module")
def oidc_hub():
    from tests.hubfixture import hub_for_module

    def create():  # noqa: ANN202 - an OIDCHub, importable only when the provider is there
        from .oidchub import OIDCHub

        return OIDCHub.create_with_provider()

    yield from hub_for_module(oidc_hub_missing_reason(), create, lambda hub: hub.start())
