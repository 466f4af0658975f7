"""The outbox relay against the real PostgreSQL and Kafka: once per row, in order, no loss."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from eatcloud.agents.relay import OutboxRelay
from eatcloud.postgres import create_pool
from eatcloud.postgres.outbox import backlog, enqueue
from eatcloud.settings import Settings
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from tests.integration.databases import fresh_database
from tests.integration.kafka_io import collect, create_topic
from tests.integration.saga_harness import unique_prefix


async def _fill(pool: Any, stores: int, per_store: int) -> None:
    """Interleaved adjustments: store s gets deltas 1..per_store, each its own transaction."""
    for seq in range(1, per_store + 1):
        for s in range(stores):
            async with pool.acquire() as conn, conn.transaction():
                record = r.AdjustStock(store_id=f"s{s}", menu_id="m", delta=seq)
                await enqueue(conn, record, aggregate_type="stock", headers={"x-request-id": "t"})


def _in_order(values: list[dict[str, Any]]) -> dict[str, list[int]]:
    seen: dict[str, list[int]] = defaultdict(list)
    for value in values:
        seen[value["store_id"]].append(value["delta"])
    return seen


async def test_two_relays_at_once_publish_each_row_once_in_order_per_aggregate(
    settings: Settings,
) -> None:
    bootstrap, prefix = settings.kafka.bootstrap_servers, unique_prefix("relay")
    await create_topic(bootstrap, prefix + t.STOCK_COMMANDS, 4)
    stores, per_store = 20, 40
    async with fresh_database(settings) as db:
        pool = await create_pool(db.postgres, max_size=6)
        producers = [AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all") for _ in range(2)]
        for producer in producers:
            await producer.start()
        relays = [OutboxRelay(pool, p, topic_prefix=prefix, batch=50) for p in producers]
        running = True
        tasks = [asyncio.create_task(relay.run(lambda: running)) for relay in relays]
        try:
            await _fill(pool, stores, per_store)
            values = await collect(
                bootstrap,
                prefix + t.STOCK_COMMANDS,
                lambda vs: len(vs) >= stores * per_store,
                within=60,
            )
            await asyncio.sleep(1.0)  # anything published twice would arrive by now
            again = await collect(
                bootstrap, prefix + t.STOCK_COMMANDS, lambda vs: len(vs) >= len(values), 30
            )
            async with pool.acquire() as conn:
                left, _ = await backlog(conn)
        finally:
            running = False
            await asyncio.wait_for(asyncio.gather(*tasks), 10)
            for producer in producers:
                await producer.stop()
            await pool.close()
    event_ids = [v["event_id"] for v in again]
    assert len(event_ids) == len(set(event_ids)) == stores * per_store
    assert all(relay.published > 0 for relay in relays), [x.published for x in relays]
    assert _in_order(again) == {f"s{s}": list(range(1, per_store + 1)) for s in range(stores)}
    assert left == 0


class _FlakyBroker:
    """The real producer, except that the first ``failures`` sends fail like a broker outage."""

    def __init__(self, producer: AIOKafkaProducer, failures: int) -> None:
        self.producer, self.failures = producer, failures

    async def send(self, *args: Any, **kwargs: Any) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise KafkaConnectionError("broker unreachable (injected)")
        return await self.producer.send(*args, **kwargs)

    async def partitions_for(self, topic: str) -> Any:
        if self.failures > 0:
            self.failures -= 1
            raise KafkaConnectionError("broker unreachable (injected)")
        return await self.producer.partitions_for(topic)


async def test_a_broker_outage_keeps_the_rows_and_they_go_out_once_it_is_back(
    settings: Settings,
) -> None:
    bootstrap, prefix = settings.kafka.bootstrap_servers, unique_prefix("relay")
    await create_topic(bootstrap, prefix + t.STOCK_COMMANDS, 4)
    async with fresh_database(settings) as db:
        pool = await create_pool(db.postgres, max_size=4)
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
        await producer.start()
        try:
            await _fill(pool, stores=3, per_store=5)
            relay = OutboxRelay(pool, _FlakyBroker(producer, failures=3), topic_prefix=prefix)  # type: ignore[arg-type]
            for _ in range(3):  # each round fails on its first send and rolls back
                with pytest.raises(KafkaConnectionError):
                    await relay.publish_once()
            conn = await asyncpg.connect(dsn=db.postgres.dsn())
            try:
                during, _ = await backlog(conn)
                assert during == 15  # nothing marked published while the broker was away
                running = True
                task = asyncio.create_task(relay.run(lambda: running))
                values = await collect(
                    bootstrap, prefix + t.STOCK_COMMANDS, lambda vs: len(vs) >= 15, within=30
                )
                running = False
                await asyncio.wait_for(task, 10)
                after, _ = await backlog(conn)
            finally:
                await conn.close()
        finally:
            await producer.stop()
            await pool.close()
    assert after == 0
    assert len({v["event_id"] for v in values}) == len(values) == 15
    assert _in_order(values) == {f"s{s}": [1, 2, 3, 4, 5] for s in range(3)}
