"""A unit whose output the broker refuses stops the worker; its records are read again.

``order-events`` is created so small that the broker refuses every record on it, as a broker
refuses writes during an outage or to a principal without ACLs. The worker must not go on
(nor acknowledge the unit): it exits with ``EXIT_UNIT_FAILED``. Once the topic is fixed, the
restarted worker reads the same order again and the order's history is whole and single.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from eatcloud.errors import EXIT_UNIT_FAILED
from eatcloud.settings import Settings
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from tests.integration.saga_harness import Bus, order, saga_worker, unique_prefix


async def _admin(bootstrap: str) -> AIOKafkaAdminClient:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    return admin


async def test_a_unit_the_broker_refuses_stops_the_worker_and_is_read_again(
    stack: Settings, tmp_path: Path
) -> None:
    bootstrap = stack.kafka.bootstrap_servers
    prefix = unique_prefix("refused")
    events = prefix + "order-events"
    admin = await _admin(bootstrap)
    try:
        # smaller than any record batch (and keeping every event, or the worker refuses)
        small = {"max.message.bytes": "64", **t.configs(t.ORDER_EVENTS)}
        await admin.create_topics([NewTopic(events, 4, 1, topic_configs=small)])
    finally:
        await admin.close()
    worker = saga_worker(tmp_path, bootstrap, prefix)
    bus = Bus(bootstrap, prefix)
    await bus.start()
    worker.start()
    try:
        await bus.adjust(r.AdjustStock(store_id="store-r", menu_id="menu-r", delta=3))
        placed = order("store-r", [("menu-r", 1, 10_000)], customer="buyer-r")
        await bus.send(placed)

        assert worker.proc is not None
        try:
            status = await asyncio.to_thread(worker.proc.wait, 90)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"the worker went on after a refused unit:\n{worker.tail()}"
            ) from None
        assert status == EXIT_UNIT_FAILED, worker.tail()
        assert "a unit failed half way" in worker.tail(200)

        admin = await _admin(bootstrap)
        try:
            # AlterConfigs replaces every topic-level setting: keep the event log's too
            fixed = {"max.message.bytes": "1048588", **t.configs(t.ORDER_EVENTS)}
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, events, fixed)])
        finally:
            await admin.close()
        worker.start()
        await bus.wait_for(placed.order_id, "OrderPaid", within=90)
        await asyncio.sleep(2)  # anything sent twice would be here by now
        values = await bus.wait(
            "order-events", lambda vs: any(v["type"] == "OrderPaid" for v in vs), within=5
        )
        # At-least-once: a copy of an event may come again (same event_id, consumers drop
        # it); a second, different event may not.
        mine = {(v["type"], v["event_id"]) for v in values if v.get("order_id") == placed.order_id}
        kinds = Counter(kind for kind, _ in mine)
        assert kinds == Counter({"OrderPlaced": 1, "OrderPaid": 1}), sorted(mine)
        ledger = await bus.ledger("store-r", "menu-r")
        assert (ledger["on_hand"], ledger["reserved"]) == (2, 0), ledger  # committed with paid
    finally:
        worker.stop()
        await bus.stop()
