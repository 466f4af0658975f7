"""The order saga end to end on the real broker: one real worker process, real topics.

Every test uses its own store, menu and customer ids, so tests share the module's worker
without seeing each other's orders. The worker runs with short deadlines (store acceptance
8 s) so the timeout paths finish quickly.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from eatcloud.settings import Settings
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from tests.integration.saga_harness import Bus, order, saga_worker, unique_prefix
from tests.integration.workers import WorkerProcess

ACCEPT_TIMEOUT = 8


@pytest.fixture(scope="module")
async def bus(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Bus]:
    """One worker for the module's scenarios, on topics of its own."""
    prefix = unique_prefix("saga")
    worker: WorkerProcess = saga_worker(
        tmp_path_factory.mktemp("saga"),
        stack.kafka.bootstrap_servers,
        prefix,
        EATCLOUD_SAGA__ACCEPT_TIMEOUT_SECONDS=str(ACCEPT_TIMEOUT),
        EATCLOUD_SAGA__STEP_TIMEOUT_SECONDS="5",
    )
    worker.start()
    bus = Bus(stack.kafka.bootstrap_servers, prefix)
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()
        worker.stop()
        if worker.proc is not None and worker.proc.returncode not in (0, -15):
            print(worker.tail(60))


def ids(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:8]}"


async def stocked(bus: Bus, quantity: int) -> tuple[str, str]:
    store, menu = ids("store"), ids("menu")
    await bus.adjust(r.AdjustStock(store_id=store, menu_id=menu, delta=quantity, reason="delivery"))
    return store, menu


async def test_order_runs_from_placed_to_completed(bus: Bus) -> None:
    store, menu = await stocked(bus, 5)
    placed = order(store, [(menu, 2, 12_000)], customer=ids("customer"))
    await bus.send(placed)

    paid = await bus.wait_for(placed.order_id, "OrderPaid")
    assert paid["amount"] == 24_000
    await bus.send(r.AcceptOrder(order_id=placed.order_id, store_id=store))
    await bus.wait_for(placed.order_id, "OrderAccepted")
    await bus.send(r.CompleteOrder(order_id=placed.order_id, store_id=store))

    history = await bus.history([placed.order_id])
    assert history[placed.order_id] == [
        "OrderPlaced",
        "OrderPaid",
        "OrderAccepted",
        "OrderCompleted",
    ]
    ledger = await bus.ledger(store, menu)
    assert (ledger["on_hand"], ledger["reserved"], ledger["sold"]) == (3, 0, 2)


async def test_rejects_the_whole_order_when_one_line_is_out_of_stock(bus: Bus) -> None:
    store, menu = await stocked(bus, 5)
    await bus.adjust(r.AdjustStock(store_id=store, menu_id="scarce", delta=1))
    placed = order(store, [(menu, 2, 5_000), ("scarce", 2, 3_000)])
    await bus.send(placed)

    rejected = await bus.wait_for(placed.order_id, "OrderRejected")
    assert rejected["reason"] == "out_of_stock"
    assert (await bus.ledger(store, menu))["reserved"] == 0
    assert (await bus.ledger(store, "scarce"))["on_hand"] == 1


async def test_payment_decline_releases_the_reserved_stock(bus: Bus) -> None:
    store, menu = await stocked(bus, 5)
    placed = order(store, [(menu, 1, 10_013)])  # amounts ending in 13 are declined
    await bus.send(placed)

    rejected = await bus.wait_for(placed.order_id, "OrderRejected")
    assert rejected["reason"] == "card_declined"
    ledger = await bus.ledger(store, menu)
    assert (ledger["on_hand"], ledger["reserved"], ledger["sold"]) == (5, 0, 0)


async def test_store_that_does_not_accept_in_time_refunds_and_returns_stock_and_points(
    bus: Bus,
) -> None:
    store, menu = await stocked(bus, 3)
    customer = ids("customer")
    await bus.send(r.AdjustPoints(customer_id=customer, delta=500))
    placed = order(store, [(menu, 1, 9_000)], customer=customer, points=500)
    await bus.send(placed)
    await bus.wait_for(placed.order_id, "OrderPaid")

    cancelled = await bus.wait_for(placed.order_id, "OrderCancelled", within=ACCEPT_TIMEOUT + 30)
    assert cancelled["reason"] == "store_timeout"
    assert cancelled["refunded"] is True
    ledger = await bus.ledger(store, menu)
    assert (ledger["on_hand"], ledger["reserved"], ledger["sold"]) == (3, 0, 0)
    # The points came back: an order spending all 500 again is paid.
    again = order(store, [(menu, 1, 9_000)], customer=customer, points=500)
    await bus.send(again)
    await bus.wait_for(again.order_id, "OrderPaid")


async def test_customer_may_cancel_before_the_store_accepts(bus: Bus) -> None:
    store, menu = await stocked(bus, 2)
    placed = order(store, [(menu, 2, 7_000)])
    await bus.send(placed)
    await bus.wait_for(placed.order_id, "OrderPaid")

    await bus.send(
        r.CancelOrder(order_id=placed.order_id, store_id=placed.store_id, by=r.Actor.CUSTOMER)
    )
    cancelled = await bus.wait_for(placed.order_id, "OrderCancelled")
    assert cancelled["by"] == "CUSTOMER"
    assert cancelled["refunded"] is True
    ledger = await bus.ledger(store, menu)
    assert (ledger["on_hand"], ledger["sold"]) == (2, 0)


async def test_after_acceptance_only_the_store_can_cancel_and_the_customer_is_refunded(
    bus: Bus,
) -> None:
    store, menu = await stocked(bus, 2)
    placed = order(store, [(menu, 1, 7_000)])
    await bus.send(placed)
    await bus.wait_for(placed.order_id, "OrderPaid")
    await bus.send(r.AcceptOrder(order_id=placed.order_id, store_id=store))
    await bus.wait_for(placed.order_id, "OrderAccepted")

    await bus.send(
        r.CancelOrder(order_id=placed.order_id, store_id=placed.store_id, by=r.Actor.CUSTOMER)
    )
    await bus.send(
        r.CancelOrder(
            order_id=placed.order_id, store_id=placed.store_id, by=r.Actor.STORE, reason="no rice"
        )
    )
    cancelled = await bus.wait_for(placed.order_id, "OrderCancelled")
    assert cancelled["by"] == "STORE"
    assert (cancelled["reason"], cancelled["refunded"]) == ("no rice", True)
    history = await bus.history([placed.order_id])
    assert history[placed.order_id].count("OrderCancelled") == 1


async def test_points_are_held_spent_and_returned_per_order(bus: Bus) -> None:
    store, menu = await stocked(bus, 10)
    customer = ids("customer")
    await bus.send(r.AdjustPoints(customer_id=customer, delta=1_000))
    first = order(store, [(menu, 1, 20_000)], customer=customer, points=1_000)
    await bus.send(first)
    paid = await bus.wait_for(first.order_id, "OrderPaid")
    assert paid["amount"] == 19_000

    second = order(store, [(menu, 1, 20_000)], customer=customer, points=500)
    await bus.send(second)
    rejected = await bus.wait_for(second.order_id, "OrderRejected")
    assert rejected["reason"] == "insufficient_points"

    await bus.send(
        r.CancelOrder(order_id=first.order_id, store_id=first.store_id, by=r.Actor.ADMIN)
    )
    await bus.wait_for(first.order_id, "OrderCancelled")
    third = order(store, [(menu, 1, 20_000)], customer=customer, points=1_000)
    await bus.send(third)
    await bus.wait_for(third.order_id, "OrderPaid")


async def test_flash_sale_sells_exactly_the_stock(bus: Bus) -> None:
    stock, buyers = 20, 120
    store, menu = await stocked(bus, stock)
    orders = [order(store, [(menu, 1, 5_000)], customer=ids("buyer")) for _ in range(buyers)]
    await bus.send(*orders)

    ends = await bus.outcomes([o.order_id for o in orders], {"OrderPaid", "OrderRejected"})
    paid = [o for o, event in ends.items() if event["type"] == "OrderPaid"]
    rejected = [e for e in ends.values() if e["type"] == "OrderRejected"]
    assert len(paid) == stock
    assert {e["reason"] for e in rejected} == {"out_of_stock"}
    assert len(rejected) == buyers - stock
    ledger = await bus.ledger(store, menu)
    assert (ledger["on_hand"], ledger["reserved"], ledger["sold"]) == (0, 0, stock)
    for order_id in paid:  # the simulated store takes them, before their deadline passes
        await bus.send(r.AcceptOrder(order_id=order_id, store_id=store))


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"{not json", "undecodable"),
        (b'{"type": "ExplodeOrder", "order_id": "x"}', "unknown_type"),
        (b'{"type": "CancelOrder", "order_id": "x", "by": "ROBOT"}', "invalid"),
    ],
)
async def test_poison_message_goes_to_the_dead_letter_topic_and_processing_goes_on(
    bus: Bus, raw: bytes, reason: str
) -> None:
    await bus.send(raw=raw, topic=t.ORDER_COMMANDS)
    store, menu = await stocked(bus, 1)
    after = order(store, [(menu, 1, 1_000)])
    await bus.send(after)

    dead = await bus.wait(
        t.dlq(t.ORDER_COMMANDS), lambda vs: any(v["_raw"] == raw for v in vs), within=30
    )
    headers = next(v["_headers"] for v in dead if v["_raw"] == raw)
    assert headers["x-error-reason"] == reason
    assert headers["x-original-topic"] == bus.prefix + t.ORDER_COMMANDS
    assert int(headers["x-original-offset"]) >= 0
    assert "x-original-partition" in headers
    await bus.wait_for(after.order_id, "OrderPaid")


async def test_duplicate_commands_change_nothing(bus: Bus) -> None:
    """A repeated command is answered again with the same ids (consumers dedupe by event_id)
    and moves no state: the order's history and its stock are those of one command."""
    store, menu = await stocked(bus, 4)
    placed = order(store, [(menu, 2, 3_000)])
    await bus.send(placed, placed)
    await bus.wait_for(placed.order_id, "OrderPaid")
    accept = r.AcceptOrder(order_id=placed.order_id, store_id=store)
    await bus.send(accept, accept, placed, accept)

    # The saga's last input, delivered again, sends its outputs again: a third copy of
    # OrderAccepted comes after all the repeats caused, on this order's partition.
    def accepted_thrice(values: list[dict[str, object]]) -> bool:
        mine = [v for v in values if v.get("order_id") == placed.order_id]
        return sum(v["type"] == "OrderAccepted" for v in mine) >= 3

    await bus.wait(t.ORDER_EVENTS, accepted_thrice)
    events = [v for v in bus.seen[t.ORDER_EVENTS] if v.get("order_id") == placed.order_id]
    distinct = {e["event_id"]: e["type"] for e in events}
    assert list(distinct.values()) == ["OrderPlaced", "OrderPaid", "OrderAccepted"]
    ledger = await bus.ledger(store, menu)
    assert (ledger["on_hand"], ledger["reserved"], ledger["sold"]) == (2, 0, 2)
