"""The Kinesis forwarder: order-events and stock-events -> the analytics stream.

Each record's data is ``{"topic", "event", "headers"}``: the event exactly as it is on Kafka
(embedded, not re-encoded) and its trace headers (``traceparent``, ``x-request-id``,
``event_id``), so analysts can follow an order from the HTTP request onwards. The partition
key is the Kafka key: the order id for order events, the store id for stock events, so each
key's events stay in order in one shard. A batch is acknowledged to Kafka only when Kinesis
holds all of it (at-least-once: after a crash, analysts may see an event twice, with the same
``event_id``).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import orjson

from eatcloud.agents.wiring import CARRIED, Wiring, header_text
from eatcloud.kinesis.forwarder import Entry, KinesisForwarder
from eatcloud.kinesis.streams import ensure_stream
from eatcloud.streams import topics as t

log = logging.getLogger(__name__)

BATCH, WITHIN = 500, 0.2
_HEADERS = {*CARRIED, "event_id"}


def entry(topic: str, event: Any) -> Entry:
    message = event.message
    headers = {k: v for k, v in header_text(event).items() if k in _HEADERS}
    key = message.key.decode() if isinstance(message.key, bytes) else str(message.key)
    data = orjson.dumps(
        {"topic": topic, "event": orjson.Fragment(message.value), "headers": headers}
    )
    return Entry(partition_key=key, data=data)


def register(wiring: Wiring) -> None:
    app, services, settings = wiring.app, wiring.services, wiring.settings
    forwarders: list[KinesisForwarder] = []
    ready = asyncio.Lock()

    async def forwarder() -> KinesisForwarder:
        async with ready:
            if not forwarders:
                client, stream = services.kinesis(), settings.kinesis.stream_name
                if settings.kinesis.create_stream:
                    summary = await asyncio.to_thread(ensure_stream, settings, client=client)
                    log.info("kinesis stream %s: %s", stream, summary)
                forwarders.append(KinesisForwarder(client, stream, metrics=services.metrics))
        return forwarders[0]

    def forward(topic: str) -> Any:
        async def agent(stream: Any) -> None:
            async for events in stream.take_events(BATCH, within=WITHIN):
                kinesis = await forwarder()
                await kinesis.put(entry(topic, event) for event in events)

        agent.__name__ = f"kinesis_{topic.replace('-', '_')}"
        agent.__doc__ = f"{topic} -> the Kinesis analytics stream"
        return agent

    for topic in (t.ORDER_EVENTS, t.STOCK_EVENTS):
        app.agent(wiring.topics[topic], name=f"kinesis-{topic}")(forward(topic))
