"""Fixtures for agent tests: a fresh broker-less app per test, with a fake payment gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.agents.harness import FakeGateway, Harness


@pytest.fixture
def gateway() -> FakeGateway:
    return FakeGateway()


@pytest.fixture
async def harness(tmp_path: Path, gateway: FakeGateway) -> AsyncIterator[Harness]:
    # Built inside the running loop: Faust and mode look the loop up when objects are made.
    harness = Harness.build(tmp_path, gateway)
    yield harness
    harness.close()
