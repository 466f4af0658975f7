"""The event log keeps every event: created so, checked at start-up, and a rebuild refuses a
log that has lost its beginning (real broker, real worker)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.admin.records_to_delete import RecordsToDelete

from eatcloud.errors import EXIT_HISTORY_AT_RISK
from eatcloud.postgres.rebuild import HistoryLost, check_history
from eatcloud.settings import Settings
from eatcloud.streams import retention
from eatcloud.streams import topics as t
from tests.integration.saga_harness import saga_worker, unique_prefix

DYNAMIC_TOPIC_CONFIG = 1  # a setting made on the topic itself, not a broker default


@pytest.fixture
async def admin(stack: Settings) -> AsyncIterator[AIOKafkaAdminClient]:
    client = AIOKafkaAdminClient(bootstrap_servers=stack.kafka.bootstrap_servers)
    await client.start()
    yield client
    await client.close()


def with_prefix(stack: Settings, prefix: str) -> Settings:
    return stack.model_copy(
        update={"kafka": stack.kafka.model_copy(update={"topic_prefix": prefix})}
    )


async def own_settings(admin: AIOKafkaAdminClient, topic: str) -> dict[str, Any]:
    described = await admin.describe_configs(
        [ConfigResource(ConfigResourceType.TOPIC, topic, None)]
    )
    (resource,) = described[0].resources
    return {e[0]: e[1] for e in resource[4] if e[3] == DYNAMIC_TOPIC_CONFIG}


def wait_for_exit(worker: Any, within: float) -> int:
    assert worker.proc is not None
    try:
        return int(worker.proc.wait(timeout=within))
    except subprocess.TimeoutExpired:
        worker.stop()
        raise AssertionError(f"the worker kept running\n{worker.tail(40)}") from None


async def test_the_worker_creates_the_event_topics_to_keep_every_event(
    stack: Settings, tmp_path: Path, admin: AIOKafkaAdminClient
) -> None:
    prefix = unique_prefix("keep")
    worker = saga_worker(tmp_path, stack.kafka.bootstrap_servers, prefix)
    worker.start()
    try:
        names = {prefix + topic for topic in t.EVENT_LOG}
        for _ in range(120):
            if names <= set(await admin.list_topics()):
                break
            await asyncio.sleep(0.5)
        for name in sorted(names):
            assert await own_settings(admin, name) == t.KEEP_FOREVER, name
        assert await retention.problems(with_prefix(stack, prefix)) == []
    finally:
        worker.stop()


async def test_a_worker_refuses_an_event_log_that_deletes_events_until_it_is_fixed(
    stack: Settings, tmp_path: Path, admin: AIOKafkaAdminClient
) -> None:
    prefix = unique_prefix("refuse")
    week = {"retention.ms": str(7 * 24 * 3600 * 1000), "min.insync.replicas": "1"}
    compacted = {"cleanup.policy": "compact"}  # one record per key: history lost too
    await admin.create_topics(
        [
            NewTopic(prefix + t.ORDER_EVENTS, 4, 1, topic_configs=week),
            NewTopic(prefix + t.STOCK_EVENTS, 4, 1, topic_configs=compacted),
        ]
    )
    worker = saga_worker(tmp_path, stack.kafka.bootstrap_servers, prefix)
    worker.start()
    assert wait_for_exit(worker, 120) == EXIT_HISTORY_AT_RISK
    said = worker.tail(20)
    assert "refuses to run" in said and "retention.ms=604800000" in said, said
    assert "cleanup.policy=compact" in said and "eatcloud topics keep-history" in said, said

    settings = with_prefix(stack, prefix)
    changed = await retention.keep_history(settings)
    # the two made to lose history (the worker created points-events itself, keeping all)
    assert sorted(changed) == sorted(prefix + topic for topic in (t.ORDER_EVENTS, t.STOCK_EVENTS))
    assert await own_settings(admin, prefix + t.ORDER_EVENTS) == {
        **t.KEEP_FOREVER,
        "min.insync.replicas": "1",  # the topic's other settings stay
    }
    assert await retention.problems(settings) == []
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while "the event log keeps every event" not in worker.tail(200):
            assert worker.proc is not None and worker.proc.poll() is None, worker.tail(40)
            assert time.monotonic() < deadline, f"the check never passed\n{worker.tail(40)}"
            await asyncio.sleep(0.5)
    finally:
        worker.stop()


async def test_a_rebuild_refuses_a_log_that_no_longer_starts_at_offset_zero(
    stack: Settings, admin: AIOKafkaAdminClient
) -> None:
    prefix = unique_prefix("lost")
    events = prefix + t.ORDER_EVENTS
    await admin.create_topics(
        [NewTopic(prefix + topic, 2, 1, topic_configs=t.configs(topic)) for topic in t.EVENT_LOG]
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack.kafka.bootstrap_servers)
    await producer.start()
    try:
        for n in range(4):
            await producer.send_and_wait(events, b"{}", partition=1, key=b"k%d" % n)
    finally:
        await producer.stop()
    settings = with_prefix(stack, prefix)
    await check_history(settings, [prefix + topic for topic in t.EVENT_LOG])  # whole: fine

    await admin.delete_records({TopicPartition(events, 1): RecordsToDelete(before_offset=2)})
    with pytest.raises(HistoryLost, match=rf"{events}\[1\] starts at offset 2"):
        await check_history(settings, [prefix + topic for topic in t.EVENT_LOG])
