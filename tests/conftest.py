"""Shared fixtures: settings for the local stack, and a loud failure when a service is missing."""

from __future__ import annotations

import asyncio

import pytest

from eatcloud.probes import probe_all
from eatcloud.settings import Settings


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Settings:
    """The local stack, checked once: a missing service fails the test, it never skips it."""
    results = asyncio.run(probe_all(settings))
    missing = [f"  {r.name} at {r.address}: {r.detail}" for r in results if not r.ok]
    if missing:
        pytest.fail(
            "the local stack is not up; start it with `make stack-up` (or `eatcloud stack up`):\n"
            + "\n".join(missing),
            pytrace=False,
        )
    return settings
