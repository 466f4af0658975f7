"""The hot-path stock gate: availability counters in Redis, kept as a projection of stock events.

Checkout asks ``admit`` before anything is written: one Lua script checks every line of the
order against the counters and holds what it admits, so a flash sale's excess buyers get a
409 at the edge instead of a saga that ends REJECTED. The counters follow the stock agent's
events (``apply``): a reservation consumes the order's hold; releases, expiries, returns and
adjustments move the counter. Holds of orders that never reached the stock agent are given
back (``give_back``) when checkout fails or the order ends. It is an admission filter: the
stock agent's ledger is the truth, and an unknown counter admits.

Each line is applied once per item version: lines carry their item's version (one up per
change of the item, ``domain.stock``) and the gate keeps, beside each counter, the last
version it applied (``version``), so a redelivered or older line, or one that changed
nothing (its version repeated), is skipped however late it comes, with one key per item
instead of one per event. Lines of events written before items had versions are applied
once per event id (``gate:seen:<id>``, kept ``DEDUP_TTL_SECONDS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from eatcloud.errors import InfrastructureError
from eatcloud.locks import script
from eatcloud.streams import records as r

HOLD_TTL_SECONDS = 3600
DEDUP_TTL_SECONDS = 7 * 24 * 3600


def counter(store_id: str, menu_id: str) -> str:
    return f"gate:avail:{store_id}:{menu_id}"


def version(store_id: str, menu_id: str) -> str:
    """The last item version applied to the counter (kept when the counter goes: unlimited)."""
    return f"gate:ver:{store_id}:{menu_id}"


def seen(event_id: str) -> str:
    """The dedup key of an unversioned line (``DEDUP_TTL_SECONDS``)."""
    return f"gate:seen:{event_id}"


def holds(order_id: str) -> str:
    return f"gate:hold:{order_id}"


@dataclass(frozen=True)
class Refusal:
    menu_id: str
    available: int


async def admit(
    redis: Any, order_id: str, store_id: str, lines: list[tuple[str, int]]
) -> Refusal | None:
    """Hold ``lines`` ((menu_id, quantity)) for the order, or say which line does not fit."""
    keys = [holds(order_id), *(counter(store_id, m) for m, _ in lines)]
    args = [HOLD_TTL_SECONDS, *(q for _, q in lines), *(m for m, _ in lines)]
    try:
        result = await script(redis, "stock_gate")(keys=keys, args=args)
    except RedisError as exc:
        raise InfrastructureError(f"stock gate: {exc}") from exc
    if result[0] == 1:
        return None
    menu = result[1].decode() if isinstance(result[1], bytes) else str(result[1])
    return Refusal(menu, int(result[2]))


async def give_back(redis: Any, order_id: str) -> int:
    """Return the order's remaining holds to the counters; how many there were."""
    return (await give_back_all(redis, [order_id]))[0]


async def give_back_all(redis: Any, order_ids: list[str]) -> list[int]:
    """``give_back`` for several orders in one round trip."""
    returned = script(redis, "stock_gate_return")
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for order_id in order_ids:
                await returned(keys=[holds(order_id)], client=pipe)
            return [int(n) for n in await pipe.execute()]
    except RedisError as exc:
        raise InfrastructureError(f"stock gate: {exc}") from exc


async def apply(redis: Any, event: r.StockLevelChanged) -> bool:
    """Move the counter by one stock line (once per item version, or per event id for an
    unversioned line); False for a duplicate or an older version."""
    return (await apply_all(redis, [event]))[0]


async def apply_all(redis: Any, events: list[r.StockLevelChanged]) -> list[bool]:
    """``apply`` for a projection's batch of events, in order, in one round trip."""
    applied, returned = script(redis, "stock_gate_apply"), script(redis, "stock_gate_return")
    try:
        async with redis.pipeline(transaction=False) as pipe:
            for event in events:
                if event.change is r.StockChange.INSUFFICIENT:
                    # The stock agent refused the order: its holds go back. The line changed
                    # nothing (it repeats the item's version): no version to record.
                    await returned(keys=[holds(event.order_id or "-")], client=pipe)
                else:
                    await applied(keys=_apply_keys(event), args=_apply_args(event), client=pipe)
            results = await pipe.execute()
    except RedisError as exc:
        raise InfrastructureError(f"stock gate: {exc}") from exc
    insufficient = r.StockChange.INSUFFICIENT
    return [e.change is insufficient or bool(n) for e, n in zip(events, results, strict=True)]


def _apply_keys(event: r.StockLevelChanged) -> list[str]:
    if event.version is None:  # an event written before items had versions
        dedup = seen(event.event_id)
    else:
        dedup = version(event.store_id, event.menu_id)
    return [counter(event.store_id, event.menu_id), holds(event.order_id or "-"), dedup]


def _apply_args(event: r.StockLevelChanged) -> list[Any]:
    adjusted = event.change is r.StockChange.ADJUSTED
    return [
        event.change.value,
        event.quantity if adjusted else abs(event.quantity),
        event.on_hand - event.reserved,
        1 if event.unlimited else 0,
        DEDUP_TTL_SECONDS,
        "" if event.version is None else event.version,
    ]
