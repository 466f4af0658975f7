"""The orchestrator agent: order commands and participant replies in, the sagas table and the
saga's commands and order events out."""

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


async def test_places_an_order_by_reserving_its_stock_and_announcing_it(
    harness: Harness, orchestrator: Any
) -> None:
    await harness.deliver(orchestrator, ORDER)

    reserve, placed = harness.outbox.take()
    assert (reserve.topic, reserve.key, reserve.type) == (t.STOCK_COMMANDS, b"s1", "ReserveStock")
    assert reserve.record.lines == ORDER.stock_lines
    assert (placed.topic, placed.key, placed.type) == (t.ORDER_EVENTS, b"o1", "OrderPlaced")
    assert (placed.record.total_amount, placed.record.final_amount) == (3500, 3500)
    saga = harness.saga("o1")
    assert saga is not None
    assert (saga.status, saga.step, saga.held) == (
        OrderStatus.PENDING,
        Step.STOCK,
        (Participant.STOCK,),
    )
    timeout = harness.settings.saga.step_timeout_seconds
    assert saga.deadline == pytest.approx(time.time() + timeout, abs=5)
    assert [w.table for w in harness.outbox.writes] == ["sagas"]


async def test_walks_an_order_through_the_happy_path_step_by_step(
    harness: Harness, orchestrator: Any
) -> None:
    steps: list[tuple[r.Record, list[tuple[str, str, bytes]], OrderStatus, Step]] = [
        (
            ORDER,
            [(t.STOCK_COMMANDS, "ReserveStock", b"s1"), (t.ORDER_EVENTS, "OrderPlaced", b"o1")],
            OrderStatus.PENDING,
            Step.STOCK,
        ),
        (
            r.StockReserved(order_id="o1"),
            [(t.PAYMENT_COMMANDS, "AuthorizePayment", b"o1")],
            OrderStatus.PENDING,
            Step.PAYMENT,
        ),
        (
            r.PaymentAuthorized(order_id="o1", amount=3500, authorization_id="auth-1"),
            [(t.STOCK_COMMANDS, "CommitStock", b"s1")],
            OrderStatus.PENDING,
            Step.COMMIT,
        ),
        (
            r.StockCommitted(order_id="o1"),
            [(t.ORDER_EVENTS, "OrderPaid", b"o1")],
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
            [(t.ORDER_EVENTS, "OrderCompleted", b"o1")],
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
    assert (saga.authorization_id, saga.paid, saga.deadline) == ("auth-1", True, None)


async def test_asks_for_the_amount_left_after_points_and_deducts_them_once_paid(
    harness: Harness, orchestrator: Any
) -> None:
    await harness.deliver(orchestrator, WITH_POINTS)
    reserve_points, _ = harness.outbox.take()
    assert (reserve_points.topic, reserve_points.key) == (t.POINTS_COMMANDS, b"c1")
    assert (reserve_points.type, reserve_points.record.amount) == ("ReservePoints", 1000)

    await harness.deliver(orchestrator, r.PointsReserved(order_id="o1"))
    assert outputs(harness) == [(t.STOCK_COMMANDS, "ReserveStock", b"s1")]
    await harness.deliver(orchestrator, r.StockReserved(order_id="o1"))
    (authorize,) = harness.outbox.take()
    assert (authorize.type, authorize.record.amount) == ("AuthorizePayment", 2500)
    await harness.deliver(
        orchestrator, r.PaymentAuthorized(order_id="o1", amount=2500, authorization_id="a")
    )
    await harness.deliver(orchestrator, r.StockCommitted(order_id="o1"))

    assert outputs(harness)[-2:] == [
        (t.POINTS_COMMANDS, "DeductPoints", b"c1"),
        (t.ORDER_EVENTS, "OrderPaid", b"o1"),
    ]


async def test_a_redelivered_place_order_resends_the_same_outputs_and_leaves_the_saga_alone(
    harness: Harness, orchestrator: Any
) -> None:
    await harness.deliver(orchestrator, ORDER)
    first, saga = harness.outbox.take(), harness.saga("o1")
    harness.outbox.clear()

    await harness.deliver(orchestrator, ORDER)

    assert harness.outbox.take() == first  # same ids, same bytes: consumers see duplicates
    assert harness.saga("o1") == saga
    assert harness.outbox.writes == []


async def test_a_redelivered_reply_resends_the_same_command(
    harness: Harness, orchestrator: Any
) -> None:
    reserved = r.StockReserved(order_id="o1")
    await harness.deliver(orchestrator, ORDER)
    harness.outbox.take()
    await harness.deliver(orchestrator, reserved)
    (authorize,), saga = harness.outbox.take(), harness.saga("o1")
    harness.outbox.clear()

    await harness.deliver(orchestrator, reserved)

    assert harness.outbox.take() == [authorize]
    assert harness.saga("o1") == saga
    assert harness.outbox.writes == []


async def test_a_second_order_under_the_same_id_changes_nothing(
    harness: Harness, orchestrator: Any
) -> None:
    await harness.deliver(orchestrator, ORDER)
    saga = harness.saga("o1")
    harness.outbox.clear()

    await harness.deliver(orchestrator, ORDER.model_copy(update={"event_id": r.new_id()}))

    assert harness.outbox.take() == []
    assert harness.saga("o1") == saga


async def test_ignores_a_reply_for_an_order_it_never_saw(
    harness: Harness, orchestrator: Any
) -> None:
    await harness.deliver(orchestrator, r.StockReserved(order_id="o9"))

    assert harness.outbox.take() == []
    assert harness.saga("o9") is None
    assert harness.outbox.writes == []


async def test_rejects_the_order_at_once_when_its_stock_is_short(
    harness: Harness, orchestrator: Any
) -> None:
    await harness.deliver(orchestrator, ORDER)
    harness.outbox.take()

    await harness.deliver(
        orchestrator, r.StockRejected(order_id="o1", reason="out_of_stock", short=("m1",))
    )

    (rejected,) = harness.outbox.take()
    assert (rejected.topic, rejected.type, rejected.record.reason) == (
        t.ORDER_EVENTS,
        "OrderRejected",
        "out_of_stock",
    )
    saga = harness.saga("o1")
    assert saga is not None
    assert (saga.status, saga.step, saga.held) == (OrderStatus.REJECTED, Step.DONE, ())


async def test_releases_the_stock_when_the_payment_is_declined_then_rejects_the_order(
    harness: Harness, orchestrator: Any
) -> None:
    await harness.deliver(orchestrator, ORDER)
    await harness.deliver(orchestrator, r.StockReserved(order_id="o1"))
    harness.outbox.take()

    await harness.deliver(orchestrator, r.PaymentDeclined(order_id="o1", reason="card_declined"))

    (release,) = harness.outbox.take()
    assert (release.topic, release.key, release.type) == (t.STOCK_COMMANDS, b"s1", "ReleaseStock")
    assert release.record.reason == "card_declined"
    saga = harness.saga("o1")
    assert saga is not None
    assert (saga.step, saga.pending) == (Step.COMPENSATING, (Participant.STOCK,))

    await harness.deliver(orchestrator, r.StockReleased(order_id="o1"))

    assert outputs(harness) == [(t.ORDER_EVENTS, "OrderRejected", b"o1")]
    saga = harness.saga("o1")
    assert saga is not None
    assert (saga.status, saga.reason) == (OrderStatus.REJECTED, "card_declined")


async def test_a_customer_cancel_undoes_payment_then_stock_before_cancelling(
    harness: Harness, orchestrator: Any
) -> None:
    await harness.deliver(orchestrator, ORDER)
    await harness.deliver(orchestrator, r.StockReserved(order_id="o1"))
    harness.outbox.take()

    await harness.deliver(orchestrator, r.CancelOrder(order_id="o1", by=r.Actor.CUSTOMER))
    assert outputs(harness) == [
        (t.PAYMENT_COMMANDS, "VoidPayment", b"o1"),
        (t.STOCK_COMMANDS, "ReleaseStock", b"s1"),
    ]
    await harness.deliver(orchestrator, r.PaymentVoided(order_id="o1"))
    assert outputs(harness) == []
    await harness.deliver(orchestrator, r.StockReleased(order_id="o1"))

    (cancelled,) = harness.outbox.take()
    assert (cancelled.type, cancelled.record.by) == ("OrderCancelled", r.Actor.CUSTOMER)
    saga = harness.saga("o1")
    assert saga is not None
    assert saga.status is OrderStatus.CANCELLED


async def test_resends_the_step_when_its_deadline_passes_and_ignores_stale_timeouts(
    harness: Harness, orchestrator: Any
) -> None:
    await harness.deliver(orchestrator, ORDER)
    (reserve, _), saga = harness.outbox.take(), harness.saga("o1")
    assert saga is not None and saga.deadline is not None

    await harness.deliver(orchestrator, r.Timeout(order_id="o1", step="stock", deadline=1.0))
    assert harness.outbox.take() == []

    await harness.deliver(
        orchestrator, r.Timeout(order_id="o1", step="stock", deadline=saga.deadline)
    )
    (again,) = harness.outbox.take()
    assert (again.type, again.record.lines) == ("ReserveStock", reserve.record.lines)
    retried = harness.saga("o1")
    assert retried is not None
    assert (retried.step, retried.attempts) == (Step.STOCK, 2)
    assert retried.deadline is not None and retried.deadline > saga.deadline


async def test_outputs_carry_their_event_id_and_the_trace_headers_of_their_cause(
    harness: Harness, orchestrator: Any
) -> None:
    trace = [("traceparent", b"00-abc-def-01"), ("x-request-id", b"req-1"), ("other", b"x")]

    await harness.deliver(orchestrator, ORDER, headers=trace)

    for sent in harness.outbox.take():
        assert sent.headers == {
            "event_id": sent.record.event_id.encode(),
            "traceparent": b"00-abc-def-01",
            "x-request-id": b"req-1",
        }
