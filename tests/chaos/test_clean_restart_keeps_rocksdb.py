"""A worker stopped cleanly comes back on its own RocksDB and catches up with what it missed.

The worker takes orders, some of which the stores accept or complete, and is stopped with
SIGTERM: it must exit 0, leave no RUNNING marker (else the next start throws its tables away)
and have persisted, in each table partition's RocksDB, the last offset of that changelog
partition. While it is down, the stores finish or cancel those orders and new orders come in
for the same (now partly sold) shelves. Restarted on the same folder, it must read nothing
back from the changelogs and still decide every order as the state before the stop says:
exactly the units left (plus those the cancels gave back) are sold, each order ends once.
"""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from rocksdict import AccessType, Options, Rdict

from eatcloud.settings import Settings
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from tests.chaos.audit import (
    Orders,
    check_gateway,
    check_ledger,
    complete,
    stores_on_every_partition,
)
from tests.integration.saga_harness import Bus, order, saga_worker, unique_prefix

STOCK, BEFORE, WHILE_DOWN = 20, 12, 20  # units per store; orders per store before / after
MENU = "menu-1"
TABLES = {"sagas", "stock", "points", "payments"}  # eatcloud.tables.declare's
OFFSET_KEY = b"__faust\0offset__"  # where Faust keeps a partition's persisted changelog offset
REPLAYED = "Restoring state from changelog topics"  # Faust logs it when it reads a changelog
ROW = re.compile(r"^\| (\S+) +\| (\d+) +\| (-?\d+) +\|$", re.MULTILINE)


def persisted_offsets(data_dir: Path) -> dict[tuple[str, int], int]:
    """(table, partition) -> the changelog offset its RocksDB says it holds (a stopped worker)."""
    found = {}
    for db in data_dir.rglob("*.db"):
        table, _, partition = db.name.removesuffix(".db").rpartition("-")
        store = Rdict(str(db), Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            offset = store.get(OFFSET_KEY)
        finally:
            store.close()
        if offset is not None:
            found[(table, int(partition))] = int(offset)
    return found


def reading_starts(log: str, app_id: str) -> dict[tuple[str, int], int]:
    """(table, partition) -> where Faust's recovery started reading its changelog, as its
    "Reading Starts At - Active" table in the worker's log says (the last one in ``log``)."""
    found: dict[tuple[str, int], int] = {}
    for line in log.splitlines():
        message = json.loads(line)["msg"] if line.startswith("{") else ""
        if "Reading Starts At - Active" not in message:
            continue
        found, topic = {}, ""
        for name, partition, offset in ROW.findall(message):
            topic = topic if name == "\u3003" else name  # a ditto mark: the topic above
            table = topic.removeprefix(f"{app_id}-").removesuffix("-changelog")
            found[(table, int(partition))] = int(offset)
    return found


async def changelog_ends(
    bootstrap: str, app_id: str, tables: set[str], partitions: int
) -> dict[tuple[str, int], int]:
    """(table, partition) -> the offset of its changelog's last record, for those not empty."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        tps = [
            TopicPartition(f"{app_id}-{table}-changelog", p)
            for table in tables
            for p in range(partitions)
        ]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
    finally:
        await consumer.stop()
    prefix = f"{app_id}-"
    return {
        (tp.topic.removeprefix(prefix).removesuffix("-changelog"), tp.partition): end - 1
        for tp, end in ends.items()
        if end > 0
    }


async def test_a_clean_restart_catches_up_on_its_own_rocksdb(
    stack: Settings, tmp_path: Path
) -> None:
    bootstrap = stack.kafka.bootstrap_servers
    prefix = unique_prefix("restart")
    app_id = prefix.rstrip("-")  # saga_worker's: the changelogs are named after it
    journal = tmp_path / "gateway.jsonl"
    worker = saga_worker(tmp_path, bootstrap, prefix, EATCLOUD_PAYMENT__JOURNAL=str(journal))
    bus = Bus(bootstrap, prefix)
    await bus.start()
    stores = stores_on_every_partition(stack.kafka.topic_partitions)
    placed = {s: [order(s, [(MENU, 1, 10_000)], customer=f"{s}-{i}") for i in range(BEFORE)]
              for s in stores}  # fmt: skip
    store_of = {o.order_id: o.store_id for orders in placed.values() for o in orders}
    # Per store, of the orders placed before the stop: completed before it, accepted before
    # it and completed while down, accepted and completed while down, cancelled while down.
    done_before, accepted_before, done_while_down, cancelled = (
        [o.order_id for orders in placed.values() for o in orders[lo:hi]]
        for lo, hi in ((0, 4), (4, 6), (6, 9), (9, 12))
    )
    worker.start()
    try:
        await bus.adjust(
            *(r.AdjustStock(store_id=s, menu_id=MENU, delta=STOCK) for s in stores), within=90
        )
        await bus.send(*(o for orders in placed.values() for o in orders))
        ends = await bus.outcomes(store_of, {"OrderPaid", "OrderRejected"}, within=90)
        assert {e["type"] for e in ends.values()} == {"OrderPaid"}, worker.tail()
        await complete(bus, store_of, done_before)
        await bus.send(*(r.AcceptOrder(order_id=o, store_id=store_of[o]) for o in accepted_before))
        await bus.history(done_before)
        await bus.wait(
            t.ORDER_EVENTS,
            lambda vs: (
                set(accepted_before)
                <= {v["order_id"] for v in vs if v.get("type") == "OrderAccepted"}
            ),
        )

        await asyncio.to_thread(worker.stop)
        assert worker.proc is not None and worker.proc.returncode == 0, worker.tail()
        data_dir = Path(worker.env["EATCLOUD_WORKER__DATA_DIR"])
        marker = await asyncio.to_thread(lambda: list(data_dir.rglob("RUNNING")))
        assert not marker, "a clean stop left its RUNNING marker: the restart would rebuild"
        kept = await asyncio.to_thread(persisted_offsets, data_dir)
        partitions = stack.kafka.topic_partitions
        logged = await changelog_ends(bootstrap, app_id, TABLES, partitions)
        assert kept == logged, "the local tables do not hold all of their changelogs"
        assert {"sagas", "stock", "payments"} <= {table for table, _ in kept}, kept

        # While the worker is down: the stores finish (or cancel) the orders of before, and
        # new orders for the same shelves arrive, behind them on the same partitions.
        arrived = {s: [order(s, [(MENU, 1, 10_000)], customer=f"{s}-late-{i}")
                       for i in range(WHILE_DOWN)] for s in stores}  # fmt: skip
        late = {o.order_id: o.store_id for orders in arrived.values() for o in orders}
        await bus.send(
            *(r.CompleteOrder(order_id=o, store_id=store_of[o]) for o in accepted_before)
        )
        await complete(bus, store_of, done_while_down)
        await bus.send(
            *(r.CancelOrder(order_id=o, store_id=store_of[o], by=r.Actor.STORE) for o in cancelled),
            *(o for orders in arrived.values() for o in orders),
        )
        first_run = len(worker.log.read_text(errors="replace"))
        worker.start()

        ends = await bus.outcomes(late, {"OrderPaid", "OrderRejected"}, within=90)
        # Each shelf had STOCK - BEFORE units left, and the cancels gave some back: exactly
        # that many late orders are paid, the others refused for stock, in their order.
        left = STOCK - BEFORE + len(cancelled) // len(stores)
        for store, orders in arrived.items():
            got = [ends[o.order_id].get("reason") or ends[o.order_id]["type"] for o in orders]
            assert got == ["OrderPaid"] * left + ["out_of_stock"] * (WHILE_DOWN - left), store
        paid_late = [o for o, e in ends.items() if e["type"] == "OrderPaid"]
        await complete(bus, late, paid_late)
        await bus.history([*store_of, *late], within=90)

        seen = Orders.seen_by(bus, [*store_of, *late])
        seen.check_each_ended_once()
        assert seen.with_type("OrderCancelled") == set(cancelled)
        completed = seen.with_type("OrderCompleted")
        assert completed == {*done_before, *accepted_before, *done_while_down, *paid_late}
        for store in stores:
            await check_ledger(bus, store, MENU, baseline=STOCK, sold=STOCK)
        check_gateway(journal, completed)

        second_run = worker.log.read_text(errors="replace")[first_run:]
        rebuilt, replayed = "did not stop cleanly" in second_run, REPLAYED in second_run
        assert not rebuilt, "the restart threw its local tables away"
        assert not replayed, "the restart replayed changelogs that its RocksDB held"
        starts = reading_starts(second_run, app_id)
        assert {tp: at for tp, at in starts.items() if at >= 0} == kept, starts
        assert worker.alive(), worker.tail()
    finally:
        await bus.stop()
        worker.stop()
