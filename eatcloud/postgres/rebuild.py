"""Rebuild the read models from the event log, into shadow tables swapped in at once.

Events are the source of truth (event sourcing); the read models are disposable. A rebuild:

1. checks that the log is whole: every partition of ``order-events``, ``stock-events`` and
   ``points-events`` still starts at offset 0 (a retention that deleted old events would turn
   old orders into nothing; the rebuild then refuses and says so, ``HistoryLost``);
2. creates empty shadow tables (``order_view_next`` ...) and replays the topics from offset
   0 up to the end offsets seen at the start into them, with the projections' own functions
   (``into="_next"``, their own ``processed_events`` consumer). The live read models and the
   live projections go on meanwhile: the API never sees an empty or half-built view;
3. fences the live projections (an exclusive advisory lock; each live projection batch takes
   it shared, ``read_models.fenced``), reads what arrived since step 2 into the shadow tables,
   renames the shadow tables into place, drops the old ones and hands the shadow tables'
   ``processed_events`` over to the live consumers, all in one transaction. A live batch
   waiting on the fence then writes into the new tables, and finds the events the rebuild
   applied already recorded as processed.

Before this design the rebuild truncated the live tables while the live projections ran: an
event recorded as processed against a row the rebuild had just removed left its order at
PENDING for good.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from eatcloud.errors import PoisonMessage
from eatcloud.postgres import read_models as rm
from eatcloud.resources import Connection, Services
from eatcloud.settings import Settings
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder
from eatcloud.streams.connect import client_options
from eatcloud.streams.reading import Progress, partitions_of, read_to_end

TABLES = ("order_view", "order_timeline", "stock_view", "store_sales", "points_view",
          "points_history")  # fmt: skip
SHADOW = "_next"
CONSUMERS = (rm.ORDER_VIEW, rm.STOCK_VIEW, rm.POINTS_VIEW)  # their processed_events
# A projection's function: applies a batch of decoded events on one connection, into the
# tables with the given suffix.
Apply = Callable[[Connection, list[Any], str], Awaitable[object]]


class HistoryLost(RuntimeError):
    """The event log no longer starts at offset 0: a rebuild would lose what was deleted."""


@dataclass
class Rebuilt:
    events: dict[str, int] = field(default_factory=dict)
    skipped: int = 0


@dataclass(frozen=True)
class _Source:
    topic: str
    decoder: Decoder[Any]
    apply: Apply


async def rebuild(services: Services, progress: Progress = lambda *_: None) -> Rebuilt:
    settings, pool = services.settings, await services.pool()
    prefix = settings.kafka.topic_prefix
    sources = [
        _Source(prefix + t.STOCK_EVENTS, Decoder(r.StockEventRecord), rm.apply_stock_events),
        _Source(prefix + t.ORDER_EVENTS, Decoder(r.OrderEventRecord), rm.apply_order_events),
        _Source(prefix + t.POINTS_EVENTS, Decoder(r.PointsEventRecord), rm.apply_points_events),
    ]
    await check_history(settings, [source.topic for source in sources])
    async with pool.acquire() as conn, conn.transaction():
        for table in TABLES:
            await conn.execute(f"DROP TABLE IF EXISTS {table}{SHADOW}")
            await conn.execute(f"CREATE TABLE {table}{SHADOW} (LIKE {table} INCLUDING ALL)")
        await conn.execute(
            "DELETE FROM processed_events WHERE consumer = ANY($1::text[])",
            [consumer + SHADOW for consumer in CONSUMERS],
        )
    result = Rebuilt()
    reached: dict[str, dict[int, int]] = {}
    for source in sources:  # the bulk, next to the live projections

        async def on_its_own(records: list[Any], apply: Apply = source.apply) -> None:
            async with pool.acquire() as conn:
                await apply(conn, records, SHADOW)

        done = await _replay(settings, source, on_its_own, None, result, progress)
        reached[source.topic] = done
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", rm.FENCE)
        for source in sources:  # what came meanwhile, with the live projections held

            async def fenced(records: list[Any], apply: Apply = source.apply) -> None:
                await apply(conn, records, SHADOW)

            await _replay(settings, source, fenced, reached[source.topic], result, progress)
        await _swap(conn)
    return result


async def check_history(settings: Settings, topics: list[str]) -> None:
    """Raise ``HistoryLost`` unless every partition of ``topics`` still starts at offset 0."""
    consumer = AIOKafkaConsumer(**client_options(settings.kafka))
    await consumer.start()
    try:
        lost = []
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in sorted(await partitions_of(consumer, topic))]
            if not tps:
                continue
            for tp, first in (await consumer.beginning_offsets(tps)).items():
                if first > 0:
                    lost.append(f"{tp.topic}[{tp.partition}] starts at offset {first}")
    finally:
        await consumer.stop()
    if lost:
        raise HistoryLost(
            "the event log has lost its oldest events (" + "; ".join(lost) + "): a rebuild "
            "would turn the orders they told of into nothing, so the read models are left as "
            "they are. The event topics must keep every event (retention.ms=-1, see "
            "docs/operations.md); restore the log from a backup before rebuilding."
        )


async def _replay(
    settings: Settings,
    source: _Source,
    apply: Callable[[list[Any]], Awaitable[None]],
    start: dict[int, int] | None,
    result: Rebuilt,
    progress: Progress,
) -> dict[int, int]:
    """Apply ``source`` from ``start`` (default: offset 0) to its end, batch by batch; the
    next offset of every partition it read."""
    reached = dict(start or {})
    async for batch in read_to_end(settings, source.topic, progress=progress, start=start):
        records = []
        for message in batch:
            reached[message.partition] = max(reached.get(message.partition, 0), message.offset + 1)
            try:
                records.append(source.decoder(message.value))
            except PoisonMessage:
                result.skipped += 1
        topic = source.topic.removeprefix(settings.kafka.topic_prefix)
        result.events[topic] = result.events.get(topic, 0) + len(batch)
        await apply(records)
    return reached


async def _swap(conn: Connection) -> None:
    """The shadow tables take the live ones' names (and indexes), their processed events
    become the live consumers'; inside the fenced transaction. The new timeline is numbered
    after every number the live one gave out, in its own order: a live-update client resuming
    across the swap gets its events again rather than missing one the rebuild numbered
    early."""
    await conn.execute(
        f"""UPDATE order_timeline{SHADOW} t SET seq = n.base + n.rank
            FROM (SELECT order_id, event_id, row_number() OVER (ORDER BY seq) AS rank,
                         (SELECT last_value FROM order_timeline_seq) AS base
                  FROM order_timeline{SHADOW}) n
            WHERE (t.order_id, t.event_id) = (n.order_id, n.event_id)"""
    )
    await conn.execute(
        f"""SELECT setval('order_timeline_seq', max(seq)) FROM order_timeline{SHADOW}
            HAVING count(*) > 0"""
    )
    for table in TABLES:
        await conn.execute(f"DROP TABLE {table}")
        await conn.execute(f"ALTER TABLE {table}{SHADOW} RENAME TO {table}")
        indexes = await conn.fetch(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
            "AND tablename = $1 AND indexname LIKE $2",
            table,
            f"{table}{SHADOW}%",
        )
        for row in indexes:
            name = row["indexname"]
            original = table + name[len(table) + len(SHADOW) :]
            await conn.execute(f'ALTER INDEX "{name}" RENAME TO "{original}"')
    live = list(CONSUMERS)
    await conn.execute("DELETE FROM processed_events WHERE consumer = ANY($1::text[])", live)
    for consumer in live:
        await conn.execute(
            "UPDATE processed_events SET consumer = $1 WHERE consumer = $2",
            consumer,
            consumer + SHADOW,
        )
