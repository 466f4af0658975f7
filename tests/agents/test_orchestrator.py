"""The orchestrator agent: order commands and participant replies in, the sagas table and the
saga's commands and order events out. Stock is a local step of the saga: reserve, commit and
release are applied in the same unit (stock events out, no stock command), and only payment
and points are asked through their topics."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eatcloud.domain.saga import OrderStatus, Participant, Step
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from tests.agents.harness import Harness

ORDER = r.PlaceOrder(
    order_id="o1",
    customer_id="c1",
    store_id="s1",
    lines=(
        r.OrderLine(menu_id="m1", quantity=2, unit_price=1500),
        r.OrderLine(menu_id="m2", quantity=1, unit_price=500),
    ),
)
WITH_POINTS = ORDER.model_copy(update={"event_id": r.new_id(), "points": 1000})


@pytest.fixture
async def orchestrator(harness: Harness) -> AsyncIterator[Any]:
    async with harness.agent("orchestrator").test_context() as agent:
        yield agent


def outputs(harness: Harness) -> list[tuple[str, str, bytes]]:
    """(topic, type, key) of everything sent since the last look."""
    return [(s.topic, s.type, s.key) for s in harness.outbox.take()]


async def shelve(harness: Harness, agent: Any, **quantities: int) -> None:
    """Stock store s1 (through ``stock-commands``, as the API does), and forget what it sent."""
    for menu_id, quantity in quantities.items():
        await harness.deliver(agent, r.AdjustStock(store_id="s1", menu_id=menu_id, delta=quantity))
    harness.outbox.clear()


def levels(harness: Harness) -> dict[str, tuple[int, int, int]]:
    """(on_hand, reserved, sold) per menu item of store s1."""
    items = harness.ledger("s1").items
    return {menu: (item.on_hand, item.reserved, item.sold) for menu, item in items.items()}


STOCK_MOVED = (t.STOCK_EVENTS, "StockLevelsChanged", b"s1")  # one per stock command
AUTHORIZED = r.PaymentAuthorized(order_id="o1", store_id="s1", amount=3500, authorization_id="a1")


async def test_places_an_order_by_reserving_its_stock_in_the_same_unit_and_asking_for_payment(
    harness: Harness, orchestrator: Any
) -> None:
    await shelve(harness, orchestrator, m1=5, m2=5)

    await harness.deliver(orchestrator, ORDER)

    authorize, placed, *moved = harness.outbox.take()  # our topics' envelopes go out first
    assert (placed.topic, placed.key, placed.type) == (t.ORDER_EVENTS, b"o1", "OrderPlaced")
    assert (placed.record.total_amount, placed.record.final_amount) == (3500, 3500)
    assert [(m.topic, m.type, m.key) for m in moved] == [STOCK_MOVED]
    lines = [(x.menu_id, x.change, x.quantity, x.reserved) for x in moved[0].record.lines]
    assert lines == [("m1", "reserved", 2, 2), ("m2", "reserved", 1, 1)]
    assert (authorize.topic, authorize.key, authorize.type) == (
        t.PAYMENT_COMMANDS,
        b"o1",
        "AuthorizePayment",
    )
    assert (authorize.record.amount, authorize.record.store_id) == (3500, "s1")
    assert levels(harness) == {"m1": (5, 2, 0), "m2": (5, 1, 0)}
    saga = harness.saga("o1")
    assert saga is not None
    assert (saga.status, saga.step, saga.held) == (
        OrderStatus.PENDING,
        Step.PAYMENT,
        (Participant.STOCK, Participant.PAYMENT),
    )
    timeout = harness.settings.saga.step_timeout_seconds
    assert saga.deadline == pytest.approx(time.time() + timeout, abs=5)
    assert sorted({w.table for w in harness.outbox.writes}) == ["sagas", "stock"]


async def test_walks_an_order_through_the_happy_path_step_by_step(
    harness: Harness, orchestrator: Any
) -> None:
    await shelve(harness, orchestrator, m1=5, m2=5)
    steps: list[tuple[r.Record, list[tuple[str, str, bytes]], OrderStatus, Step]] = [
        (
            ORDER,
            [
                (t.PAYMENT_COMMANDS, "AuthorizePayment", b"o1"),
                (t.ORDER_EVENTS, "OrderPlaced", b"o1"),
                STOCK_MOVED,
            ],
            OrderStatus.PENDING,
            Step.PAYMENT,
        ),
        (
            AUTHORIZED,
            [STOCK_MOVED, (t.ORDER_EVENTS, "OrderPaid", b"o1")],
            OrderStatus.PAID,
            Step.STORE,
        ),
        (
            r.AcceptOrder(order_id="o1", store_id="s1"),
            [(t.ORDER_EVENTS, "OrderAccepted", b"o1")],
            OrderStatus.ACCEPTED,
            Step.COMPLETION,
        ),
        (
            r.CompleteOrder(order_id="o1", store_id="s1"),
            # the customer earns points on what was paid (no reply is awaited)
            [(t.POINTS_COMMANDS, "EarnPoints", b"c1"), (t.ORDER_EVENTS, "OrderCompleted", b"o1")],
            OrderStatus.COMPLETED,
            Step.DONE,
        ),
    ]
    for message, sent, status, step in steps:
        await harness.deliver(orchestrator, message)
        assert outputs(harness) == sent, type(message).__name__
        saga = harness.saga("o1")
        assert saga is not None
        assert (saga.status, saga.step) == (status, step), type(message).__name__
    saga = harness.saga("o1")
    assert saga is not None
    assert (saga.authorization_id, saga.paid, saga.deadline) == ("a1", True, None)
    assert levels(harness) == {"m1": (3, 0, 2), "m2": (4, 0, 1)}


async def test_asks_for_the_amount_left_after_points_and_deducts_them_once_paid(
    harness: Harness, orchestrator: Any
) -> None:
    await shelve(harness, orchestrator, m1=5, m2=5)
    await harness.deliver(orchestrator, WITH_POINTS)
    reserve_points, _ = harness.outbox.take()
    assert (reserve_points.topic, reserve_points.key) == (t.POINTS_COMMANDS, b"c1")
    assert (reserve_points.type, reserve_points.record.amount) == ("ReservePoints", 1000)

    await harness.deliver(orchestrator, r.PointsReserved(order_id="o1", store_id="s1"))
    authorize, *moved = harness.outbox.take()
    assert [(m.type, len(m.record.lines)) for m in moved] == [("StockLevelsChanged", 2)]
    assert (authorize.type, authorize.record.amount) == ("AuthorizePayment", 2500)
    await harness.deliver(orchestrator, AUTHORIZED.model_copy(update={"amount": 2500}))

    paid = outputs(harness)
    assert (paid[0], paid[-1]) == (
        (t.POINTS_COMMANDS, "DeductPoints", b"c1"),
        (t.ORDER_EVENTS, "OrderPaid", b"o1"),
    )


async def test_a_redelivered_place_order_sends_only_copies_and_changes_nothing(
    harness: Harness, orchestrator: Any
) -> None:
    await shelve(harness, orchestrator, m1=5, m2=5)
    await harness.deliver(orchestrator, ORDER)
    first, saga, stock = harness.outbox.take(), harness.saga("o1"), levels(harness)
    harness.outbox.clear()

    await harness.deliver(orchestrator, ORDER)

    again = harness.outbox.take()
    assert again and all(sent in first for sent in again)  # same ids and bytes: duplicates
    assert [s.type for s in again] == ["AuthorizePayment", "OrderPlaced"]
    assert (harness.saga("o1"), levels(harness)) == (saga, stock)
    assert harness.outbox.writes == []


async def test_a_redelivered_reply_sends_only_copies_and_changes_nothing(
    harness: Harness, orchestrator: Any
) -> None:
    await shelve(harness, orchestrator, m1=5, m2=5)
    await harness.deliver(orchestrator, ORDER)
    await harness.deliver(orchestrator, AUTHORIZED)
    first, saga, stock = harness.outbox.take(), harness.saga("o1"), levels(harness)
    harness.outbox.clear()

    await harness.deliver(orchestrator, AUTHORIZED)

    assert all(sent in first for sent in harness.outbox.take())
    assert (harness.saga("o1"), levels(harness)) == (saga, stock)
    assert harness.outbox.writes == []


async def test_a_second_order_under_the_same_id_changes_nothing(
    harness: Harness, orchestrator: Any
) -> None:
    await shelve(harness, orchestrator, m1=5, m2=5)
    await harness.deliver(orchestrator, ORDER)
    saga = harness.saga("o1")
    harness.outbox.clear()

    await harness.deliver(orchestrator, ORDER.model_copy(update={"event_id": r.new_id()}))

    assert harness.outbox.take() == []
    assert harness.saga("o1") == saga


async def test_ignores_a_reply_for_an_order_it_never_saw(
    harness: Harness, orchestrator: Any
) -> None:
    await harness.deliver(orchestrator, AUTHORIZED.model_copy(update={"order_id": "o9"}))

    assert harness.outbox.take() == []
    assert harness.saga("o9") is None
    assert harness.outbox.writes == []


async def test_rejects_the_order_in_the_same_unit_when_its_stock_is_short(
    harness: Harness, orchestrator: Any
) -> None:
    await shelve(harness, orchestrator, m1=1, m2=5)

    await harness.deliver(orchestrator, ORDER)

    placed, short, rejected = harness.outbox.take()
    assert placed.type == "OrderPlaced"
    assert short.type == "StockLevelsChanged"
    assert [x.menu_id for x in short.record.lines] == ["m1"]  # what ran out
    assert (rejected.topic, rejected.type, rejected.record.reason) == (
        t.ORDER_EVENTS,
        "OrderRejected",
        "out_of_stock",
    )
    saga = harness.saga("o1")
    assert saga is not None
    assert (saga.status, saga.step, saga.held) == (OrderStatus.REJECTED, Step.DONE, ())
    assert levels(harness) == {"m1": (1, 0, 0), "m2": (5, 0, 0)}


async def test_releases_the_stock_when_the_payment_is_declined_then_rejects_the_order(
    harness: Harness, orchestrator: Any
) -> None:
    await shelve(harness, orchestrator, m1=5, m2=5)
    await harness.deliver(orchestrator, ORDER)
    harness.outbox.take()

    await harness.deliver(
        orchestrator, r.PaymentDeclined(order_id="o1", store_id="s1", reason="card_declined")
    )

    assert outputs(harness) == [STOCK_MOVED, (t.ORDER_EVENTS, "OrderRejected", b"o1")]
    saga = harness.saga("o1")
    assert saga is not None
    assert (saga.status, saga.reason) == (OrderStatus.REJECTED, "card_declined")
    assert levels(harness) == {"m1": (5, 0, 0), "m2": (5, 0, 0)}


async def test_a_customer_cancel_gives_the_stock_back_at_once_and_waits_for_the_void(
    harness: Harness, orchestrator: Any
) -> None:
    await shelve(harness, orchestrator, m1=5, m2=5)
    await harness.deliver(orchestrator, ORDER)
    harness.outbox.take()

    cancel = r.CancelOrder(order_id="o1", store_id="s1", by=r.Actor.CUSTOMER)
    await harness.deliver(orchestrator, cancel)
    assert outputs(harness) == [
        (t.PAYMENT_COMMANDS, "VoidPayment", b"o1"),
        STOCK_MOVED,
    ]
    assert levels(harness) == {"m1": (5, 0, 0), "m2": (5, 0, 0)}
    await harness.deliver(orchestrator, r.PaymentVoided(order_id="o1", store_id="s1"))

    (cancelled,) = harness.outbox.take()
    assert (cancelled.type, cancelled.record.by) == ("OrderCancelled", r.Actor.CUSTOMER)
    saga = harness.saga("o1")
    assert saga is not None
    assert saga.status is OrderStatus.CANCELLED


async def test_resends_the_step_when_its_deadline_passes_and_ignores_stale_timeouts(
    harness: Harness, orchestrator: Any
) -> None:
    await shelve(harness, orchestrator, m1=5, m2=5)
    await harness.deliver(orchestrator, ORDER)
    (authorize,) = [s for s in harness.outbox.take() if s.type == "AuthorizePayment"]
    saga = harness.saga("o1")
    assert saga is not None and saga.deadline is not None

    stale = r.Timeout(order_id="o1", store_id="s1", step="payment", deadline=1.0)
    await harness.deliver(orchestrator, stale)
    assert harness.outbox.take() == []

    due = r.Timeout(order_id="o1", store_id="s1", step="payment", deadline=saga.deadline)
    await harness.deliver(orchestrator, due)
    (again,) = harness.outbox.take()
    assert (again.type, again.record.amount) == ("AuthorizePayment", authorize.record.amount)
    retried = harness.saga("o1")
    assert retried is not None
    assert (retried.step, retried.attempts) == (Step.PAYMENT, 2)
    assert retried.deadline is not None and retried.deadline > saga.deadline


async def test_outputs_carry_their_event_id_and_the_trace_headers_of_their_cause(
    harness: Harness, orchestrator: Any
) -> None:
    await shelve(harness, orchestrator, m1=5, m2=5)
    trace = [("traceparent", b"00-abc-def-01"), ("x-request-id", b"req-1"), ("other", b"x")]

    await harness.deliver(orchestrator, ORDER, headers=trace)

    sent = harness.outbox.take()
    assert len(sent) == 3  # AuthorizePayment, OrderPlaced, the reservation's StockLevelsChanged
    for one in sent:
        assert one.headers == {
            "event_id": one.record.event_id.encode(),
            "traceparent": b"00-abc-def-01",
            "x-request-id": b"req-1",
        }


async def test_a_replay_after_a_crash_that_kept_the_saga_but_lost_the_stock_reserves_again(
    harness: Harness, orchestrator: Any
) -> None:
    """The saga's and the ledger's changelog writes are separate records: a kill -9 between
    them keeps one. The restarted worker rebuilds both tables and the order comes again; the
    saga replays its last input, stock step included, so the ledger catches up."""
    await shelve(harness, orchestrator, m1=5, m2=5)
    store = harness.app.tables["stock"].data.data  # memory:// keeps raw keys and values
    shelved = dict(store)
    await harness.deliver(orchestrator, ORDER)
    saga = harness.saga("o1")
    store.clear()
    store.update(shelved)  # the crash lost the unit's stock writes, not the saga's
    harness.wiring.runtime._cache.clear()  # a restarted worker decodes afresh

    await harness.deliver(orchestrator, ORDER)

    assert levels(harness) == {"m1": (5, 2, 0), "m2": (5, 1, 0)}
    assert harness.saga("o1") == saga
    assert {s.type for s in harness.outbox.take()} >= {"OrderPlaced", "AuthorizePayment"}


async def test_a_finished_saga_leaves_with_its_reservation_and_payment_after_its_retention(
    harness: Harness, orchestrator: Any
) -> None:
    await shelve(harness, orchestrator, m1=5, m2=5)
    for message in (
        ORDER,
        AUTHORIZED,
        r.AcceptOrder(order_id="o1", store_id="s1"),
        r.CompleteOrder(order_id="o1", store_id="s1"),
    ):
        await harness.deliver(orchestrator, message)
    harness.outbox.clear()
    done = harness.saga("o1")
    assert done is not None and done.step is Step.DONE
    assert harness.reservation("s1", "o1") is not None
    retention = harness.settings.saga.retention_seconds

    early = r.Timeout(order_id="o1", store_id="s1", step="done", deadline=done.updated_at)
    await harness.deliver(orchestrator, early)  # not the deadline the saga set: ignored
    assert harness.saga("o1") is not None and outputs(harness) == []

    forget = early.model_copy(
        update={"event_id": r.new_id(), "deadline": done.updated_at + retention}
    )
    await harness.deliver(orchestrator, forget)

    assert (harness.saga("o1"), harness.reservation("s1", "o1")) == (None, None)
    payment, points = harness.outbox.take()  # a completed order has earned points: a record
    assert (payment.topic, payment.type, payment.key) == (
        t.PAYMENT_COMMANDS,
        "ForgetPayment",
        b"o1",
    )
    assert (points.topic, points.type, points.key) == (t.POINTS_COMMANDS, "ForgetPoints", b"c1")
    assert levels(harness) == {"m1": (3, 0, 2), "m2": (4, 0, 1)}  # the ledger is untouched
    ledger_entry = harness.tables.stock.entries.get("s1")
    assert ledger_entry is not None and "o1" not in ledger_entry.last  # never written back


async def test_a_finished_saga_that_used_points_also_forgets_its_points_hold(
    harness: Harness, orchestrator: Any
) -> None:
    await shelve(harness, orchestrator, m1=5, m2=5)
    paid = AUTHORIZED.model_copy(update={"amount": 2500})
    ids = {"order_id": "o1", "store_id": "s1"}
    for message in (
        WITH_POINTS,
        r.PointsReserved(**ids),
        paid,
        r.PointsDeducted(**ids),
        r.AcceptOrder(**ids),
        r.CompleteOrder(**ids),
    ):
        await harness.deliver(orchestrator, message)
    done = harness.saga("o1")
    assert done is not None and done.step is Step.DONE, done
    harness.outbox.clear()
    deadline = done.updated_at + harness.settings.saga.retention_seconds

    await harness.deliver(orchestrator, r.Timeout(**ids, step="done", deadline=deadline))

    assert harness.saga("o1") is None
    assert [(s.topic, s.type, s.key) for s in harness.outbox.take()] == [
        (t.PAYMENT_COMMANDS, "ForgetPayment", b"o1"),
        (t.POINTS_COMMANDS, "ForgetPoints", b"c1"),
    ]
