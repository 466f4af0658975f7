"""A flash sale survives ``kill -9`` of its worker in the middle: nothing lost, nothing doubled.

Hundreds of buyers race for little stock; the worker is killed while sagas are in every step
and restarted (with its local table state kept, or lost). Afterwards every order has exactly
one terminal event, the gateway charged each order at most once and gave back every charge of
an order that did not complete, and the stock ledger conserves.
"""

from __future__ import annotations

import shutil
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from eatcloud.payments.gateway import journal_entries
from eatcloud.settings import Settings
from eatcloud.streams import records as r
from tests.integration.saga_harness import TERMINAL, Bus, order, saga_worker, unique_prefix

STOCK, BUYERS = 40, 300


@pytest.mark.parametrize("lose_local_state", [False, True], ids=["keep-data-dir", "data-dir-lost"])
async def test_flash_sale_survives_a_worker_killed_mid_sale(
    stack: Settings, tmp_path: Path, lose_local_state: bool
) -> None:
    prefix = unique_prefix("chaos")
    journal = tmp_path / "gateway.jsonl"
    worker = saga_worker(
        tmp_path,
        stack.kafka.bootstrap_servers,
        prefix,
        EATCLOUD_PAYMENT__JOURNAL=str(journal),
        EATCLOUD_SAGA__STEP_TIMEOUT_SECONDS="3",
        EATCLOUD_SAGA__COMPENSATION_RETRY_SECONDS="3",
    )
    bus = Bus(stack.kafka.bootstrap_servers, prefix)
    await bus.start()
    worker.start()
    try:
        store, menu = "store-flash", "menu-flash"
        await bus.adjust(r.AdjustStock(store_id=store, menu_id=menu, delta=STOCK))
        orders = [
            order(store, [(menu, 1, 10_013 if i % 20 == 7 else 10_000)], customer=f"buyer-{i}")
            for i in range(BUYERS)
        ]
        await bus.send(*orders)
        order_ids = [o.order_id for o in orders]

        def outcomes(values: list[dict[str, object]]) -> int:
            return sum(v.get("type") in {"OrderPaid", "OrderRejected"} for v in values)

        before = await bus.wait("order-events", lambda vs: outcomes(vs) >= 25, within=90)
        worker.kill9()
        assert outcomes(before) < BUYERS / 2, "the sale was over before the kill"
        if lose_local_state:
            shutil.rmtree(Path(worker.env["EATCLOUD_WORKER__DATA_DIR"]), ignore_errors=True)
        worker.start()

        ends = await bus.outcomes(order_ids, {"OrderPaid", "OrderRejected"}, within=180)
        paid = sorted(o for o, e in ends.items() if e["type"] == "OrderPaid")
        for order_id in paid:  # the store takes every paid order and completes it
            await bus.send(
                r.AcceptOrder(order_id=order_id, store_id=store),
                r.CompleteOrder(order_id=order_id, store_id=store),
            )
        await bus.history(order_ids, within=120)

        terminal: dict[str, set[str]] = defaultdict(set)
        kinds: dict[str, set[str]] = defaultdict(set)
        for event in bus.seen["order-events"]:
            if event.get("type") in TERMINAL and event["order_id"] in ends:
                terminal[event["order_id"]].add(event["event_id"])
                kinds[event["order_id"]].add(event["type"])
        assert all(len(ids) == 1 for ids in terminal.values()), "an order ended twice"
        assert len(terminal) == BUYERS
        completed = {o for o, k in kinds.items() if k == {"OrderCompleted"}}
        assert completed == set(paid)

        ledger = await bus.ledger(store, menu)
        assert ledger["reserved"] == 0
        assert ledger["on_hand"] + ledger["sold"] == STOCK
        assert ledger["sold"] == len(completed) > 0

        calls = journal_entries(journal)
        fresh = [c for c in calls if c["op"] == "authorize" and not c["repeat"]]
        charges = Counter(c["order_id"] for c in fresh)
        assert max(charges.values()) == 1, "an order was authorized twice at the gateway"
        approved = {c["order_id"] for c in calls if c["op"] == "authorize" and c.get("approved")}
        undone = {c["order_id"] for c in calls if c["op"] in {"void", "refund"}}
        assert approved - undone == completed, "a charge of an order that failed was kept"
    finally:
        await bus.stop()
        worker.stop()
