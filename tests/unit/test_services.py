"""``bootstrap.build``: nothing opens at build time, a client opens once on first use, a failed
open is tried again, and ``close`` closes exactly what was opened."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from eatcloud.bootstrap import build
from eatcloud.resources import Services
from eatcloud.settings import Settings


class FakeProducer:
    def __init__(self, log: list[str], fail: bool = False) -> None:
        self.log, self.fail = log, fail

    async def start(self) -> None:
        self.log.append("start")
        if self.fail:
            raise ConnectionError("no broker")

    async def stop(self) -> None:
        self.log.append("stop")


class FakePool:
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def close(self) -> None:
        self.log.append("pool closed")


def fake_services(log: list[str], failing_starts: int = 0) -> Services:
    services = build(Settings())
    made: list[FakeProducer] = []

    async def open_pool() -> Any:
        log.append("pool opened")
        await asyncio.sleep(0)  # two concurrent first uses must still open one pool
        return FakePool(log)

    def open_producer() -> FakeProducer:
        made.append(FakeProducer(log, fail=len(made) < failing_starts))
        return made[-1]

    services.open_pool = open_pool
    services.open_producer = open_producer
    return services


def test_build_opens_nothing_and_fills_gateway_metrics_and_clock() -> None:
    services = build(Settings(), pool_size=1)
    assert services.gateway is not None and services.metrics.registry is not None
    assert services.clock.now() > 1.7e9
    opened = (services._pool, services._redis, services._producer, services._kinesis)
    assert opened == (None, None, None, None)


async def test_a_client_opens_once_and_close_closes_what_was_opened() -> None:
    log: list[str] = []
    services = fake_services(log)
    first, second = await asyncio.gather(services.pool(), services.pool())
    assert first is second
    assert await services.producer() is await services.producer()
    assert log == ["pool opened", "start"]
    await services.close()
    assert log == ["pool opened", "start", "stop", "pool closed"]
    await services.close()  # nothing left open: nothing to do
    assert len(log) == 4


async def test_a_producer_that_fails_to_start_is_stopped_and_tried_again() -> None:
    log: list[str] = []
    async with fake_services(log, failing_starts=1) as services:
        with pytest.raises(ConnectionError):
            await services.producer()
        assert log == ["start", "stop"]
        await services.producer()
        assert log == ["start", "stop", "start"]
    assert log == ["start", "stop", "start", "stop"]
