"""Read a topic from its start up to the end it had when reading began (for operator tools).

The projections rebuild, ``saga show`` and ``dlq list|replay`` all need the same thing: every
message of some partitions, once, and then stop. No consumer group is involved; partitions
are assigned by hand, so nothing is committed and a running worker is not disturbed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition

from eatcloud.settings import Settings
from eatcloud.streams.connect import client_options

Progress = Callable[[str, int, int], None]  # (topic, done, total)


async def partitions_of(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    """The partitions of ``topic`` (none if it does not exist), asking the cluster.

    A consumer knows only the topics it subscribed to; this one is assigned by hand, so ask
    for the whole cluster's metadata (which, unlike asking for one topic, never auto-creates).
    """
    cluster = await consumer._client.fetch_all_metadata()  # aiokafka has no public call
    return set(cluster.partitions_for_topic(topic) or ())


async def read_to_end(
    settings: Settings,
    topic: str,
    partitions: Iterable[int] | None = None,
    progress: Progress = lambda *_: None,
    *,
    start: dict[int, int] | None = None,
) -> AsyncIterator[list[ConsumerRecord[bytes, bytes]]]:
    """Batches of ``topic``'s messages (all partitions unless given), up to today's end.

    ``start`` maps a partition to the offset to begin at (default: the beginning). A topic
    that does not exist yields nothing.
    """
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka),
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        known = await partitions_of(consumer, topic)
        chosen = sorted(known if partitions is None else set(partitions) & known)
        tps = [TopicPartition(topic, p) for p in chosen]
        if not tps:
            return
        consumer.assign(tps)
        first = await consumer.beginning_offsets(tps)
        end = await consumer.end_offsets(tps)
        for tp in tps:
            begin = max(first[tp], (start or {}).get(tp.partition, first[tp]))
            first[tp] = min(begin, end[tp])
            consumer.seek(tp, first[tp])
        total = sum(end[tp] - first[tp] for tp in tps)
        done = 0
        progress(topic, 0, total)
        while [tp for tp in tps if await consumer.position(tp) < end[tp]]:
            batches = await consumer.getmany(*tps, timeout_ms=1000, max_records=2000)
            batch = [
                message
                for tp, messages in batches.items()
                for message in messages
                if message.offset < end[tp]
            ]
            done += len(batch)
            if batch:
                yield batch
            progress(topic, done, total)
    finally:
        await consumer.stop()


def headers_of(message: Any) -> dict[str, str]:
    """A consumed message's headers as text."""
    return {
        key: bytes(value).decode("utf-8", "replace") if value is not None else ""
        for key, value in message.headers or ()
    }
