"""Projections: order-events, stock-events and points-events -> the PostgreSQL read models
(and, for stock, the checkout's Redis gate).

Each agent takes a batch of events (``take_events``), writes it in one PostgreSQL transaction
(deduplicated by event id, so redelivery is harmless) and then moves the Redis gate counters.
A poison event is logged and skipped: these topics are written by our own agents only, and a
read model must not stop for one bad record. A PostgreSQL or Redis outage holds the batch and
retries it with backoff until the dependency is back (``eatcloud.outages``): a crashed agent
would come back without it. Trying a batch again is harmless, as redelivery is.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any

from eatcloud.agents.wiring import Wiring, header_text
from eatcloud.errors import PoisonMessage
from eatcloud.locks import gate
from eatcloud.outages import on_connection, outlasting
from eatcloud.postgres import read_models as rm
from eatcloud.resources import Services
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder

log = logging.getLogger(__name__)

ORDER_EVENTS: Decoder[Any] = Decoder(r.OrderEventRecord)
STOCK_EVENTS: Decoder[Any] = Decoder(r.StockEventRecord)
POINTS_EVENTS: Decoder[Any] = Decoder(r.PointsEventRecord)
BATCH, WITHIN = 500, 0.05
ENDED = (r.OrderRejected, r.OrderCancelled)


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
        out.append((record, header_text(event)))
    return out


async def _project_orders(services: Services, batch: list[tuple[Any, dict[str, str]]]) -> None:
    pool, redis = await services.pool(), services.redis()
    records = [record for record, _ in batch]
    fresh = await on_connection(pool, lambda conn: rm.apply_order_events(conn, records))
    new = {record.event_id for record in fresh}
    # Every ended order's gate holds go back, new event or not (giving back is idempotent):
    # a rebuild, or an earlier try of this batch, may have applied the event already.
    ended = [e.order_id for e, _ in batch if isinstance(e, ENDED)]
    if ended:
        await gate.give_back_all(redis, ended)
    for record, headers in batch:
        if record.event_id not in new:
            continue
        log.info(
            "projected %s order_id=%s request_id=%s traceparent=%s",
            record.type,
            record.order_id,
            headers.get("x-request-id"),
            headers.get("traceparent"),
        )


async def _project_stock(services: Services, lines: list[Any]) -> None:
    pool, redis = await services.pool(), services.redis()
    await on_connection(pool, lambda conn: rm.apply_stock_events(conn, lines))
    await gate.apply_all(redis, lines)


async def _project_points(services: Services, changes: list[Any]) -> None:
    pool = await services.pool()
    await on_connection(pool, lambda conn: rm.apply_points_events(conn, changes))


def register(wiring: Wiring) -> None:
    app, services = wiring.app, wiring.services

    @app.agent(wiring.topics[t.ORDER_EVENTS], name="order-projection")  # type: ignore[untyped-decorator]
    async def order_projection(stream: Any) -> None:
        """Order events -> order_view, order_timeline, store_sales (PostgreSQL)."""
        async for events in stream.take_events(BATCH, within=WITHIN):
            batch = _decoded(events, ORDER_EVENTS)
            await outlasting("order projection", partial(_project_orders, services, batch))

    @app.agent(wiring.topics[t.STOCK_EVENTS], name="stock-projection")  # type: ignore[untyped-decorator]
    async def stock_projection(stream: Any) -> None:
        """Stock events -> stock_view (PostgreSQL) and the checkout's Redis stock gate."""
        async for events in stream.take_events(BATCH, within=WITHIN):
            # one record per ledger line, for both (the gate dedupes by item version itself)
            lines = r.stock_lines(record for record, _ in _decoded(events, STOCK_EVENTS))
            await outlasting("stock projection", partial(_project_stock, services, lines))

    @app.agent(wiring.topics[t.POINTS_EVENTS], name="points-projection")  # type: ignore[untyped-decorator]
    async def points_projection(stream: Any) -> None:
        """Points events -> points_view, points_history (the customers' wallets)."""
        async for events in stream.take_events(BATCH, within=WITHIN):
            changes = [record for record, _ in _decoded(events, POINTS_EVENTS)]
            await outlasting("points projection", partial(_project_points, services, changes))
