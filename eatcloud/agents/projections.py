"""Projections: order-events and stock-events -> the PostgreSQL read models and the stock gate.

Each agent takes a batch of events (``take_events``), writes it in one PostgreSQL transaction
(deduplicated by event id, so redelivery is harmless) and then moves the Redis gate counters.
A poison event is logged and skipped: these topics are written by our own agents only, and a
read model must not stop for one bad record. Database and Redis errors crash the agent, and
the events are redelivered (nothing is acknowledged before its effect is recorded).
"""

from __future__ import annotations

import logging
from typing import Any

import redis.asyncio as aioredis

from eatcloud.agents.wiring import Wiring
from eatcloud.errors import PoisonMessage
from eatcloud.locks import gate
from eatcloud.postgres import create_pool
from eatcloud.postgres import read_models as rm
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder

log = logging.getLogger(__name__)

ORDER_EVENTS: Decoder[Any] = Decoder(r.OrderEventRecord)
STOCK_EVENTS: Decoder[Any] = Decoder(r.StockLevelChanged)
BATCH, WITHIN = 500, 0.05
ENDED = (r.OrderRejected, r.OrderCancelled)


class _Connections:
    """The worker's PostgreSQL pool and Redis client, opened on first use."""

    def __init__(self, wiring: Wiring) -> None:
        self.settings = wiring.settings
        self.pool: Any = None
        self.redis: Any = None

    async def open(self) -> tuple[Any, Any]:
        if self.pool is None:
            self.pool = await create_pool(self.settings.postgres, max_size=4)
            self.redis = aioredis.Redis.from_url(self.settings.redis.url())
        return self.pool, self.redis


def _decoded(events: list[Any], decoder: Decoder[Any]) -> list[tuple[Any, dict[str, str]]]:
    out = []
    for event in events:
        try:
            record = decoder(event.value)
        except PoisonMessage as exc:
            message = event.message
            log.error(
                "projection skips %s[%d]@%d: %s",
                message.topic,
                message.partition,
                message.offset,
                exc,
            )
            continue
        raw = event.message.headers or []
        items = raw.items() if isinstance(raw, dict) else raw
        headers = {k: (v.decode() if isinstance(v, bytes) else str(v)) for k, v in items}
        out.append((record, headers))
    return out


def register(wiring: Wiring) -> None:
    app, connections = wiring.app, _Connections(wiring)

    @app.agent(wiring.topics[t.ORDER_EVENTS], name="order-projection")  # type: ignore[untyped-decorator]
    async def order_projection(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=WITHIN):
            pool, redis = await connections.open()
            batch = _decoded(events, ORDER_EVENTS)
            async with pool.acquire() as conn:
                fresh = await rm.apply_order_events(conn, [record for record, _ in batch])
            new = {record.event_id for record in fresh}
            for record, headers in batch:
                if record.event_id not in new:
                    continue
                if isinstance(record, ENDED):
                    await gate.give_back(redis, record.order_id)
                log.info(
                    "projected %s order_id=%s request_id=%s traceparent=%s",
                    record.type,
                    record.order_id,
                    headers.get("x-request-id"),
                    headers.get("traceparent"),
                )

    @app.agent(wiring.topics[t.STOCK_EVENTS], name="stock-projection")  # type: ignore[untyped-decorator]
    async def stock_projection(stream: Any) -> None:
        async for events in stream.take_events(BATCH, within=WITHIN):
            pool, redis = await connections.open()
            batch = [record for record, _ in _decoded(events, STOCK_EVENTS)]
            async with pool.acquire() as conn:
                await rm.apply_stock_events(conn, batch)
            for record in batch:  # the gate dedupes by event id itself
                await gate.apply(redis, record)
