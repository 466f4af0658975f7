"""Chaos tests kill real workers on the real local stack; every test here needs it."""

from __future__ import annotations

import pytest

from eatcloud.settings import Settings


@pytest.fixture(autouse=True)
def _needs_stack(stack: Settings) -> None:
    """Fail, loudly and early, when Kafka, PostgreSQL, Redis or the Kinesis emulator is down."""
