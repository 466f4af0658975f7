"""The hot-path stock gate: availability counters in Redis, kept as a projection of stock events.

Checkout asks ``admit`` before anything is written: one Lua script checks every line of the
order against the counters and holds what it admits, so a flash sale's excess buyers get a
409 at the edge instead of a saga that ends REJECTED. The counters follow the stock agent's
events (``apply``): a reservation consumes the order's hold; releases, expiries, returns and
adjustments move the counter. Holds of orders that never reached the stock agent are given
back (``give_back``) when checkout fails or the order ends. It is an admission filter: the
stock agent's ledger is the truth, and an unknown counter admits.
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
    try:
        return int(await script(redis, "stock_gate_return")(keys=[holds(order_id)]))
    except RedisError as exc:
        raise InfrastructureError(f"stock gate: {exc}") from exc


async def apply(redis: Any, event: r.StockLevelChanged) -> bool:
    """Move the counter by one stock event (once per event id); False for a duplicate."""
    if event.change is r.StockChange.INSUFFICIENT:
        if event.order_id:
            await give_back(redis, event.order_id)
        return True
    keys = [
        counter(event.store_id, event.menu_id),
        holds(event.order_id or "-"),
        f"gate:seen:{event.event_id}",
    ]
    args = [
        event.change.value,
        abs(event.quantity) if event.change is not r.StockChange.ADJUSTED else event.quantity,
        event.on_hand - event.reserved,
        1 if event.unlimited else 0,
        DEDUP_TTL_SECONDS,
    ]
    try:
        return bool(await script(redis, "stock_gate_apply")(keys=keys, args=args))
    except RedisError as exc:
        raise InfrastructureError(f"stock gate: {exc}") from exc
