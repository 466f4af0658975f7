"""Rebuild the read models from the event log: empty them, replay the topics from offset 0.

Events are the source of truth (event sourcing); the read models are disposable. The replay
reads every partition of ``order-events`` and ``stock-events`` from the beginning up to the
end offsets seen at the start, and applies them with the projections' own functions. A worker
running at the same time is harmless: ``processed_events`` makes each event apply once.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from eatcloud.errors import PoisonMessage
from eatcloud.postgres import read_models as rm
from eatcloud.resources import Connection, Pool, Services
from eatcloud.settings import Settings
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder
from eatcloud.streams.reading import Progress, read_to_end

TABLES = ("order_view", "order_timeline", "stock_view", "store_sales")
# A projection's function: applies a batch of decoded events on one connection.
Apply = Callable[[Connection, list[Any]], Awaitable[object]]


@dataclass(frozen=True)
class Rebuilt:
    events: dict[str, int]
    skipped: int


async def rebuild(services: Services, progress: Progress = lambda *_: None) -> Rebuilt:
    settings, pool = services.settings, await services.pool()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(f"TRUNCATE {', '.join(TABLES)}")
        await conn.execute(
            "DELETE FROM processed_events WHERE consumer = ANY($1::text[])",
            [rm.ORDER_VIEW, rm.STOCK_VIEW],
        )
    counts, skipped = {}, 0
    plan: list[tuple[str, Decoder[Any], Apply]] = [
        (t.STOCK_EVENTS, Decoder(r.StockEventRecord), rm.apply_stock_events),
        (t.ORDER_EVENTS, Decoder(r.OrderEventRecord), rm.apply_order_events),
    ]
    for topic, decoder, apply in plan:
        name = settings.kafka.topic_prefix + topic
        done, bad = await _replay(settings, name, decoder, pool, apply, progress)
        counts[topic], skipped = done, skipped + bad
    return Rebuilt(counts, skipped)


async def _replay(
    settings: Settings,
    topic: str,
    decoder: Decoder[Any],
    pool: Pool,
    apply: Apply,
    progress: Progress,
) -> tuple[int, int]:
    done = skipped = 0
    async for batch in read_to_end(settings, topic, progress=progress):
        records = []
        for message in batch:
            done += 1
            try:
                records.append(decoder(message.value))
            except PoisonMessage:
                skipped += 1
        async with pool.acquire() as conn:
            await apply(conn, records)
    return done, skipped
