"""The hot-path stock gate's counters follow the stock events (real Redis, Lua scripts)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from eatcloud.locks import gate
from eatcloud.settings import Settings
from eatcloud.streams import records as r

C = r.StockChange


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Any]:
    client = aioredis.Redis.from_url(settings.redis.url())
    yield client
    await client.aclose()


class Item:
    """One menu's counter, driven like the stock agent and the projection would."""

    def __init__(self, redis: Any) -> None:
        self.redis, self.store, self.menu = redis, f"s-{uuid.uuid4().hex[:8]}", "m"
        self.on_hand = self.reserved = 0

    async def event(
        self, change: r.StockChange, qty: int, order: str | None = None, **kw: Any
    ) -> r.StockLevelChanged:
        if change is C.ADJUSTED:
            self.on_hand += qty
        elif change is C.RESERVED:
            self.reserved += qty
        elif change in (C.RELEASED, C.EXPIRED):
            self.reserved -= qty
        elif change is C.COMMITTED:
            self.reserved, self.on_hand = self.reserved - qty, self.on_hand - qty
        elif change is C.RETURNED:
            self.on_hand += qty
        event = r.StockLevelChanged(
            store_id=self.store,
            menu_id=self.menu,
            change=change,
            quantity=qty,
            order_id=order,
            on_hand=self.on_hand,
            reserved=self.reserved,
            sold=0,
            **kw,
        )
        await gate.apply(self.redis, event)
        return event

    async def admit(self, order: str, qty: int) -> gate.Refusal | None:
        return await gate.admit(self.redis, order, self.store, [(self.menu, qty)])

    async def counter(self) -> int | None:
        value = await self.redis.get(gate.counter(self.store, self.menu))
        return None if value is None else int(value)


async def test_counters_follow_reserve_commit_release_expiry_return_and_adjust(redis: Any) -> None:
    item = Item(redis)
    assert await item.admit("o-unknown", 99) is None  # never projected: unknown admits
    await item.event(C.ADJUSTED, 10)
    assert await item.counter() == 10
    assert await item.admit("a", 3) is None and await item.counter() == 7  # held at checkout
    await item.event(C.RESERVED, 3, "a")  # the hold becomes the reservation: no double count
    assert await item.counter() == 7
    await item.event(C.COMMITTED, 3, "a")
    assert await item.counter() == 7
    await item.event(C.RESERVED, 2, "d")  # reserved without the gate (e.g. a test harness)
    assert await item.counter() == 5
    await item.event(C.RELEASED, 2, "d")
    await item.event(C.RESERVED, 1, "e")
    await item.event(C.EXPIRED, 1, "e")
    assert await item.counter() == 7
    await item.event(C.RETURNED, 3, "a")  # a store cancelled after commit: stock comes back
    assert await item.counter() == 10
    await item.event(C.ADJUSTED, -4)
    assert await item.counter() == 6 == item.on_hand - item.reserved


async def test_holds_come_back_when_an_order_never_reaches_the_ledger(redis: Any) -> None:
    item = Item(redis)
    await item.event(C.ADJUSTED, 5)
    assert await item.admit("b", 2) is None
    await item.event(C.INSUFFICIENT, 2, "b")  # the stock agent refused the order
    assert await item.counter() == 5
    assert await item.admit("c", 4) is None
    assert await gate.give_back(redis, "c") == 1  # the order ended before its stock step
    assert await gate.give_back(redis, "c") == 0  # and only once
    assert await item.counter() == 5


async def test_an_order_ending_before_its_stock_events_are_projected_nets_to_zero(
    redis: Any,
) -> None:
    item = Item(redis)
    await item.event(C.ADJUSTED, 10)
    assert await item.admit("g", 2) is None
    await gate.give_back(redis, "g")  # OrderRejected projected first
    await item.event(C.RESERVED, 2, "g")  # then its reservation ...
    await item.event(C.RELEASED, 2, "g")  # ... and its compensation
    assert await item.counter() == 10


async def test_a_duplicate_event_moves_nothing_and_the_gate_refuses_what_does_not_fit(
    redis: Any,
) -> None:
    item = Item(redis)
    adjust = await item.event(C.ADJUSTED, 3)
    assert await gate.apply(redis, adjust) is False
    assert await item.counter() == 3
    refusal = await item.admit("h", 4)
    assert refusal == gate.Refusal(item.menu, 3)
    assert await item.counter() == 3  # a refusal holds nothing
    await item.event(C.ADJUSTED, 0, unlimited=True)
    assert await item.counter() is None and await item.admit("i", 1_000) is None
