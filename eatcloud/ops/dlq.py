"""``eatcloud dlq list|replay``: the poison messages the agents parked, and sending them back.

An agent that cannot handle a message sends it, unchanged, to ``<topic>-dlq`` with the error
and where it came from in headers (``agents/wiring.py``). Once the cause is fixed (a new
version deployed, bad reference data corrected), ``replay`` sends each parked message back to
the topic its DLQ belongs to (``<topic>``, from the DLQ's name, never from a header the message
carries), with its key and its original headers, and records how far it got as
the committed offset of the consumer group ``<app id>-dlq-replay``. So a message is replayed
once; a crash between the send and the commit replays the last batch again, which the agents
absorb (they recognise a repeated message by its id, as after any redelivery). ``list`` marks
what was already replayed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from aiokafka.structs import OffsetAndMetadata

from eatcloud.resources import Services
from eatcloud.settings import Settings
from eatcloud.streams import topics as t
from eatcloud.streams.connect import client_options
from eatcloud.streams.reading import headers_of, partitions_of, read_to_end

# Headers the DLQ adds; everything else is the message's own and goes back with it.
_DLQ_HEADERS = ("x-error-", "x-original-")


@dataclass(frozen=True)
class Parked:
    topic: str
    partition: int
    offset: int
    key: str
    type: str  # the record's "type", or "?" when the value is not a JSON object
    reason: str
    detail: str
    origin: str  # topic[partition]@offset it was read from
    replayed: bool


def dlq_topics(settings: Settings, topic: str | None = None) -> list[str]:
    """The DLQ topics (with the deployment's prefix); ``topic`` picks one by input name."""
    names = [t.dlq(name) for name in t.INPUTS]
    if topic is not None:
        wanted = topic.removeprefix(settings.kafka.topic_prefix)
        names = [n for n in names if wanted in (n, n.removesuffix("-dlq"))]
        if not names:
            choices = ", ".join(t.INPUTS)
            raise ValueError(f"no DLQ for {topic!r}; the inputs are: {choices}")
    return [settings.kafka.topic_prefix + n for n in names]


def replay_group(settings: Settings) -> str:
    return f"{settings.worker.app_id}-dlq-replay"


async def replayed_up_to(settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
    """The replay group's committed offset per DLQ partition (0 where it never replayed)."""
    consumer = AIOKafkaConsumer(
        **client_options(settings.kafka),
        group_id=replay_group(settings),
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        marks = {}
        for topic in topics:
            for partition in await partitions_of(consumer, topic):
                tp = TopicPartition(topic, partition)
                marks[tp] = await consumer.committed(tp) or 0
        return marks
    finally:
        await consumer.stop()


def _describe(message: ConsumerRecord[bytes, bytes], topic: str, replayed: bool) -> Parked:
    headers = headers_of(message)
    try:
        decoded = orjson.loads(message.value or b"")
        kind = str(decoded.get("type", "?")) if isinstance(decoded, dict) else "?"
    except orjson.JSONDecodeError:
        kind = "?"
    return Parked(
        topic=topic,
        partition=message.partition,
        offset=message.offset,
        key=(message.key or b"").decode("utf-8", "replace"),
        type=kind,
        reason=headers.get("x-error-reason", ""),
        detail=headers.get("x-error-detail", ""),
        origin=(
            f"{headers.get('x-original-topic', '?')}[{headers.get('x-original-partition', '?')}]"
            f"@{headers.get('x-original-offset', '?')}"
        ),
        replayed=replayed,
    )


async def parked(settings: Settings, topic: str | None = None) -> list[Parked]:
    """Every message in the DLQ topics, oldest first per partition."""
    topics = dlq_topics(settings, topic)
    marks = await replayed_up_to(settings, topics)
    found = []
    for name in topics:
        async for batch in read_to_end(settings, name):
            for message in batch:
                mark = marks.get(TopicPartition(name, message.partition), 0)
                found.append(_describe(message, name, message.offset < mark))
    return found


async def replay(
    services: Services,
    topic: str | None = None,
    progress: Callable[[str, int, int], None] = lambda *_: None,
) -> list[Parked]:
    """Send every not yet replayed parked message back to its topic; returns what was sent."""
    settings = services.settings
    topics = dlq_topics(settings, topic)
    marks = await replayed_up_to(settings, topics)
    producer = await services.producer()
    committer = AIOKafkaConsumer(
        **client_options(settings.kafka),
        group_id=replay_group(settings),
        enable_auto_commit=False,
    )
    await committer.start()
    committer.assign(list(marks))  # aiokafka commits only for assigned partitions
    sent: list[Parked] = []
    try:
        for name in topics:
            start = {tp.partition: offset for tp, offset in marks.items() if tp.topic == name}
            async for batch in read_to_end(settings, name, progress=progress, start=start):
                done: dict[TopicPartition, OffsetAndMetadata] = {}
                for message in batch:
                    headers = headers_of(message)
                    # Back to the topic this DLQ belongs to, never to one a header names:
                    # the parked message's headers are as trustworthy as the message was.
                    origin = name.removesuffix("-dlq")
                    kept = [
                        (k, v.encode())
                        for k, v in headers.items()
                        if not k.startswith(_DLQ_HEADERS)
                    ]
                    where = f"{name}[{message.partition}]@{message.offset}"
                    kept.append(("x-replayed-from", where.encode()))
                    ack = await producer.send(
                        origin, value=message.value, key=message.key, headers=kept
                    )
                    await ack  # acknowledged before the next one is sent
                    sent.append(_describe(message, name, True))
                    done[TopicPartition(name, message.partition)] = OffsetAndMetadata(
                        message.offset + 1, ""
                    )
                await committer.commit(done)
    finally:
        await committer.stop()
    return sent
