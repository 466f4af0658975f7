"""The saga orchestrator: order commands, replies and stock commands in; sagas, stock, outputs.

``handle`` is the whole step for one message: read the order's saga, ``decide``, write it back,
send the commands and events. The runtime runs it over batches (``eatcloud.runtime``).

Stock is co-located with the saga: ``order-commands``, ``saga-replies`` and ``stock-commands``
are all keyed by store, so an order's saga and its store's ledger live in one partition. The
saga's stock commands (reserve, commit, release) are applied right here (``stock.step``) and
their answers go straight back into ``decide``, in the same unit: no record, no hop, no
second table read. Payment and points stay remote participants (a gateway is slow I/O that
must not stall a partition); their commands carry the store so that their replies come back
to this partition. Stock commands that arrive on ``stock-commands`` (adjustments, expiries,
or a reserve sent by a tool) are applied by the same agent, so a store's ledger is never
written by two units at once; their answers, if any, go to ``saga-replies`` as before.

The saga's deadlines live in its state. A timer on each worker keeps an index of the
deadlines of the sagas this worker owns (fed by the handler, rebuilt from the table after each
rebalance) and sends a ``Timeout`` through ``order-commands`` when one passes: the table is
only ever written by the handler. A deadline is not acted on while replies that arrived
before it may still be queued behind a backlog (``Runtime.backlog_time``): an overloaded worker
must not make more work for itself with timeouts of replies it simply has not read yet.
A finished saga stays ``retention`` seconds (late replies still find it), then a ``Timeout``
for step ``done`` deletes it with its stock reservation, and ``ForgetPayment`` and
``ForgetPoints`` delete its payment record and points hold, so the tables do not grow with
every order ever placed (nor the time a rebalance or a recovery takes to read them).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from eatcloud.agents import stock
from eatcloud.agents.schedule import Schedule, timers_may_run
from eatcloud.agents.stock import Stock
from eatcloud.domain.saga import OrderStatus, SagaPolicy, SagaState, Step, decide
from eatcloud.errors import PoisonMessage
from eatcloud.observability.metrics import metrics
from eatcloud.resources import Clock
from eatcloud.runtime.adapter import Context, Handler, Runtime
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder
from eatcloud.tables import RecordTable

# One decoder per input topic: a record of another topic's kind (a PaymentAuthorized written
# to order-commands, say) is dead-lettered as "unknown_type", never taken for what it claims.
INBOX: dict[str, Decoder[Any]] = {
    t.ORDER_COMMANDS: Decoder(r.OrderCommand),
    t.SAGA_REPLIES: Decoder(r.SagaReply),
    t.STOCK_COMMANDS: Decoder(r.StockCommand),
}
FORGET = "done"  # the Timeout step that deletes a finished saga


class Deadlines(Schedule[str, tuple[str, str]]):
    """Deadlines of the sagas this worker owns: order_id -> (deadline, (step, store_id))."""

    def __init__(self, retention: float) -> None:
        super().__init__()
        self.retention = retention

    def track(self, order_id: str, state: SagaState) -> None:
        store_id = state.order.store_id
        if state.deadline is not None:
            self.set(order_id, state.deadline, (state.step.value, store_id))
        elif state.step is Step.DONE:
            self.set(order_id, state.updated_at + self.retention, (FORGET, store_id))
        else:
            self.cancel(order_id)

    def rebuild(self, sagas: list[tuple[str, SagaState]]) -> None:
        self.clear()
        for order_id, state in sagas:
            self.track(order_id, state)


@dataclass(frozen=True)
class Orchestrator:
    sagas: RecordTable[SagaState]
    policy: SagaPolicy
    deadlines: Deadlines
    stock: Stock
    clock: Clock  # the composition root's (``Services.clock``); tests bring their own


_STATUS = {
    "OrderPaid": "PAID",
    "OrderAccepted": "ACCEPTED",
    "OrderCompleted": "COMPLETED",
    "OrderCancelled": "CANCELLED",
    "OrderRejected": "REJECTED",
}


def compensation_reason(event: r.OrderCancelled | r.OrderRejected) -> str:
    """A bounded label: customers' free-text cancel reasons must not become label values."""
    if isinstance(event, r.OrderCancelled) and event.reason != "store_timeout":
        return f"cancelled_by_{event.by.value.lower()}" if event.by else "cancelled"
    return event.reason if re.fullmatch(r"[a-z_]{1,40}", event.reason) else "other"


def observe(state: Any, message: Any, decision: Any, now: float) -> None:
    """Saga metrics: step latency by outcome, orders reaching a status, compensations."""
    bundle = metrics()
    if state is not None and isinstance(message, r.Reply) and decision.state is not state:
        bundle.saga_step_seconds.labels(state.step.value, type(message).__name__).observe(
            max(0.0, now - state.updated_at)
        )
    for event in decision.events:
        status = _STATUS.get(event.type)
        if status is not None:
            bundle.saga_outcomes.labels(status).inc()
        if isinstance(event, r.OrderCancelled | r.OrderRejected):
            bundle.compensations.labels(compensation_reason(event)).inc()


async def handle(saga: Orchestrator, ctx: Context, message: Any) -> None:
    """One message: a stock command, or an order's step with its local stock steps."""
    if isinstance(message, stock.COMMAND_TYPES):
        reply = stock.step(saga.stock, ctx, message)
        if reply is not None:
            ctx.send(reply)
        return
    pending, commanded, events, steps = [message], [], [], 0
    while pending:
        commands, produced = _saga_step(saga, ctx, pending.pop(0))
        steps += 1
        ctx.send(*(c for c in commands if not isinstance(c, stock.COMMAND_TYPES)), *produced)
        commanded.extend(commands)
        events.extend(produced)
        for command in commands:
            if isinstance(command, stock.COMMAND_TYPES):
                reply = stock.step(saga.stock, ctx, command)
                if reply is not None:
                    pending.append(reply)
    if steps > 1:
        # The saga remembers its last input and outputs, to send them again when that input
        # is delivered again after a crash. After local steps the last input ``decide`` saw
        # is a stock answer that never travels: remember the message that came in, with
        # every command of the chain. Its stock commands are applied again on a replay (they
        # are idempotent), since a crash may have kept the saga's write and lost the stock's.
        state = ctx.get(saga.sagas, message.order_id)
        remembered = {
            "last_input": message.event_id,
            "last_commands": tuple(commanded),
            "last_events": tuple(events),
        }
        if state is not None and any(getattr(state, k) != v for k, v in remembered.items()):
            ctx.put(saga.sagas, message.order_id, state.model_copy(update=remembered))


def _saga_step(saga: Orchestrator, ctx: Context, message: Any) -> tuple[list[Any], list[Any]]:
    """The order's saga, the decision and the new saga; the decision's commands (its stock
    commands are applied by the caller, not sent) and events."""
    order_id = message.order_id
    state = ctx.get(saga.sagas, order_id)
    if isinstance(message, r.Timeout) and message.step == FORGET:
        due = None if state is None else state.updated_at + saga.deadlines.retention
        if state is not None and state.step is Step.DONE and message.deadline == due:
            return _forget(saga, ctx, message, state), []
        return [], []  # gone already, or a stale Timeout of an earlier retention
    now = saga.clock.now()
    decision = decide(state, message, now, saga.policy)
    if decision.unsolicited:  # forged, or meant for another saga: the dead letters say which
        raise PoisonMessage("unsolicited_reply", f"{message.type} answers no command of {order_id}")
    observe(state, message, decision, now)
    if decision.state is not None and decision.state is not state:
        ctx.put(saga.sagas, order_id, decision.state)
        saga.deadlines.track(order_id, decision.state)
    return list(decision.commands), list(decision.events)


def _forget(saga: Orchestrator, ctx: Context, timeout: r.Timeout, state: SagaState) -> list[Any]:
    """Delete a finished saga and its reservation; the commands that delete its payment record
    and its points hold."""
    order_id, store_id = timeout.order_id, timeout.store_id
    ctx.put(saga.sagas, order_id, None)
    saga.stock.stores.forget(ctx, store_id, order_id)
    forget: list[Any] = [
        r.ForgetPayment(
            event_id=r.derived_id(timeout.event_id, "payment"), order_id=order_id, store_id=store_id
        )
    ]
    # An order has a points record if it held points, or if it completed (it earned some:
    # whether it did depends on the earning rate of that moment; forgetting nothing is a no-op).
    if state.order.points > 0 or state.status is OrderStatus.COMPLETED:
        forget.append(
            r.ForgetPoints(
                event_id=r.derived_id(timeout.event_id, "points"),
                order_id=order_id,
                store_id=store_id,
                customer_id=state.order.customer_id,
            )
        )
    return forget


def handler(saga: Orchestrator) -> Handler[Any]:
    return Handler(
        name="orchestrator",
        topics=(t.ORDER_COMMANDS, t.SAGA_REPLIES, t.STOCK_COMMANDS),
        decoder=INBOX[t.ORDER_COMMANDS],
        decoders=INBOX,
        handle=functools.partial(handle, saga),
        key=lambda message: message.store_id,
        help="Runs each order's saga and its store's stock: commands and replies in, "
        "steps and events out.",
    )


def timeouts(saga: Orchestrator, runtime: Runtime, now: float) -> list[r.Timeout]:
    """The Timeouts due now; deadlines whose partition is behind them wait for it."""
    due, later = [], []
    for order_id, (step, store_id), deadline in saga.deadlines.pop_passed(now):
        partition = t.partition_for(store_id.encode(), runtime.partitions)
        read_up_to = min(runtime.backlog_time(topic, partition) for topic in _INPUTS)
        if step != FORGET and read_up_to < deadline:
            later.append((order_id, (step, store_id), deadline))  # its reply may be queued
            continue
        due.append(
            r.Timeout(
                event_id=r.derived_id(order_id, f"timeout/{step}/{deadline}"),
                order_id=order_id,
                store_id=store_id,
                step=step,
                deadline=deadline,
            )
        )
    for order_id, what, deadline in later:
        saga.deadlines.set(order_id, deadline, what)
    return due


_INPUTS = (t.ORDER_COMMANDS, t.SAGA_REPLIES)


def start_timer(app: Any, runtime: Runtime, saga: Orchestrator, every: float) -> None:
    saga.deadlines.watch(app)

    async def saga_deadlines() -> None:
        if not timers_may_run(app):
            return
        if saga.deadlines.stale:
            saga.deadlines.rebuild(saga.sagas.items())
        due = timeouts(saga, runtime, saga.clock.now())
        if due:
            await runtime.emit(due)

    runtime.timer(every, "saga_deadlines", saga_deadlines)
