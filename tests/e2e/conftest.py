"""End-to-end tests: HTTP in, a real worker on the real broker, read models out."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from eatcloud.settings import Settings
from tests.e2e.platform import Platform, running_platform


@pytest.fixture(autouse=True)
def _needs_stack(stack: Settings) -> None:
    """Fail, loudly and early, when Kafka, PostgreSQL, Redis or the Kinesis emulator is down."""


@pytest.fixture(scope="module")
async def platform(
    stack: Settings, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Platform]:
    """One platform per test module (each module's worker has topics of its own)."""
    async with running_platform(stack, tmp_path_factory.mktemp("e2e")) as p:
        yield p
