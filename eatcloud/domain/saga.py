"""The order saga as a pure transition function: ``decide(state, message, now, policy)``.

The orchestrator agent feeds it every message of an order (commands from ``order-commands``,
participant replies from ``saga-replies``) with the saga's current state from its table, and
gets back the new state, the commands to send and the order events to append. No I/O here.

Happy path::

    PlaceOrder -> [points > 0] ReservePoints -> ReserveStock -> [amount > 0] AuthorizePayment
      -> CommitStock -> PAID (DeductPoints) -> AcceptOrder -> ACCEPTED -> CompleteOrder -> COMPLETED
      (EarnPoints: the customer earns ``policy.points_earn_bp`` of what was paid; no reply)

Rules that keep it safe under at-least-once delivery, duplicates and reordering:

- A participant joins ``held`` when its command is *sent*, so a step whose outcome is unknown
  (timed out) is compensated too. Compensation commands travel on the same key and topic as the
  command they undo, so a participant always sees the undo after the do; undoing what never
  happened is a no-op there.
- Failures compensate in reverse (payment, stock, points) and the saga waits in COMPENSATING
  until every participant acknowledged, re-sending on its deadline; only then does the order
  end CANCELLED or REJECTED. Nothing is forgotten if a message is lost.
- A reply that is not the one the current step waits for is a duplicate or late: it never moves
  the saga; a late success of a failed saga is compensated again (idempotently).
- Timeouts carry the step and deadline they were set for; any other Timeout is stale.
- A reply counts only if it answers a command this saga sent: the saga keeps the reply id of
  every command it sent (``expected``; a participant's reply id derives from its command's id,
  ``records.reply_ids``). Anything else is ``unsolicited``: the orchestrator dead-letters it
  and the saga does not move (a forged ``PaymentAuthorized`` cannot make an order PAID).
- Output ids derive from the input's id, so re-processing an input yields identical outputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict

from eatcloud.streams import records as r


class OrderStatus(StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    ACCEPTED = "ACCEPTED"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    REJECTED = "REJECTED"


TERMINAL = frozenset({OrderStatus.COMPLETED, OrderStatus.CANCELLED, OrderStatus.REJECTED})


class Step(StrEnum):
    POINTS = "points"
    STOCK = "stock"
    PAYMENT = "payment"
    COMMIT = "commit"
    STORE = "store"  # PAID, waiting for the store to accept
    COMPLETION = "completion"  # ACCEPTED, waiting for the store to complete
    COMPENSATING = "compensating"
    DONE = "done"


class Participant(StrEnum):
    POINTS = "points"
    STOCK = "stock"
    PAYMENT = "payment"


@dataclass(frozen=True)
class SagaPolicy:
    step_timeout: float = 10.0
    step_attempts: int = 3
    accept_timeout: float = 600.0
    compensation_retry: float = 10.0
    # Points a completed order earns, in hundredths of a percent of what was paid (100 = 1 %).
    points_earn_bp: int = 100

    def points_earned(self, paid: int) -> int:
        return paid * self.points_earn_bp // 10_000


class SagaState(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    order: r.PlaceOrder
    status: OrderStatus = OrderStatus.PENDING
    step: Step
    held: tuple[Participant, ...] = ()
    pending: tuple[Participant, ...] = ()
    outcome: OrderStatus | None = None
    reason: str = ""
    cancelled_by: r.Actor | None = None
    deadline: float | None = None
    attempts: int = 1
    authorization_id: str | None = None
    paid: bool = False
    version: int = 0
    updated_at: float = 0.0
    # The last input and what it produced: when that input is delivered again (a replay after
    # a crash), its outputs are sent again, since they may not have reached the broker.
    last_input: str = ""
    last_commands: tuple[r.SagaCommand, ...] = ()
    last_events: tuple[r.OrderEventRecord, ...] = ()
    # The reply id of every command this saga has sent. None: a saga written before replies
    # were tied to their commands (it takes any reply, as it did then).
    expected: tuple[str, ...] | None = ()


@dataclass(frozen=True)
class Decision:
    state: SagaState | None
    commands: tuple[r.Record, ...] = ()
    events: tuple[r.OrderEvent, ...] = ()
    note: str = ""  # why a message changed nothing, for the log
    unsolicited: bool = False  # a reply to no command of this saga: to the dead letters


Message = r.PlaceOrder | r.CancelOrder | r.AcceptOrder | r.CompleteOrder | r.Timeout | r.Reply

_ADVANCES: dict[str, Step] = {
    "PointsReserved": Step.POINTS,
    "StockReserved": Step.STOCK,
    "PaymentAuthorized": Step.PAYMENT,
    "StockCommitted": Step.COMMIT,
}
_FAILS: dict[str, tuple[Step, Participant | None]] = {
    "PointsRejected": (Step.POINTS, Participant.POINTS),
    "StockRejected": (Step.STOCK, Participant.STOCK),
    "PaymentDeclined": (Step.PAYMENT, Participant.PAYMENT),
    "StockCommitRejected": (Step.COMMIT, None),
}
_UNDONE: dict[str, Participant] = {
    "PointsReleased": Participant.POINTS,
    "StockReleased": Participant.STOCK,
    "PaymentVoided": Participant.PAYMENT,
    "PaymentRefunded": Participant.PAYMENT,
}
_OWNER: dict[Step, Participant] = {
    Step.POINTS: Participant.POINTS,
    Step.STOCK: Participant.STOCK,
    Step.PAYMENT: Participant.PAYMENT,
    Step.COMMIT: Participant.STOCK,
}


@dataclass
class _Out:
    """Collects one decision's outputs, giving each an id derived from the input's id."""

    source: str
    now: float
    commands: list[r.Record] = field(default_factory=list)
    events: list[r.OrderEvent] = field(default_factory=list)
    # An input answered a second time, in a later state (a late success), gets ids of its own:
    # reusing its first answer's ids would give a different command the id of one already sent.
    tag: str = ""

    def _envelope(self) -> dict[str, Any]:
        n = len(self.commands) + len(self.events)
        return {"event_id": r.derived_id(self.source, f"{self.tag}{n}"), "occurred_at": self.now}

    def command(self, kind: type[r.Record], **fields: Any) -> None:
        self.commands.append(kind(**self._envelope(), **fields))

    def event(self, kind: type[r.OrderEvent], order: r.PlaceOrder, **fields: Any) -> None:
        ids: dict[str, Any] = {"order_id": order.order_id, "customer_id": order.customer_id}
        self.events.append(kind(**self._envelope(), **ids, store_id=order.store_id, **fields))

    def decide(self, state: SagaState) -> Decision:
        commands, events = tuple(self.commands), tuple(self.events)
        update: dict[str, Any] = {
            "version": state.version + 1,
            "updated_at": self.now,
            "last_input": self.source,
            "last_commands": commands,
            "last_events": events,
        }
        if state.expected is not None:
            answered = [c for c in commands if not isinstance(c, r.EarnPoints)]  # no reply
            update["expected"] = (*state.expected, *(r.reply_id(c) for c in answered))
        return Decision(state.model_copy(update=update), commands, events)


def decide(
    state: SagaState | None, message: Message, now: float, policy: SagaPolicy = SagaPolicy()
) -> Decision:
    """The saga's answer to one message; see the module docstring for the rules."""
    out = _Out(message.event_id, now)
    if state is None:
        if isinstance(message, r.PlaceOrder):
            return _place(message, out, policy)
        return Decision(None, note=f"no saga for order {message.order_id}")
    if message.event_id == state.last_input:
        return Decision(
            state, state.last_commands, state.last_events, note="replayed input: outputs re-sent"
        )
    if isinstance(message, r.PlaceOrder):
        return Decision(state, note="order already placed")
    if (
        isinstance(message, r.Reply)
        and state.expected is not None
        and message.event_id not in state.expected
    ):
        return Decision(state, note="a reply to no command of this saga", unsolicited=True)
    if state.step is Step.DONE:
        return _after_end(state, message, out)
    if state.step is Step.COMPENSATING:
        return _compensating(state, message, out, policy)
    if isinstance(message, r.Timeout):
        return _timeout(state, message, out, policy)
    if isinstance(message, r.CancelOrder):
        return _cancel(state, message, out, policy)
    if isinstance(message, r.AcceptOrder):
        if state.step is not Step.STORE or message.store_id != state.order.store_id:
            return Decision(state, note=f"accept ignored in step {state.step}")
        out.event(r.OrderAccepted, state.order)
        return out.decide(_at(state, Step.COMPLETION, None, status=OrderStatus.ACCEPTED))
    if isinstance(message, r.CompleteOrder):
        if state.step is not Step.COMPLETION or message.store_id != state.order.store_id:
            return Decision(state, note=f"complete ignored in step {state.step}")
        out.event(r.OrderCompleted, state.order)
        order = state.order
        if earned := policy.points_earned(order.final_amount):
            ids = {"order_id": order.order_id, "store_id": order.store_id}
            out.command(r.EarnPoints, **ids, customer_id=order.customer_id, amount=earned)
        return out.decide(_at(state, Step.DONE, None, status=OrderStatus.COMPLETED))
    return _reply(state, message, out, policy)


def _at(state: SagaState, step: Step, deadline: float | None, **update: object) -> SagaState:
    return state.model_copy(update={"step": step, "deadline": deadline, "attempts": 1, **update})


def _place(order: r.PlaceOrder, out: _Out, policy: SagaPolicy) -> Decision:
    state = SagaState(order=order, step=Step.POINTS)
    out.event(
        r.OrderPlaced,
        order,
        lines=order.lines,
        points=order.points,
        total_amount=order.total_amount,
        final_amount=order.final_amount,
        order_type=order.order_type,
    )
    first = Step.POINTS if order.points > 0 else Step.STOCK
    return out.decide(_enter(state, first, out, policy))


def _enter(state: SagaState, step: Step, out: _Out, policy: SagaPolicy) -> SagaState:
    """Start a participant step: send its command, hold the participant, arm its deadline."""
    _send_step(state, step, out)
    owner = _OWNER[step]
    held = state.held if owner in state.held else (*state.held, owner)
    return _at(state, step, out.now + policy.step_timeout, held=held)


def _send_step(state: SagaState, step: Step, out: _Out) -> None:
    o = state.order
    if step is Step.POINTS:
        out.command(
            r.ReservePoints,
            order_id=o.order_id,
            store_id=o.store_id,
            customer_id=o.customer_id,
            amount=o.points,
        )
    elif step is Step.STOCK:
        out.command(r.ReserveStock, order_id=o.order_id, store_id=o.store_id, lines=o.stock_lines)
    elif step is Step.PAYMENT:
        out.command(
            r.AuthorizePayment,
            order_id=o.order_id,
            store_id=o.store_id,
            customer_id=o.customer_id,
            amount=o.final_amount,
        )
    else:
        out.command(r.CommitStock, order_id=o.order_id, store_id=o.store_id)


def _reply(state: SagaState, reply: r.Reply, out: _Out, policy: SagaPolicy) -> Decision:
    kind = reply.type  # type: ignore[attr-defined]  # every concrete reply declares its type
    if _ADVANCES.get(kind) is state.step:
        return _advance(state, reply, out, policy)
    failing = _FAILS.get(kind)
    if failing is not None and failing[0] is state.step:
        state = state.model_copy(
            update={"held": tuple(p for p in state.held if p is not failing[1])}
        )
        reason = getattr(reply, "reason", kind)
        return _fail(state, OrderStatus.REJECTED, reason, out, policy)
    return Decision(state, note=f"{kind} is a duplicate or late in step {state.step}")


def _advance(state: SagaState, reply: r.Reply, out: _Out, policy: SagaPolicy) -> Decision:
    order = state.order
    if state.step is Step.POINTS:
        return out.decide(_enter(state, Step.STOCK, out, policy))
    if state.step is Step.STOCK:
        step = Step.PAYMENT if order.final_amount > 0 else Step.COMMIT
        return out.decide(_enter(state, step, out, policy))
    if state.step is Step.PAYMENT:
        assert isinstance(reply, r.PaymentAuthorized)
        state = state.model_copy(update={"authorization_id": reply.authorization_id})
        if reply.amount != order.final_amount:
            return _fail(state, OrderStatus.REJECTED, "payment_amount_mismatch", out, policy)
        return out.decide(_enter(state, Step.COMMIT, out, policy))
    # Step.COMMIT: stock is sold, the order is paid and waits for its store.
    if Participant.POINTS in state.held:
        out.command(
            r.DeductPoints,
            order_id=order.order_id,
            store_id=order.store_id,
            customer_id=order.customer_id,
        )
    out.event(
        r.OrderPaid, order, amount=order.final_amount, authorization_id=state.authorization_id
    )
    paid = _at(state, Step.STORE, out.now + policy.accept_timeout, status=OrderStatus.PAID)
    return out.decide(paid.model_copy(update={"paid": True}))


def _cancel(state: SagaState, cancel: r.CancelOrder, out: _Out, policy: SagaPolicy) -> Decision:
    if state.step is Step.COMPLETION and cancel.by is r.Actor.CUSTOMER:
        return Decision(state, note="a customer may not cancel after the store accepted")
    reason = cancel.reason or f"cancelled_by_{cancel.by.value.lower()}"
    state = state.model_copy(update={"cancelled_by": cancel.by})
    return _fail(state, OrderStatus.CANCELLED, reason, out, policy)


def _timeout(state: SagaState, timeout: r.Timeout, out: _Out, policy: SagaPolicy) -> Decision:
    if timeout.step != state.step or timeout.deadline != state.deadline:
        return Decision(state, note="stale timeout")
    if state.step is Step.STORE:
        return _fail(state, OrderStatus.CANCELLED, "store_timeout", out, policy)
    if state.attempts < policy.step_attempts:
        _send_step(state, state.step, out)
        retry = {"deadline": out.now + policy.step_timeout, "attempts": state.attempts + 1}
        return out.decide(state.model_copy(update=retry))
    return _fail(state, OrderStatus.REJECTED, f"{state.step.value}_timeout", out, policy)


def _fail(
    state: SagaState, outcome: OrderStatus, reason: str, out: _Out, policy: SagaPolicy
) -> Decision:
    """Undo every held participant in reverse; end at once when nothing is held."""
    state = state.model_copy(update={"outcome": outcome, "reason": reason})
    if not state.held:
        return _finish(state, out)
    pending = tuple(reversed(state.held))
    for participant in pending:
        _send_undo(state, participant, out)
    compensating = _at(
        state, Step.COMPENSATING, out.now + policy.compensation_retry, pending=pending
    )
    return out.decide(compensating)


def _send_undo(state: SagaState, participant: Participant, out: _Out) -> None:
    o = state.order
    if participant is Participant.PAYMENT:
        kind = r.RefundPayment if state.paid else r.VoidPayment
        out.command(kind, order_id=o.order_id, store_id=o.store_id)
    elif participant is Participant.STOCK:
        out.command(r.ReleaseStock, order_id=o.order_id, store_id=o.store_id, reason=state.reason)
    else:
        out.command(
            r.ReleasePoints, order_id=o.order_id, store_id=o.store_id, customer_id=o.customer_id
        )


def _finish(state: SagaState, out: _Out) -> Decision:
    assert state.outcome is not None
    if state.outcome is OrderStatus.CANCELLED:
        out.event(
            r.OrderCancelled,
            state.order,
            reason=state.reason,
            by=state.cancelled_by,
            refunded=state.paid,
        )
    else:
        out.event(r.OrderRejected, state.order, reason=state.reason)
    return out.decide(_at(state, Step.DONE, None, status=state.outcome, pending=()))


def _compensating(state: SagaState, message: Message, out: _Out, policy: SagaPolicy) -> Decision:
    kind = message.type  # type: ignore[union-attr]  # every record declares its type
    undone = _UNDONE.get(kind)
    if undone is not None and undone in state.pending:
        state = state.model_copy(
            update={"pending": tuple(p for p in state.pending if p is not undone)}
        )
        return _finish(state, out) if not state.pending else out.decide(state)
    if isinstance(message, r.Timeout):
        if message.step != state.step or message.deadline != state.deadline:
            return Decision(state, note="stale timeout")
        for participant in state.pending:
            _send_undo(state, participant, out)
        retry = {"deadline": out.now + policy.compensation_retry, "attempts": state.attempts + 1}
        return out.decide(state.model_copy(update=retry))
    return _late_success(state, message, out)


def _after_end(state: SagaState, message: Message, out: _Out) -> Decision:
    if state.status is OrderStatus.COMPLETED:
        return Decision(state, note=f"{message.type} after completion")  # type: ignore[union-attr]
    return _late_success(state, message, out)


def _late_success(state: SagaState, message: Message, out: _Out) -> Decision:
    """A success that arrives after the saga failed is undone again, never obeyed."""
    kind = message.type  # type: ignore[union-attr]  # every record declares its type
    step = _ADVANCES.get(kind)
    if step is None:
        return Decision(state, note=f"{kind} ignored in step {state.step}")
    participant = _OWNER[step]
    if participant in state.pending:
        return Decision(state, note=f"late {kind}: its undo is already on the way")
    out.tag = "late/"
    _send_undo(state, participant, out)
    return out.decide(state)
