"""The in-memory deadline indexes behind the saga and reservation timers (the saga's carry
each order's store: its Timeout goes to the store's partition)."""

from __future__ import annotations

from eatcloud.agents.orchestrator import Deadlines
from eatcloud.agents.stock import HeldReservations
from eatcloud.domain.saga import SagaState, Step
from eatcloud.domain.stock import Reservation, ReservationStatus
from eatcloud.streams import records as r

ORDER = r.PlaceOrder(
    order_id="o1",
    customer_id="c1",
    store_id="s1",
    lines=(r.OrderLine(menu_id="m1", quantity=1, unit_price=100),),
)


def saga(step: Step, deadline: float | None) -> SagaState:
    return SagaState(order=ORDER, step=step, deadline=deadline)


def test_deadlines_hand_out_only_the_latest_deadline_of_each_saga_once() -> None:
    deadlines = Deadlines(retention=100.0)
    deadlines.track("o1", saga(Step.STOCK, 10.0))
    deadlines.track("o1", saga(Step.PAYMENT, 20.0))  # the stock deadline is now stale
    deadlines.track("o2", saga(Step.STOCK, 15.0))
    deadlines.track("o3", saga(Step.STOCK, 12.0))
    deadlines.track("o3", saga(Step.DONE, None))  # ended: only its retention is left

    assert deadlines.pop_passed(16.0) == [("o2", (Step.STOCK, "s1"), 15.0)]
    assert deadlines.pop_passed(25.0) == [("o1", (Step.PAYMENT, "s1"), 20.0)]
    assert deadlines.pop_passed(99.0) == []
    assert deadlines.pop_passed(100.0) == [
        ("o3", ("done", "s1"), 100.0)
    ]  # updated_at 0 + retention


def test_deadlines_rebuild_replaces_what_was_tracked() -> None:
    deadlines = Deadlines(retention=1000.0)
    deadlines.track("gone", saga(Step.STOCK, 1.0))
    deadlines.rebuild([("o1", saga(Step.STORE, 5.0)), ("o2", saga(Step.DONE, None))])
    assert not deadlines.stale
    assert deadlines.pop_passed(10.0) == [("o1", (Step.STORE, "s1"), 5.0)]


def held(status: ReservationStatus, expires_at: float) -> Reservation:
    lines = (r.StockLine(menu_id="m1", quantity=1),)
    return Reservation(status=status, lines=lines, expires_at=expires_at)


def test_held_reservations_report_each_expired_one_once_per_store() -> None:
    index = HeldReservations()
    index.track("s1", "o1", held(ReservationStatus.RESERVED, 10.0))
    index.track("s1", "o2", held(ReservationStatus.RESERVED, 12.0))
    index.track("s2", "o3", held(ReservationStatus.RESERVED, 11.0))
    index.track("s1", "o2", held(ReservationStatus.COMMITTED, 12.0))  # no longer held

    assert index.due(5.0) == {}
    assert index.due(20.0) == {"s1": ["o1"], "s2": ["o3"]}
    assert index.due(30.0) == {}


def test_held_reservations_rebuild_from_records_keeps_only_held_ones() -> None:
    index = HeldReservations()
    index.rebuild(
        [
            ("s1/o1", held(ReservationStatus.RESERVED, 3.0)),
            ("s1/o2", held(ReservationStatus.RELEASED, 3.0)),
            ("s2/o3", held(ReservationStatus.RESERVED, 50.0)),
        ]
    )
    assert index.due(10.0) == {"s1": ["o1"]}
