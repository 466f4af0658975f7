"""A flash sale survives ``kill -9`` of its worker in the middle: nothing lost, nothing doubled.

Hundreds of buyers race for little stock; the worker is killed while sagas are in every step
and restarted on its data folder. Its RUNNING marker is still there, so the restart throws its
local tables away and rebuilds them from their changelogs: the test checks that it took that
path. (One case, not two: a lost data folder took the very same path, since the marker throws
the tables away anyway; a clean stop that keeps RocksDB is ``test_clean_restart_keeps_rocksdb``.)

Afterwards every order has exactly one terminal event and the stock ledger conserves. The
gateway's journal holds every call it received, repeats included, split at the kill: in each
run the payment agent asked at most once per order to authorize, and at most once to void or
refund. Across the kill the design allows one more ask for an order asked before it (a crash
between the gateway's answer and the payment record, docs/saga.md, "Gateway"): the gateway
must then answer it as a repeat, so no customer is charged twice. Every charge of an order that
did not complete was given back, and nothing was given back that was never charged.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from pathlib import Path

from eatcloud.payments.gateway import journal_entries
from eatcloud.settings import Settings
from eatcloud.streams import records as r
from tests.integration.saga_harness import TERMINAL, Bus, order, saga_worker, unique_prefix

STOCK, BUYERS = 40, 300
REBUILT = "the last run did not stop cleanly: rebuilding tables"  # faust_patches logs it
REPLAYED = "Restoring state from changelog topics"  # Faust logs it when it reads a changelog
UNDO = {"void", "refund"}


async def test_flash_sale_survives_a_worker_killed_mid_sale(
    stack: Settings, tmp_path: Path
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
        first_run = worker.log.read_text(errors="replace")
        asked_before_kill = len(journal_entries(journal))  # the killed run's calls, all of them
        data_dir = Path(worker.env["EATCLOUD_WORKER__DATA_DIR"])
        marker = await asyncio.to_thread(lambda: list(data_dir.rglob("RUNNING")))
        assert marker, "kill -9 left no RUNNING marker: the restart would not rebuild"
        worker.start()

        ends = await bus.outcomes(order_ids, {"OrderPaid", "OrderRejected"}, within=180)
        second_run = worker.log.read_text(errors="replace")[len(first_run) :]
        assert REBUILT not in first_run and REBUILT in second_run, "no rebuild after kill -9"
        assert REPLAYED in second_run, "the restart did not read its tables from the changelogs"
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

        check_gateway_calls(journal_entries(journal), asked_before_kill, completed)
        assert worker.alive(), worker.tail()
    finally:
        await bus.stop()
        worker.stop()


def check_gateway_calls(
    calls: list[dict[str, object]], asked_before_kill: int, completed: set[str]
) -> None:
    """Every call the gateway received (``asked_before_kill`` of them in the killed run): what
    the payment agent may ask per order and run, and what the customer was charged."""
    runs = {"before the kill": calls[:asked_before_kill], "after it": calls[asked_before_kill:]}
    asked: dict[str, Counter[str]] = {}
    for run, made in runs.items():
        asked[run] = Counter(str(c["order_id"]) for c in made if c["op"] == "authorize")
        gave_back = Counter(str(c["order_id"]) for c in made if c["op"] in UNDO)
        for what, counts in (("authorize", asked[run]), ("void or refund", gave_back)):
            twice = sorted(o for o, n in counts.items() if n > 1)
            assert not twice, f"{run}, the payment agent asked to {what} twice: {twice[:5]}"
    fresh = Counter(str(c["order_id"]) for c in calls if c["op"] == "authorize" and not c["repeat"])
    assert max(fresh.values()) == 1, "an order was charged twice at the gateway"
    assert set(fresh) == set(asked["before the kill"]) | set(asked["after it"])
    approved = {str(c["order_id"]) for c in calls if c["op"] == "authorize" and c.get("approved")}
    undone = {str(c["order_id"]) for c in calls if c["op"] in UNDO}
    assert undone <= approved, "a payment that was never charged was given back"
    assert approved - undone == completed, "a charge of an order that failed was kept"
