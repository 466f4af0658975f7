"""A second worker joining during a burst loses nothing (the rebalance it causes included).

Faust 0.15.3 dropped records it had fetched before a rebalance and relied on a seek to read
them again, which never happened on partitions without a committed offset: with two workers
on new topics, 700-1,500 of 3,000 orders silently vanished (``bootstrap`` now rewinds).
"""

from __future__ import annotations

from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from eatcloud.settings import Settings
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from tests.integration.saga_harness import Bus, order, saga_worker, unique_prefix

ORDERS, STORES = 3_000, 8


async def create_topics(bootstrap: str, prefix: str, partitions: int) -> None:
    """New topics, none of them ever committed by a consumer group: the case that lost data."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(prefix + name, partitions, 1, topic_configs=t.configs(name))
                for name in t.ALL
            ]
        )
    finally:
        await admin.close()


async def test_every_order_ends_when_a_worker_joins_mid_burst(
    stack: Settings, tmp_path: Path
) -> None:
    prefix = unique_prefix("join")
    bootstrap = stack.kafka.bootstrap_servers
    first = saga_worker(tmp_path, bootstrap, prefix, name="first")
    second = saga_worker(tmp_path, bootstrap, prefix, name="second")
    bus = Bus(bootstrap, prefix)
    await bus.start()
    try:
        await create_topics(bootstrap, prefix, stack.kafka.topic_partitions)
        stores = [f"store-{n}" for n in range(STORES)]
        # The shelves are stocked first (orders travel on another topic than adjustments, so
        # they must not overtake them); then the burst, and the second worker joins a second
        # or so later, while the first is busy with it and has committed none of it yet.
        first.start()
        await bus.adjust(
            *(r.AdjustStock(store_id=s, menu_id="menu", delta=100_000) for s in stores),
            within=90,
        )
        orders = [
            order(stores[i % STORES], [("menu", 1, 4_000)], customer=f"c-{i}")
            for i in range(ORDERS)
        ]
        await bus.send(*orders)
        second.start()

        ends = await bus.outcomes(
            [o.order_id for o in orders], {"OrderPaid", "OrderRejected"}, within=150
        )
        assert len(ends) == ORDERS
        assert all(e["type"] == "OrderPaid" for e in ends.values())
        for store in stores:
            ledger = await bus.ledger(store, "menu")
            assert (ledger["reserved"], ledger["sold"]) == (0, ORDERS // STORES)
    finally:
        await bus.stop()
        first.stop()
        second.stop()
