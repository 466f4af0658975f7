"""Partitions move while units are in flight, away and back, and every order ends once.

One worker takes a flash sale on every partition (a scarce item sold out early, some cards
declined) in large units (up to 1,000 records each), kept busy with a backlog until a second
worker joins: the first must finish the units it is in before it gives half of its partitions
away, and the second starts from their changelogs and committed offsets. Later, with a fresh
backlog on every partition, the second leaves gracefully (SIGTERM, exit 0) and its partitions
go back to the first, whose local tables and cached values of them are now behind what the
second did. Each order has one decision and one end, no item is oversold, every ledger is
exact, and the gateway kept only the charges of completed orders.
(``test_worker_joins_mid_burst``: a join on fresh topics loses no order; this one: exactness
under contention across a join and a leave that both cut through work, and partitions that
come back to a worker that had them before.)
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from eatcloud.settings import Settings
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from tests.chaos.audit import (
    DECIDED,
    Orders,
    check_gateway,
    check_ledger,
    complete,
    stores_on_every_partition,
)
from tests.chaos.test_worker_joins_mid_burst import create_topics
from tests.integration.saga_harness import Bus, order, saga_worker, unique_prefix
from tests.integration.workers import WorkerProcess

# Every order takes a plentiful item (its ledger changes with every order, whoever has the
# partition); every third one also a scarce item, sold out early: the contention.
STOCK = {"menu-1": 100_000, "menu-hot": 40}  # units per store
# Orders per store in a slice; slices kept waiting for the workers; orders per store at most.
SLICE, BACKLOG, MOST = 50, 5, 2_000


def sale(store: str, n: int) -> r.PlaceOrder:
    """The ``n``-th order of a store: one plentiful unit, every third a scarce one too; every
    twentieth declined by the gateway (an amount ending in 13)."""
    lines = [("menu-1", 1, 10_013 if n % 20 == 7 else 10_000)]
    return order(store, lines + [("menu-hot", 1, 2_000)] * (n % 3 == 0), customer=f"c{n}")


class Sale:
    """Places orders for every store a slice at a time, so that the workers always have
    ``BACKLOG`` slices waiting: whenever partitions move, units are in flight."""

    def __init__(self, bus: Bus, stores: list[str]) -> None:
        self.bus, self.stores = bus, stores
        self.placed: list[r.PlaceOrder] = []

    async def top_up(self) -> None:
        while True:
            values = await self.bus.wait(t.ORDER_EVENTS, lambda _: True)
            waiting = len(self.placed) - sum(v.get("type") in DECIDED for v in values)
            if waiting >= BACKLOG * SLICE * len(self.stores):
                return
            n = len(self.placed) // len(self.stores)
            assert n < MOST, "the workers do not keep up"
            batch = [sale(store, n + i) for i in range(SLICE) for store in self.stores]
            self.placed += batch
            await self.bus.send(*batch)

    async def until(self, done: Callable[[], bool]) -> tuple[int, float]:
        """Keep the backlog until ``done()``: how many orders were placed then, and when."""
        for _ in range(300):
            finished, count, at = done(), len(self.placed), time.time()
            if finished:
                return count, at
            await self.top_up()
            await asyncio.sleep(0.2)
        raise AssertionError("not done within a minute")


async def logged(worker: WorkerProcess, text: str, within: float = 60) -> None:
    """Until ``text`` is in the worker's log."""
    deadline = time.monotonic() + within
    while text not in worker.log.read_text(errors="replace"):
        assert time.monotonic() < deadline and worker.alive(), worker.tail()
        await asyncio.sleep(0.2)


async def test_orders_end_once_when_partitions_move_mid_unit(
    stack: Settings, tmp_path: Path
) -> None:
    bootstrap = stack.kafka.bootstrap_servers
    partitions = stack.kafka.topic_partitions
    prefix = unique_prefix("rebalance")
    journal = tmp_path / "gateway.jsonl"
    env = {
        "EATCLOUD_WORKER__BATCH_RECORDS": "1000",
        "EATCLOUD_WORKER__BATCH_WITHIN_MS": "100",
        "EATCLOUD_PAYMENT__LATENCY_MS": "100",  # payment units stay in flight a while
        "EATCLOUD_PAYMENT__JOURNAL": str(journal),
    }
    first = saga_worker(tmp_path, bootstrap, prefix, name="first", **env)
    second = saga_worker(tmp_path, bootstrap, prefix, name="second", **env)
    bus = Bus(bootstrap, prefix)
    await bus.start()
    try:
        await create_topics(bootstrap, prefix, partitions)
        stores = stores_on_every_partition(partitions)
        first.start()
        shelves = [(s, m, n) for s in stores for m, n in STOCK.items()]
        await bus.adjust(
            *(r.AdjustStock(store_id=s, menu_id=m, delta=n) for s, m, n in shelves), within=90
        )
        second.start()
        await logged(second, "LeaderAssignor]: Starting")  # it joins a few seconds later
        feed = Sale(bus, stores)
        placed_before_join, joined = await feed.until(
            lambda: "Joined group" in second.log.read_text(errors="replace")
        )
        # The second takes its share until its start-up has declared the last of the worker's
        # topics: a SIGTERM before that crashes it (the declare_topics task of
        # eatcloud.agents.register goes on while the worker stops its producer).
        await logged(second, f"Creating topic '{prefix}{t.dlq(t.INPUTS[-1])}'")
        await feed.top_up()
        placed_before_leave = len(feed.placed)
        await asyncio.to_thread(second.stop)  # it leaves in the middle of its units
        assert second.proc is not None and second.proc.returncode == 0, second.tail()
        alone = time.time()

        placed = feed.placed
        store_of = {o.order_id: o.store_id for o in placed}
        ends = await bus.outcomes(store_of, DECIDED, within=120)
        at = {o: e["occurred_at"] for o, e in ends.items()}
        cut = SLICE * len(stores)  # a slice still waiting: the move cut through work
        late = sum(at[o.order_id] > joined for o in placed[:placed_before_join])
        assert late >= cut, f"only {late} orders were waiting at the join"
        late = sum(at[o.order_id] > alone for o in placed[:placed_before_leave])
        assert late >= cut, f"only {late} orders were waiting when the second left"
        paid = [o for o, e in ends.items() if e["type"] == "OrderPaid"]
        await complete(bus, store_of, paid)
        await bus.history(store_of, within=90)

        seen = Orders.seen_by(bus, store_of)
        seen.check_each_ended_once()
        completed = seen.with_type("OrderCompleted")
        assert completed == set(paid)
        refused = [e.get("reason") for e in ends.values() if e["type"] == "OrderRejected"]
        assert "out_of_stock" in refused, "no shelf ran out: nothing was contended"
        sold: Counter[tuple[str, str]] = Counter()
        for o in placed:
            if o.order_id in completed:
                sold.update({(o.store_id, line.menu_id): line.quantity for line in o.lines})
        for store, menu, units in shelves:
            await check_ledger(bus, store, menu, baseline=units, sold=sold[(store, menu)])
        check_gateway(journal, completed)
        assert first.alive(), first.tail()
    finally:
        await bus.stop()
        first.stop()
        second.stop()
