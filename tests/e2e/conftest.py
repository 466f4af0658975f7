"""End-to-end tests: HTTP in, a real worker on the real broker, read models out."""

from __future__ import annotations

import pytest

from eatcloud.settings import Settings


@pytest.fixture(autouse=True)
def _needs_stack(stack: Settings) -> None:
    """Fail, loudly and early, when Kafka, PostgreSQL, Redis or the Kinesis emulator is down."""
