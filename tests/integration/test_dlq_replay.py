"""``eatcloud dlq replay`` on the real broker: a parked message goes back to the topic its DLQ
belongs to, whatever its own headers claim (a poisoned message chooses none of its route)."""

from __future__ import annotations

from aiokafka import AIOKafkaProducer

from eatcloud.bootstrap import build
from eatcloud.ops.dlq import replay
from eatcloud.settings import Settings
from eatcloud.streams.reading import read_to_end
from tests.integration.kafka_io import create_topic
from tests.integration.workers import unique_prefix


async def test_replay_sends_back_to_the_dlqs_own_topic_not_to_a_header(settings: Settings) -> None:
    prefix = unique_prefix("dlq")
    mine = settings.model_copy(
        update={"kafka": settings.kafka.model_copy(update={"topic_prefix": prefix})}
    )
    bootstrap = settings.kafka.bootstrap_servers
    for name in ("order-commands", "order-commands-dlq", "saga-replies"):
        await create_topic(bootstrap, prefix + name)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            prefix + "order-commands-dlq",
            value=b'{"type": "PaymentAuthorized"}',
            key=b"order-1",
            headers=[
                ("x-original-topic", (prefix + "saga-replies").encode()),
                ("x-error-reason", b"PoisonMessage"),
            ],
        )
    finally:
        await producer.stop()

    async with build(mine) as services:
        sent = await replay(services, "order-commands")
    assert [p.key for p in sent] == ["order-1"], sent

    async def keys(topic: str) -> list[bytes | None]:
        return [m.key async for batch in read_to_end(mine, prefix + topic) for m in batch]

    assert await keys("order-commands") == [b"order-1"]
    assert await keys("saga-replies") == []
