"""The saga orchestrator: reads order commands and participant replies, decides, writes, sends.

The saga's deadlines live in its state. A timer on each worker keeps an index of the
deadlines of the sagas this worker owns (fed by the agent, rebuilt from the table after each
rebalance) and sends a ``Timeout`` through ``order-commands`` when one passes: the table is
only ever written here, inside the agent.
"""

from __future__ import annotations

import logging
import re
import time
from typing import Annotated, Any

from pydantic import Field

from eatcloud.agents.schedule import Schedule, timers_may_run
from eatcloud.agents.wiring import Wiring, guard_timer
from eatcloud.domain.saga import SagaState, Step, decide
from eatcloud.observability.metrics import metrics
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder

log = logging.getLogger("eatcloud.agents.orchestrator")

# One discriminated union over both topics' records: as a plain union of the two, pydantic
# tried each in turn and reported the first one's tag mismatch, so an invalid reply went to
# the DLQ as "unknown_type".
INBOX: Decoder[r.PlaceOrder | r.CancelOrder | r.AcceptOrder | r.CompleteOrder | r.Timeout] = (
    Decoder(Annotated[r.OrderCommand | r.SagaReply, Field(discriminator="type")])
)


class Deadlines(Schedule[str, Step]):
    """Deadlines of the live sagas this worker owns: order_id -> (deadline, step)."""

    def track(self, order_id: str, state: SagaState) -> None:
        if state.deadline is None:
            self.cancel(order_id)
        else:
            self.set(order_id, state.deadline, state.step)

    def rebuild(self, sagas: list[tuple[str, SagaState]]) -> None:
        self.clear()
        for order_id, state in sagas:
            self.track(order_id, state)


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


def register(wiring: Wiring) -> Deadlines:
    app, tables, policy = wiring.app, wiring.tables, wiring.policy
    inbox = app.topic(
        *(wiring.topics[name].get_topic_name() for name in (t.ORDER_COMMANDS, t.SAGA_REPLIES)),
        key_type=str,
        key_serializer="raw",
        value_serializer="raw",
        partitions=wiring.settings.kafka.topic_partitions,
        internal=True,  # Faust creates both before subscribing
    )
    deadlines = Deadlines()

    async def handle(event: Any, message: Any) -> None:
        state = tables.sagas.get(message.order_id)
        now = time.time()
        decision = decide(state, message, now, policy)
        observe(state, message, decision, now)
        if decision.state is not None and decision.state is not state:
            tables.sagas.put(message.order_id, decision.state)
            deadlines.track(message.order_id, decision.state)
        if decision.note:
            log.debug("order %s: %s", message.order_id, decision.note)
        await wiring.send_all((*decision.commands, *decision.events), event)

    @app.agent(inbox, name="orchestrator")  # type: ignore[untyped-decorator]  # faust is untyped
    async def orchestrator(stream: Any) -> None:
        """Runs each order's saga: commands and replies in, steps and events out."""
        async for event in stream.events():
            message = await wiring.decode(event, INBOX)
            if message is not None:
                await wiring.guarded(handle, event, message)

    deadlines.watch(app)

    async def saga_deadlines() -> None:
        if not timers_may_run(app):
            return
        if deadlines.stale:
            deadlines.rebuild(tables.sagas.items())
        now = time.time()
        for order_id, step, deadline in deadlines.pop_passed(now):
            timeout = r.Timeout(
                event_id=r.derived_id(order_id, f"timeout/{step}/{deadline}"),
                order_id=order_id,
                step=step.value,
                deadline=deadline,
            )
            await wiring.send(timeout)

    app.timer(wiring.settings.saga.timer_interval_seconds)(
        guard_timer("saga_deadlines", saga_deadlines)
    )

    return deadlines
