"""The framework workarounds of ``eatcloud.runtime.faust_patches``, against the real broker."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from eatcloud.runtime import faust_patches
from eatcloud.settings import Settings
from tests.integration.saga_harness import unique_prefix


async def _create(bootstrap: str, *names: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(n, num_partitions=4, replication_factor=1) for n in names]
        )
    finally:
        await admin.close()


async def test_a_record_queued_for_a_known_topic_goes_out_when_the_producer_meets_a_new_one(
    stack: Settings,
) -> None:
    """The saga's first unit on a fresh broker: a command for a topic that existed when the
    producer started, then an event for a topic created after. Without the workaround the
    command waits forever (aiokafka 0.14.0 forgets the untracked topic's leader)."""
    faust_patches.track_every_topic_a_producer_sends_to()
    bootstrap = stack.kafka.bootstrap_servers
    prefix = unique_prefix("patch")
    known, late = prefix + "commands", prefix + "events"
    await _create(bootstrap, known)
    # A long linger keeps the first record queued while the second send refreshes metadata.
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=500)
    await producer.start()
    try:
        # The scenario: the producer knows ``known`` from a metadata answer for all topics
        # (it tracks none yet), as Faust's producer does after creating the app's topics.
        for _ in range(50):
            await producer.client.force_metadata_update()
            if known in producer.client.cluster.topics():
                break
            await asyncio.sleep(0.2)
        assert known in producer.client.cluster.topics()
        await _create(bootstrap, late)
        first = await producer.send(known, b"command", key=b"store-1")
        second = await producer.send(late, b"event", key=b"order-1")
        done = await asyncio.wait_for(asyncio.gather(first, second), timeout=20)
        assert [m.topic for m in done] == [known, late]
    finally:
        await producer.stop()
