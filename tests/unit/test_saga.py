"""The order saga's transitions, one message at a time: ``decide(state, message, now, policy)``."""

from __future__ import annotations

from collections.abc import Iterable

import pytest

from eatcloud.domain.saga import (
    Decision,
    OrderStatus,
    Participant,
    SagaPolicy,
    SagaState,
    Step,
    decide,
)
from eatcloud.streams import records as r
from tests import replies

T0 = 1_000.0
POLICY = SagaPolicy(
    step_timeout=10.0, step_attempts=3, accept_timeout=600.0, compensation_retry=5.0
)
STORE = "store-1"
PRICE = 5_000


def order(points: int = 0, quantity: int = 2, price: int = PRICE) -> r.PlaceOrder:
    return r.PlaceOrder(
        order_id="order-1",
        customer_id="customer-1",
        store_id=STORE,
        lines=(
            r.OrderLine(menu_id="menu-1", quantity=quantity, unit_price=price),
            r.OrderLine(menu_id="menu-2", quantity=1, unit_price=price),
        ),
        points=points,
    )


WITH_POINTS = order(points=1_000)
WITHOUT_POINTS = order()
FREE = order(points=3 * PRICE)  # points pay the whole total


def authorized(placed: r.PlaceOrder, amount: int | None = None) -> r.PaymentAuthorized:
    return r.PaymentAuthorized(
        order_id=placed.order_id,
        amount=placed.final_amount if amount is None else amount,
        authorization_id="auth-1",
    )


def happy_replies(placed: r.PlaceOrder) -> list[r.Reply | r.AcceptOrder | r.CompleteOrder]:
    """Every answer of the happy path, in order: participants, then the store."""
    replies: list[r.Reply | r.AcceptOrder | r.CompleteOrder] = []
    if placed.points > 0:
        replies.append(r.PointsReserved(order_id=placed.order_id))
    replies.append(r.StockReserved(order_id=placed.order_id))
    if placed.final_amount > 0:
        replies.append(authorized(placed))
    replies.append(r.StockCommitted(order_id=placed.order_id))
    replies.append(r.AcceptOrder(order_id=placed.order_id, store_id=STORE))
    replies.append(r.CompleteOrder(order_id=placed.order_id, store_id=STORE))
    return replies


# Every command the saga under test sent, by the id its reply must carry: a reply written here
# without an id answers the newest command of its kind that this saga sent.
_SENT: dict[str, str] = {}  # reply id -> the type of the command it answers


def answering(state: SagaState | None, message: r.Record) -> r.Record:
    if state is None or not state.expected:
        return message
    return replies.answering(message, [(i, _SENT[i]) for i in state.expected if i in _SENT])


def feed(state: SagaState | None, message: r.Record, now: float = T0) -> Decision:
    decision = decide(state, answering(state, message), now, POLICY)  # type: ignore[arg-type]
    for command in decision.commands:
        _SENT[r.reply_id(command)] = command.type  # type: ignore[attr-defined]
    return decision


def after(state: SagaState | None, *messages: r.Record, now: float = T0) -> SagaState:
    for message in messages:
        state = feed(state, message, now).state
    assert state is not None
    return state


def saga_at(step: Step, placed: r.PlaceOrder = WITH_POINTS) -> SagaState:
    """The saga of ``placed`` driven along the happy path until it waits in ``step``."""
    state = after(None, placed)
    replies = iter(happy_replies(placed))
    while state.step is not step:
        state = after(state, next(replies))
    return state


def kinds(records: Iterable[r.Record]) -> list[str]:
    return [record.type for record in records]  # type: ignore[attr-defined]  # all have a type


def timeout_of(state: SagaState) -> r.Timeout:
    assert state.deadline is not None
    return r.Timeout(
        order_id=state.order.order_id,
        store_id=state.order.store_id,
        step=state.step.value,
        deadline=state.deadline,
    )


def cancel(by: r.Actor = r.Actor.CUSTOMER, reason: str = "") -> r.CancelOrder:
    return r.CancelOrder(order_id="order-1", store_id=STORE, by=by, reason=reason)


UNDONE_ACKS: dict[str, type[r.Reply]] = {
    "ReleasePoints": r.PointsReleased,
    "ReleaseStock": r.StockReleased,
    "VoidPayment": r.PaymentVoided,
    "RefundPayment": r.PaymentRefunded,
}


def acks() -> list[r.Reply]:
    """A fresh acknowledgement of every kind of undo (new event ids, so never a replay)."""
    return [kind(order_id="order-1") for kind in UNDONE_ACKS.values()]


def acknowledge(decision: Decision) -> Decision:
    """Answer every undo of ``decision`` as its participant would, one after the other."""
    assert decision.state is not None
    for command in decision.commands:
        ack = UNDONE_ACKS[command.type](order_id="order-1")  # type: ignore[attr-defined]
        decision = feed(decision.state, ack)
        assert decision.state is not None
    return decision


# --- happy paths --------------------------------------------------------------------------


def test_places_an_order_with_points_by_reserving_the_points_first() -> None:
    decision = feed(None, WITH_POINTS)
    assert decision.state is not None
    assert decision.state.step is Step.POINTS
    assert decision.state.status is OrderStatus.PENDING
    assert decision.state.held == (Participant.POINTS,)
    assert decision.state.deadline == T0 + POLICY.step_timeout
    assert kinds(decision.commands) == ["ReservePoints"]
    assert decision.commands[0].amount == 1_000  # type: ignore[attr-defined]
    assert kinds(decision.events) == ["OrderPlaced"]


def test_places_an_order_without_points_by_reserving_stock_first() -> None:
    decision = feed(None, WITHOUT_POINTS)
    assert decision.state is not None
    assert decision.state.step is Step.STOCK
    assert decision.state.held == (Participant.STOCK,)
    assert kinds(decision.commands) == ["ReserveStock"]
    reserve = decision.commands[0]
    assert isinstance(reserve, r.ReserveStock)
    assert reserve.store_id == STORE
    assert reserve.lines == WITHOUT_POINTS.stock_lines


def test_order_placed_event_carries_the_order_totals() -> None:
    placed = feed(None, WITH_POINTS).events[0]
    assert isinstance(placed, r.OrderPlaced)
    assert placed.total_amount == 3 * PRICE
    assert placed.points == 1_000
    assert placed.final_amount == 3 * PRICE - 1_000
    assert placed.lines == WITH_POINTS.lines


def test_happy_path_with_points_reserves_points_stock_payment_then_commits_and_deducts() -> None:
    sent: list[str] = []
    events: list[str] = []
    state: SagaState | None = None
    for message in [WITH_POINTS, *happy_replies(WITH_POINTS)]:
        decision = feed(state, message)
        sent += kinds(decision.commands)
        events += kinds(decision.events)
        state = decision.state
    assert state is not None
    assert sent == [
        "ReservePoints",
        "ReserveStock",
        "AuthorizePayment",
        "CommitStock",
        "DeductPoints",
        "EarnPoints",
    ]
    assert events == ["OrderPlaced", "OrderPaid", "OrderAccepted", "OrderCompleted"]
    assert state.status is OrderStatus.COMPLETED
    assert state.step is Step.DONE
    assert state.deadline is None


def test_happy_path_without_points_holds_none_and_earns_at_completion() -> None:
    sent: list[str] = []
    state: SagaState | None = None
    for message in [WITHOUT_POINTS, *happy_replies(WITHOUT_POINTS)]:
        decision = feed(state, message)
        sent += kinds(decision.commands)
        state = decision.state
    assert state is not None
    assert sent == ["ReserveStock", "AuthorizePayment", "CommitStock", "EarnPoints"]
    assert state.status is OrderStatus.COMPLETED


def _completed(placed: r.PlaceOrder, policy: SagaPolicy) -> Decision:
    state: SagaState | None = None
    for message in [placed, *happy_replies(placed)]:
        decision = decide(state, answering(state, message), T0, policy)  # type: ignore[arg-type]
        state = decision.state
    return decision


def test_a_completed_order_earns_a_share_of_what_was_paid_and_expects_no_reply() -> None:
    done = _completed(WITH_POINTS, SagaPolicy(points_earn_bp=250))  # 2.5 %
    earn = done.commands[-1]
    assert isinstance(earn, r.EarnPoints)
    paid = 3 * PRICE - 1_000
    assert earn.amount == paid * 250 // 10_000 == 350
    assert (earn.order_id, earn.customer_id) == (WITH_POINTS.order_id, WITH_POINTS.customer_id)
    assert done.state is not None and done.state.expected is not None
    assert r.reply_id(earn) not in done.state.expected  # nothing answers it
    assert not _completed(WITH_POINTS, SagaPolicy(points_earn_bp=0)).commands  # earning off
    assert not _completed(FREE, SagaPolicy(points_earn_bp=250)).commands  # nothing was paid


def test_skips_payment_when_points_cover_the_whole_total() -> None:
    state = after(None, FREE, r.PointsReserved(order_id="order-1"))
    decision = feed(state, r.StockReserved(order_id="order-1"))
    assert decision.state is not None
    assert decision.state.step is Step.COMMIT
    assert kinds(decision.commands) == ["CommitStock"]
    assert Participant.PAYMENT not in decision.state.held
    paid = feed(decision.state, r.StockCommitted(order_id="order-1"))
    assert kinds(paid.commands) == ["DeductPoints"]
    event = paid.events[0]
    assert isinstance(event, r.OrderPaid)
    assert (event.amount, event.authorization_id) == (0, None)


def test_commit_marks_the_order_paid_and_waits_for_the_store_to_accept() -> None:
    decision = feed(saga_at(Step.COMMIT), r.StockCommitted(order_id="order-1"))
    state = decision.state
    assert state is not None
    assert (state.status, state.step, state.paid) == (OrderStatus.PAID, Step.STORE, True)
    assert state.deadline == T0 + POLICY.accept_timeout
    paid = decision.events[0]
    assert isinstance(paid, r.OrderPaid)
    assert (paid.amount, paid.authorization_id) == (WITH_POINTS.final_amount, "auth-1")


def test_accept_moves_the_order_to_accepted_without_a_deadline() -> None:
    decision = feed(saga_at(Step.STORE), r.AcceptOrder(order_id="order-1", store_id=STORE))
    assert decision.state is not None
    assert decision.state.status is OrderStatus.ACCEPTED
    assert decision.state.step is Step.COMPLETION
    assert decision.state.deadline is None
    assert kinds(decision.events) == ["OrderAccepted"]
    assert decision.commands == ()


# --- rejections ---------------------------------------------------------------------------


def test_rejects_at_once_when_points_are_rejected_since_nothing_is_held() -> None:
    decision = feed(saga_at(Step.POINTS), r.PointsRejected(order_id="order-1", reason="too_few"))
    assert decision.state is not None
    assert decision.state.status is OrderStatus.REJECTED
    assert decision.state.step is Step.DONE
    assert decision.commands == ()
    rejected = decision.events[0]
    assert isinstance(rejected, r.OrderRejected)
    assert rejected.reason == "too_few"


def test_rejects_and_releases_points_when_stock_is_rejected() -> None:
    rejected = r.StockRejected(order_id="order-1", reason="out_of_stock", short=("menu-1",))
    decision = feed(saga_at(Step.STOCK), rejected)
    assert decision.state is not None
    assert decision.state.step is Step.COMPENSATING
    assert decision.state.pending == (Participant.POINTS,)
    assert kinds(decision.commands) == ["ReleasePoints"]
    assert decision.events == ()
    done = acknowledge(decision)
    assert done.state is not None
    assert done.state.status is OrderStatus.REJECTED
    assert done.state.reason == "out_of_stock"


def test_rejects_and_releases_stock_then_points_when_payment_is_declined() -> None:
    decision = feed(saga_at(Step.PAYMENT), r.PaymentDeclined(order_id="order-1", reason="card"))
    assert kinds(decision.commands) == ["ReleaseStock", "ReleasePoints"]
    release = decision.commands[0]
    assert isinstance(release, r.ReleaseStock)
    assert release.reason == "card"
    done = acknowledge(decision)
    assert done.state is not None
    assert done.state.status is OrderStatus.REJECTED
    assert kinds(done.events) == ["OrderRejected"]


def test_voids_the_payment_when_the_authorized_amount_differs_from_the_order() -> None:
    mismatch = authorized(WITH_POINTS, amount=WITH_POINTS.final_amount + 1)
    decision = feed(saga_at(Step.PAYMENT), mismatch)
    assert kinds(decision.commands) == ["VoidPayment", "ReleaseStock", "ReleasePoints"]
    done = acknowledge(decision)
    assert done.state is not None
    assert done.state.status is OrderStatus.REJECTED
    assert done.state.reason == "payment_amount_mismatch"


def test_rejects_and_undoes_everything_when_the_stock_commit_is_rejected() -> None:
    rejected = r.StockCommitRejected(order_id="order-1", reason="reservation_expired")
    decision = feed(saga_at(Step.COMMIT), rejected)
    assert kinds(decision.commands) == ["VoidPayment", "ReleaseStock", "ReleasePoints"]
    done = acknowledge(decision)
    assert done.state is not None
    assert done.state.status is OrderStatus.REJECTED
    assert done.state.reason == "reservation_expired"


def test_ends_only_after_every_undo_is_acknowledged() -> None:
    state = after(saga_at(Step.PAYMENT), r.PaymentDeclined(order_id="order-1", reason="card"))
    first = feed(state, r.StockReleased(order_id="order-1"))
    assert first.state is not None
    assert first.state.step is Step.COMPENSATING
    assert first.state.pending == (Participant.POINTS,)
    assert first.events == ()
    last = feed(first.state, r.PointsReleased(order_id="order-1"))
    assert last.state is not None
    assert (last.state.step, last.state.pending) == (Step.DONE, ())
    assert kinds(last.events) == ["OrderRejected"]


def test_acknowledgements_may_arrive_in_any_order() -> None:
    state = after(saga_at(Step.COMMIT), r.StockCommitRejected(order_id="order-1", reason="x"))
    done = after(
        state,
        r.PointsReleased(order_id="order-1"),
        r.PaymentVoided(order_id="order-1"),
        r.StockReleased(order_id="order-1"),
    )
    assert done.status is OrderStatus.REJECTED


# --- cancels ------------------------------------------------------------------------------

PRE_ACCEPT_UNDOS = [
    (Step.POINTS, ["ReleasePoints"]),
    (Step.STOCK, ["ReleaseStock", "ReleasePoints"]),
    (Step.PAYMENT, ["VoidPayment", "ReleaseStock", "ReleasePoints"]),
    (Step.COMMIT, ["VoidPayment", "ReleaseStock", "ReleasePoints"]),
    (Step.STORE, ["RefundPayment", "ReleaseStock", "ReleasePoints"]),
]


@pytest.mark.parametrize(("step", "undos"), PRE_ACCEPT_UNDOS)
def test_customer_cancel_before_acceptance_undoes_what_is_held_in_reverse(
    step: Step, undos: list[str]
) -> None:
    decision = feed(saga_at(step), cancel())
    assert kinds(decision.commands) == undos
    assert decision.events == ()
    done = acknowledge(decision)
    assert done.state is not None
    assert done.state.status is OrderStatus.CANCELLED
    cancelled = done.events[0]
    assert isinstance(cancelled, r.OrderCancelled)
    assert cancelled.by is r.Actor.CUSTOMER
    assert cancelled.reason == "cancelled_by_customer"
    assert cancelled.refunded is (step is Step.STORE)


def test_customer_cannot_cancel_after_the_store_accepted() -> None:
    state = saga_at(Step.COMPLETION)
    decision = feed(state, cancel())
    assert decision.state is state
    assert decision.commands == decision.events == ()
    assert "may not cancel" in decision.note


@pytest.mark.parametrize("actor", [r.Actor.STORE, r.Actor.ADMIN])
def test_store_or_admin_cancel_after_acceptance_refunds_the_payment(actor: r.Actor) -> None:
    decision = feed(saga_at(Step.COMPLETION), cancel(actor, reason="kitchen fire"))
    assert kinds(decision.commands) == ["RefundPayment", "ReleaseStock", "ReleasePoints"]
    done = acknowledge(decision)
    cancelled = done.events[0]
    assert isinstance(cancelled, r.OrderCancelled)
    assert (cancelled.by, cancelled.reason, cancelled.refunded) == (actor, "kitchen fire", True)


def test_cancel_while_compensating_changes_nothing() -> None:
    state = after(saga_at(Step.PAYMENT), r.PaymentDeclined(order_id="order-1", reason="card"))
    decision = feed(state, cancel(r.Actor.ADMIN))
    assert decision.state is state
    assert decision.commands == decision.events == ()


@pytest.mark.parametrize("actor", list(r.Actor))
def test_cancel_after_the_end_changes_nothing(actor: r.Actor) -> None:
    for state in (
        saga_at(Step.DONE),
        after(saga_at(Step.POINTS), r.PointsRejected(order_id="order-1", reason="too_few")),
    ):
        decision = feed(state, cancel(actor))
        assert decision.state is state
        assert decision.commands == decision.events == ()


# --- timeouts -----------------------------------------------------------------------------


def test_refunds_payment_when_store_does_not_accept_in_time() -> None:
    state = saga_at(Step.STORE)
    decision = feed(state, timeout_of(state), now=state.deadline or 0.0)
    assert kinds(decision.commands) == ["RefundPayment", "ReleaseStock", "ReleasePoints"]
    release = decision.commands[1]
    assert isinstance(release, r.ReleaseStock)
    assert release.reason == "store_timeout"
    done = acknowledge(decision)
    assert done.state is not None
    assert done.state.status is OrderStatus.CANCELLED
    cancelled = done.events[0]
    assert isinstance(cancelled, r.OrderCancelled)
    assert (cancelled.reason, cancelled.by, cancelled.refunded) == ("store_timeout", None, True)


@pytest.mark.parametrize(
    ("step", "command", "undos"),
    [
        (Step.POINTS, "ReservePoints", ["ReleasePoints"]),
        (Step.STOCK, "ReserveStock", ["ReleaseStock", "ReleasePoints"]),
        (Step.PAYMENT, "AuthorizePayment", ["VoidPayment", "ReleaseStock", "ReleasePoints"]),
        (Step.COMMIT, "CommitStock", ["VoidPayment", "ReleaseStock", "ReleasePoints"]),
    ],
)
def test_retries_a_step_on_timeout_up_to_step_attempts_then_compensates(
    step: Step, command: str, undos: list[str]
) -> None:
    state = saga_at(step)
    for attempt in range(2, POLICY.step_attempts + 1):
        now = state.deadline or 0.0
        decision = feed(state, timeout_of(state), now=now)
        assert kinds(decision.commands) == [command]
        assert decision.state is not None
        state = decision.state
        assert (state.step, state.attempts) == (step, attempt)
        assert state.deadline == now + POLICY.step_timeout
    decision = feed(state, timeout_of(state), now=state.deadline or 0.0)
    assert kinds(decision.commands) == undos
    done = acknowledge(decision)
    assert done.state is not None
    assert done.state.status is OrderStatus.REJECTED
    assert done.state.reason == f"{step.value}_timeout"


def test_a_retried_step_resends_the_same_command_content() -> None:
    state = saga_at(Step.STOCK)
    retry = feed(state, timeout_of(state), now=state.deadline or 0.0).commands[0]
    first = state.last_commands[0]
    assert retry.model_dump(exclude={"event_id", "occurred_at"}) == first.model_dump(
        exclude={"event_id", "occurred_at"}
    )
    assert retry.event_id != first.event_id


@pytest.mark.parametrize("wrong", ["step", "deadline"])
def test_ignores_a_stale_timeout(wrong: str) -> None:
    state = saga_at(Step.STOCK)
    good = timeout_of(state)
    stale = (
        good.model_copy(update={"step": Step.POINTS.value})
        if wrong == "step"
        else good.model_copy(update={"deadline": good.deadline - 1})
    )
    decision = feed(state, stale)
    assert decision.state is state
    assert decision.commands == decision.events == ()
    assert decision.note == "stale timeout"


def test_timeout_of_an_earlier_attempt_is_stale_after_a_retry() -> None:
    state = saga_at(Step.POINTS)
    first = timeout_of(state)
    retried = after(state, first, now=first.deadline)
    decision = feed(retried, first.model_copy(update={"event_id": "again"}), now=first.deadline)
    assert decision.state is retried
    assert decision.commands == ()


def test_compensating_timeout_resends_only_the_pending_undos() -> None:
    state = after(saga_at(Step.COMMIT), cancel())
    state = after(state, r.PaymentVoided(order_id="order-1"))
    assert state.pending == (Participant.STOCK, Participant.POINTS)
    now = state.deadline or 0.0
    decision = feed(state, timeout_of(state), now=now)
    assert kinds(decision.commands) == ["ReleaseStock", "ReleasePoints"]
    assert decision.state is not None
    assert decision.state.step is Step.COMPENSATING
    assert decision.state.deadline == now + POLICY.compensation_retry
    assert decision.events == ()


def test_compensating_ignores_a_stale_timeout() -> None:
    state = saga_at(Step.STOCK)
    old = timeout_of(state)
    state = after(state, cancel())
    decision = feed(state, old)
    assert decision.state is state
    assert decision.commands == ()


def test_timeout_after_the_end_changes_nothing() -> None:
    state = saga_at(Step.STORE)
    late = timeout_of(state)
    done = after(state, r.AcceptOrder(order_id="order-1", store_id=STORE))
    decision = feed(done, late)
    assert decision.state is done
    assert decision.commands == decision.events == ()


# --- late, duplicate and replayed messages ------------------------------------------------


def test_late_success_after_failure_is_compensated_again() -> None:
    state = saga_at(Step.PAYMENT)
    for _ in range(POLICY.step_attempts):
        state = after(state, timeout_of(state), now=state.deadline or 0.0)
    state = after(
        state,
        r.PaymentVoided(order_id="order-1"),
        r.StockReleased(order_id="order-1"),
        r.PointsReleased(order_id="order-1"),
    )
    assert state.status is OrderStatus.REJECTED
    decision = feed(state, authorized(WITH_POINTS))
    assert kinds(decision.commands) == ["VoidPayment"]
    assert decision.events == ()
    assert decision.state is not None
    assert (decision.state.status, decision.state.step) == (OrderStatus.REJECTED, Step.DONE)


def test_late_success_after_a_refund_is_refunded_again() -> None:
    state = after(saga_at(Step.STORE), cancel())
    done = acknowledge(Decision(state, state.last_commands))
    assert done.state is not None
    decision = feed(done.state, r.StockCommitted(order_id="order-1"))
    assert kinds(decision.commands) == ["ReleaseStock"]
    decision = feed(done.state, authorized(WITH_POINTS))
    assert kinds(decision.commands) == ["RefundPayment"]


def test_a_late_success_undo_never_reuses_an_id_its_input_already_gave() -> None:
    reserved = r.StockReserved(order_id="order-1")
    first = feed(saga_at(Step.STOCK), reserved)
    assert first.state is not None
    ended = after(first.state, cancel(), *acks())
    late = feed(ended, reserved)
    assert kinds(late.commands) == ["ReleaseStock"]
    assert late.commands[0].event_id not in {x.event_id for x in first.commands}
    assert late.state is not None
    later = after(late.state, authorized(WITH_POINTS))  # another late success moves on
    again = feed(later, reserved)
    assert again.commands == late.commands  # the same late answer keeps its id


def test_late_success_while_its_undo_is_pending_sends_nothing_more() -> None:
    state = after(saga_at(Step.STOCK), cancel())
    decision = feed(state, r.StockReserved(order_id="order-1"))
    assert decision.state is state
    assert decision.commands == ()
    assert "already on the way" in decision.note


def test_late_success_after_its_undo_was_acknowledged_is_undone_again() -> None:
    state = after(saga_at(Step.STOCK), cancel(), r.StockReleased(order_id="order-1"))
    decision = feed(state, r.StockReserved(order_id="order-1"))
    assert kinds(decision.commands) == ["ReleaseStock"]
    assert decision.state is not None
    assert decision.state.step is Step.COMPENSATING
    assert decision.state.pending == (Participant.POINTS,)


def test_undo_acknowledgements_after_the_end_change_nothing() -> None:
    state = after(saga_at(Step.STOCK), cancel(), *acks())
    assert state.status is OrderStatus.CANCELLED
    for ack in map(lambda a: answering(state, a), acks()):
        if ack.event_id == state.last_input:
            continue  # the last input again: a replay, whose outputs are sent again
        decision = feed(state, ack)
        assert decision.state is state
        assert decision.commands == decision.events == ()


def test_a_reply_to_no_command_of_the_saga_is_unsolicited_and_moves_nothing() -> None:
    state = saga_at(Step.PAYMENT)
    forged = authorized(WITH_POINTS).model_copy(update={"event_id": "forged-1"})
    decision = feed(state, forged)
    assert decision.unsolicited and decision.state is state
    assert decision.commands == decision.events == ()
    # The same reply, answering the AuthorizePayment the saga did send, moves it on.
    genuine = feed(state, answering(state, authorized(WITH_POINTS)))
    assert not genuine.unsolicited and genuine.state is not None
    assert genuine.state.step is Step.COMMIT


def test_a_saga_from_before_replies_were_tied_to_commands_takes_any_reply() -> None:
    state = saga_at(Step.PAYMENT).model_copy(update={"expected": None})
    decision = feed(state, authorized(WITH_POINTS).model_copy(update={"event_id": "any-1"}))
    assert not decision.unsolicited and decision.state is not None
    assert decision.state.step is Step.COMMIT and decision.state.expected is None


@pytest.mark.parametrize(
    "step", [Step.STOCK, Step.PAYMENT, Step.COMMIT, Step.STORE, Step.COMPLETION]
)
def test_duplicate_replies_of_earlier_steps_change_nothing(step: Step) -> None:
    state = saga_at(step)
    answered = happy_replies(WITH_POINTS)[: state.version - 1]  # one change per answer
    # Redelivered copies (their ids answer commands the saga sent); the last input again is a
    # replay, whose outputs are sent again (tested on its own).
    duplicates = [answering(state, m) for m in answered]
    duplicates = [d for d in duplicates if d.event_id != state.last_input]
    assert duplicates or step is Step.STOCK  # in STOCK, the one answer so far is the last input
    for duplicate in duplicates:
        decision = feed(state, duplicate)
        assert decision.state is state, type(duplicate).__name__
        assert decision.commands == decision.events == ()


def test_replies_of_a_later_step_change_nothing() -> None:
    state = saga_at(Step.STOCK)
    for reply in (
        authorized(WITH_POINTS),
        r.StockCommitted(order_id="order-1"),
        r.PaymentDeclined(order_id="order-1", reason="card"),
        r.StockCommitRejected(order_id="order-1", reason="x"),
        r.PointsDeducted(order_id="order-1"),
    ):
        decision = feed(state, reply)
        assert decision.state is state
        assert decision.commands == decision.events == ()


def test_a_second_place_order_changes_nothing() -> None:
    state = saga_at(Step.PAYMENT)
    decision = feed(state, WITH_POINTS.model_copy(update={"event_id": "another"}))
    assert decision.state is state
    assert decision.commands == decision.events == ()


def test_replayed_last_input_resends_identical_outputs() -> None:
    state = saga_at(Step.COMMIT)
    committed = r.StockCommitted(order_id="order-1")
    first = feed(state, committed, now=T0)
    assert first.state is not None
    again = feed(first.state, committed, now=T0 + 50)
    assert again.state is first.state
    assert again.commands == first.commands
    assert again.events == first.events
    assert again.note == "replayed input: outputs re-sent"


def test_replayed_place_order_resends_its_first_command_and_event() -> None:
    first = feed(None, WITH_POINTS)
    again = feed(first.state, WITH_POINTS, now=T0 + 1)
    assert again.state is first.state
    assert (again.commands, again.events) == (first.commands, first.events)


def test_output_ids_derive_from_the_input_id() -> None:
    state = saga_at(Step.STORE)
    timeout = timeout_of(state)
    one = feed(state, timeout, now=T0)
    two = feed(state, timeout, now=T0 + 7)
    ids = [x.event_id for x in (*one.commands, *one.events)]
    assert ids == [x.event_id for x in (*two.commands, *two.events)]
    assert len(set(ids)) == len(ids)
    assert timeout.event_id not in ids


def test_every_change_bumps_the_version_and_records_the_input() -> None:
    state = saga_at(Step.STOCK)
    reply = answering(state, r.StockReserved(order_id="order-1"))
    decision = feed(state, reply, now=T0 + 3)
    assert decision.state is not None
    assert decision.state.version == state.version + 1
    assert decision.state.updated_at == T0 + 3
    assert decision.state.last_input == reply.event_id
    assert decision.state.last_commands == decision.commands


def test_messages_for_an_unknown_order_are_dropped() -> None:
    for message in (cancel(), r.StockReserved(order_id="order-1")):
        decision = feed(None, message)
        assert decision.state is None
        assert decision.commands == decision.events == ()
        assert "no saga" in decision.note


# --- the store ----------------------------------------------------------------------------


def test_accept_from_another_store_is_ignored() -> None:
    state = saga_at(Step.STORE)
    decision = feed(state, r.AcceptOrder(order_id="order-1", store_id="store-2"))
    assert decision.state is state
    assert decision.events == ()


def test_complete_from_another_store_is_ignored() -> None:
    state = saga_at(Step.COMPLETION)
    decision = feed(state, r.CompleteOrder(order_id="order-1", store_id="store-2"))
    assert decision.state is state
    assert decision.events == ()


@pytest.mark.parametrize("step", [Step.POINTS, Step.STOCK, Step.PAYMENT, Step.COMMIT])
def test_accept_before_the_order_is_paid_is_ignored(step: Step) -> None:
    state = saga_at(step)
    decision = feed(state, r.AcceptOrder(order_id="order-1", store_id=STORE))
    assert decision.state is state
    assert decision.events == ()


def test_complete_before_acceptance_is_ignored() -> None:
    state = saga_at(Step.STORE)
    decision = feed(state, r.CompleteOrder(order_id="order-1", store_id=STORE))
    assert decision.state is state
    assert decision.events == ()


def test_messages_after_completion_change_nothing() -> None:
    state = saga_at(Step.DONE)
    assert state.status is OrderStatus.COMPLETED
    for message in (
        r.StockCommitted(order_id="order-1"),
        authorized(WITH_POINTS),
        r.CompleteOrder(order_id="order-1", store_id=STORE),
        cancel(r.Actor.ADMIN),
    ):
        decision = feed(state, message)
        assert decision.state is state
        assert decision.commands == decision.events == ()


def test_saga_state_survives_a_json_round_trip() -> None:
    state = after(saga_at(Step.COMMIT), cancel(r.Actor.STORE))
    assert SagaState.model_validate_json(state.model_dump_json()) == state
