"""Produce and collect JSON messages on the real broker, for tests."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic


async def create_topic(bootstrap: str, name: str, partitions: int = 1) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        await admin.close()


async def produce(bootstrap: str, topic: str, messages: Iterable[tuple[str, Any]]) -> int:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    count = 0
    try:
        batch = []
        for key, value in messages:
            batch.append(await producer.send(topic, orjson.dumps(value), key=key.encode()))
            count += 1
        await asyncio.gather(*batch)
    finally:
        await producer.stop()
    return count


async def collect(
    bootstrap: str,
    topic: str,
    until: Callable[[list[dict[str, Any]]], bool],
    within: float,
    *,
    read_committed: bool = False,
) -> list[dict[str, Any]]:
    """Read ``topic`` from the start until ``until(values)`` holds; fail after ``within`` s.

    Batch envelopes (the saga's own topics) are opened: each of their records is one value."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        isolation_level="read_committed" if read_committed else "read_uncommitted",
        metadata_max_age_ms=1000,
    )
    await consumer.start()
    values: list[dict[str, Any]] = []
    deadline = time.monotonic() + within
    try:
        while not until(values):
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{topic}: condition not met after {within:.0f} s ({len(values)} messages)"
                )
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for records in batches.values():
                for record in records:
                    value = orjson.loads(record.value)
                    batch = value.get("items") if value.get("type") == "Batch" else None
                    values.extend(item["v"] for item in batch) if batch else values.append(value)
    finally:
        await consumer.stop()
    return values
