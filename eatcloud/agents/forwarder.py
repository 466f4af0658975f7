"""The Kinesis forwarder: order-events and stock-events -> the analytics stream.

Each record's data is ``{"topic", "event", "headers"}``: the event exactly as it is on Kafka
(embedded, not re-encoded) and its trace headers (``traceparent``, ``x-request-id``,
``event_id``), so analysts can follow an order from the HTTP request onwards. The partition
key is the Kafka key: the order id for order events, the store id for stock events, so each
key's events stay in order in one shard. A batch is committed to Kafka only when Kinesis
holds all of it (at-least-once: after a crash, analysts may see an event twice, with the same
``event_id``).

The forwarder reads on a consumer group of its own (``<app id>-kinesis``), not through the
worker's Faust consumer. Faust hands each record of a partition to every agent that reads the
topic, and waits for the slowest: a Kinesis that slows down (throttling, an outage, an
emulator that grows slow as it fills) used to hold back the projections beside it, so the
orders customers and stores see stopped moving (`make soak` found it: order_view stalled while
the forwarder waited on PutRecords). Now a slow Kinesis only delays analytics; its lag shows
on the group's offsets. Each worker of the cluster runs one consumer of the group, so the
partitions are shared out as the saga's are.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

import orjson
from aiokafka.errors import CommitFailedError, KafkaError
from botocore.exceptions import BotoCoreError, ClientError

from eatcloud.agents.wiring import CARRIED, Wiring
from eatcloud.errors import InfrastructureError
from eatcloud.kinesis.forwarder import Entry, KinesisForwarder
from eatcloud.kinesis.streams import ensure_stream
from eatcloud.outages import transient
from eatcloud.resources import ConsumerRecord, Services
from eatcloud.runtime.adapter import header_text
from eatcloud.streams import topics as t

log = logging.getLogger(__name__)

BATCH, WITHIN_MS = 500, 200
# Kafka's, Kinesis's and our Kinesis adapter's "try again" errors (outages aside).
_TRY_AGAIN = (KafkaError, InfrastructureError, BotoCoreError, ClientError)
TOPICS = (t.ORDER_EVENTS, t.STOCK_EVENTS)
_HEADERS = {*CARRIED, "event_id"}


def entry(topic: str, record: ConsumerRecord) -> Entry:
    """The Kinesis record for one Kafka record of ``topic`` (its name without the prefix)."""
    headers = {k: v for k, v in header_text(record.headers).items() if k in _HEADERS}
    key = (record.key or b"").decode()
    data = orjson.dumps(
        {"topic": topic, "event": orjson.Fragment(record.value or b"null"), "headers": headers}
    )
    return Entry(partition_key=key, data=data)


def group_of(app_id: str) -> str:
    return f"{app_id}-kinesis"


async def forward(
    services: Services, prefix: str, group: str, keep_going: Callable[[], bool] = lambda: True
) -> None:
    """Forward until ``keep_going()`` says stop (or the task is cancelled). A failure of Kafka
    or Kinesis raises: the caller starts again from the group's last commit."""
    settings = services.settings
    client, stream = services.kinesis(), settings.kinesis.stream_name
    if settings.kinesis.create_stream:
        summary = await asyncio.to_thread(ensure_stream, settings, client=client)
        log.info("kinesis stream %s: %s", stream, summary)
    kinesis = KinesisForwarder(client, stream, metrics=services.metrics)
    consumer = services.open_consumer([prefix + topic for topic in TOPICS], group)
    await consumer.start()
    try:
        while keep_going():
            batches = await consumer.getmany(timeout_ms=WITHIN_MS, max_records=BATCH)
            if not batches:
                continue
            await kinesis.put(_entries(prefix, batches.values()))
            try:
                await consumer.commit()
            except CommitFailedError as exc:  # the group rebalanced: others forward it again
                log.warning("kinesis forwarder: commit refused (%s); records will repeat", exc)
    finally:
        await consumer.stop()


def _entries(prefix: str, batches: Iterable[list[ConsumerRecord]]) -> Iterable[Entry]:
    for records in batches:
        for record in records:
            yield entry(record.topic.removeprefix(prefix), record)


def register(wiring: Wiring) -> None:
    """Run the forwarder in this worker for as long as it runs, restarting it on failures."""
    app, services, settings = wiring.app, wiring.services, wiring.settings
    prefix, group = settings.kafka.topic_prefix, group_of(settings.worker.app_id)

    @app.task  # type: ignore[untyped-decorator]  # faust is untyped
    async def kinesis_forwarder() -> None:
        """order-events and stock-events -> the Kinesis analytics stream"""
        backoff = 1.0
        while True:
            started = time.monotonic()
            try:
                await forward(services, prefix, group)
            except Exception as exc:
                if not transient(exc, _TRY_AGAIN):
                    raise
                if time.monotonic() - started > 60:  # it had been working: start over
                    backoff = 1.0
                log.warning("kinesis forwarder stopped (%r); again in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
