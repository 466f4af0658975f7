"""The hot-path stock gate's counters follow the stock events (real Redis, Lua scripts).

Lines carry their item's version (``domain.stock``) and the gate skips any version it has
applied; lines of events written before versions existed are deduplicated by their ids. The
counter tests run with both shapes.
"""

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


@pytest.fixture(params=[True, False], ids=["versioned", "unversioned"])
def versioned(request: pytest.FixtureRequest) -> bool:
    value: bool = request.param
    return value


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Any]:
    client = aioredis.Redis.from_url(settings.redis.url())
    yield client
    await client.aclose()


class Item:
    """One menu's counter, driven like the stock agent and the projection would."""

    def __init__(self, redis: Any, versioned: bool = True) -> None:
        self.redis, self.store, self.menu = redis, f"s-{uuid.uuid4().hex[:8]}", "m"
        self.on_hand = self.reserved = self.version = 0
        self.versioned = versioned

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
        if change is not C.INSUFFICIENT:
            self.version += 1  # a refusal changes nothing: it tells the current version
        event = self.line(change, qty, order, self.version if self.versioned else None, **kw)
        await gate.apply(self.redis, event)
        return event

    def line(
        self, change: r.StockChange, qty: int, order: str | None, version: int | None, **kw: Any
    ) -> r.StockLevelChanged:
        """The item's line as it is now."""
        return r.StockLevelChanged(
            store_id=self.store,
            menu_id=self.menu,
            change=change,
            quantity=qty,
            order_id=order,
            on_hand=self.on_hand,
            reserved=self.reserved,
            sold=0,
            version=version,
            **kw,
        )

    async def unchanged(
        self, change: r.StockChange, qty: int, order: str | None = None, **kw: Any
    ) -> r.StockLevelChanged:
        """A line that left the item as it was: the same counts, the same version."""
        event = self.line(change, qty, order, self.version, **kw)
        await gate.apply(self.redis, event)
        return event

    async def admit(self, order: str, qty: int) -> gate.Refusal | None:
        return await gate.admit(self.redis, order, self.store, [(self.menu, qty)])

    async def counter(self) -> int | None:
        value = await self.redis.get(gate.counter(self.store, self.menu))
        return None if value is None else int(value)

    async def applied_version(self) -> int | None:
        value = await self.redis.get(gate.version(self.store, self.menu))
        return None if value is None else int(value)


def seen(event: r.StockLevelChanged) -> str:
    """The dedup key the gate keeps per unversioned event: ``gate:seen:<event id>``."""
    return gate.seen(event.event_id)


def copy(event: r.StockLevelChanged) -> r.StockLevelChanged:
    """The same ledger line under another event id (the same line in another shape)."""
    return event.model_copy(update={"event_id": r.new_id()})


async def test_counters_follow_reserve_commit_release_expiry_return_and_adjust(
    redis: Any, versioned: bool
) -> None:
    item = Item(redis, versioned)
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


async def test_holds_come_back_when_an_order_never_reaches_the_ledger(
    redis: Any, versioned: bool
) -> None:
    item = Item(redis, versioned)
    await item.event(C.ADJUSTED, 5)
    assert await item.admit("b", 2) is None
    await item.event(C.INSUFFICIENT, 2, "b")  # the stock agent refused the order
    assert await item.counter() == 5
    assert await item.admit("c", 4) is None
    assert await gate.give_back(redis, "c") == 1  # the order ended before its stock step
    assert await gate.give_back(redis, "c") == 0  # and only once
    assert await item.counter() == 5


async def test_an_order_ending_before_its_stock_events_are_projected_nets_to_zero(
    redis: Any, versioned: bool
) -> None:
    item = Item(redis, versioned)
    await item.event(C.ADJUSTED, 10)
    assert await item.admit("g", 2) is None
    await gate.give_back(redis, "g")  # OrderRejected projected first
    await item.event(C.RESERVED, 2, "g")  # then its reservation ...
    await item.event(C.RELEASED, 2, "g")  # ... and its compensation
    assert await item.counter() == 10


async def test_a_duplicate_event_moves_nothing_and_the_gate_refuses_what_does_not_fit(
    redis: Any, versioned: bool
) -> None:
    item = Item(redis, versioned)
    adjust = await item.event(C.ADJUSTED, 3)
    assert await gate.apply(redis, adjust) is False
    assert await item.counter() == 3
    refusal = await item.admit("h", 4)
    assert refusal == gate.Refusal(item.menu, 3)
    assert await item.counter() == 3  # a refusal holds nothing
    await item.event(C.ADJUSTED, 0, unlimited=True)
    assert await item.counter() is None and await item.admit("i", 1_000) is None


async def test_a_redelivered_line_moves_nothing_however_long_after(redis: Any) -> None:
    item = Item(redis)
    await item.event(C.ADJUSTED, 10)
    reserve = await item.event(C.RESERVED, 3, "a")
    assert await gate.apply(redis, reserve) is False  # redelivered: same id, same version
    await redis.delete(seen(reserve))  # a week later, when a per-event key would be gone
    assert await gate.apply(redis, reserve) is False
    assert await gate.apply(redis, copy(reserve)) is False  # and whatever its id
    assert await item.counter() == 7
    assert await item.applied_version() == 2  # one number per item is all the gate keeps


async def test_an_older_version_after_a_newer_one_moves_nothing(redis: Any) -> None:
    item = Item(redis)
    first = await item.event(C.ADJUSTED, 10)
    reserve = await item.event(C.RESERVED, 3, "a")
    await item.event(C.ADJUSTED, 5)
    assert await item.counter() == 12
    assert await gate.apply_all(redis, [copy(reserve), copy(first)]) == [False, False]
    assert await item.counter() == 12
    await item.event(C.ADJUSTED, 0, unlimited=True)  # the counter goes, the version stays
    assert await gate.apply(redis, copy(reserve)) is False
    assert await item.counter() is None  # not rebuilt from a stale line
    await item.event(C.ADJUSTED, 1, unlimited=False)  # limited again: starts from the ledger
    assert await item.counter() == 13
    assert await item.applied_version() == 5


async def test_a_first_seen_item_starts_from_its_line_and_records_its_version(
    redis: Any,
) -> None:
    item = Item(redis)
    item.on_hand, item.version = 20, 41  # counted by events this gate never saw
    older = await item.event(C.RESERVED, 2, "a")
    assert await item.counter() == 18
    await item.event(C.RELEASED, 2, "a")
    assert await gate.apply(redis, copy(older)) is False
    assert await item.counter() == 20
    assert await item.applied_version() == 43


async def test_a_line_that_left_its_item_as_it_was_moves_nothing(redis: Any) -> None:
    item = Item(redis)
    await item.event(C.ADJUSTED, 0, unlimited=True)
    assert await item.admit("u", 2) is None  # no counter: admitted, nothing held
    await item.unchanged(C.RESERVED, 2, "u", unlimited=True)  # unlimited: no counts move
    await item.event(C.ADJUSTED, 5, unlimited=False)
    assert await item.counter() == 5
    await item.unchanged(C.RELEASED, 2, "u")  # the order's units were never counted
    assert await item.counter() == 5 == item.on_hand - item.reserved


async def test_versioned_lines_leave_no_per_event_key(redis: Any) -> None:
    item = Item(redis)
    events = [
        await item.event(C.ADJUSTED, 10),
        await item.event(C.RESERVED, 3, "a"),
        await item.event(C.COMMITTED, 3, "a"),
        await item.event(C.RESERVED, 1, "b"),
        await item.event(C.EXPIRED, 1, "b"),
    ]
    assert [await redis.exists(seen(e)) for e in events] == [0] * len(events)
    assert await item.counter() == 7
    assert await item.applied_version() == 5


async def test_an_unversioned_event_is_still_deduplicated_by_its_id(redis: Any) -> None:
    item = Item(redis, versioned=False)
    adjust = await item.event(C.ADJUSTED, 10)
    assert await gate.apply(redis, adjust) is False
    assert 0 < await redis.ttl(seen(adjust)) <= gate.DEDUP_TTL_SECONDS
    assert await item.applied_version() is None  # old events record no version
    assert await gate.apply(redis, copy(adjust)) is True  # another id: another event
    assert await item.counter() == 20
