"""The saga orchestrator: reads order commands and participant replies, decides, writes, sends.

The saga's deadlines live in its state. A timer on each worker keeps an index of the
deadlines of the sagas this worker owns (fed by the agent, rebuilt from the table after each
rebalance) and sends a ``Timeout`` through ``order-commands`` when one passes: the table is
only ever written here, inside the agent.
"""

from __future__ import annotations

import heapq
import logging
import time
from typing import Annotated, Any

from pydantic import Field

from eatcloud.agents.wiring import Wiring, guard_timer
from eatcloud.domain.saga import SagaState, Step, decide
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


class Deadlines:
    """Deadlines of the live sagas this worker owns: a heap, checked against the latest entry.

    ``due`` holds each saga's current (step, deadline); the heap may hold older entries for the
    same saga, which are skipped when popped (lazy deletion keeps every update O(log n)).
    """

    def __init__(self) -> None:
        self.due: dict[str, tuple[Step, float]] = {}
        self.heap: list[tuple[float, str]] = []
        self.stale = True  # rebuild from the table before the next scan

    def track(self, order_id: str, state: SagaState) -> None:
        if state.deadline is None:
            self.due.pop(order_id, None)
        else:
            self.due[order_id] = (state.step, state.deadline)
            heapq.heappush(self.heap, (state.deadline, order_id))

    def rebuild(self, sagas: list[tuple[str, SagaState]]) -> None:
        self.due.clear()
        self.heap.clear()
        for order_id, state in sagas:
            self.track(order_id, state)
        self.stale = False

    def pop_passed(self, now: float) -> list[tuple[str, Step, float]]:
        passed = []
        while self.heap and self.heap[0][0] <= now:
            deadline, order_id = heapq.heappop(self.heap)
            current = self.due.get(order_id)
            if current is not None and current[1] == deadline:
                del self.due[order_id]
                passed.append((order_id, current[0], deadline))
        return passed


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
        decision = decide(state, message, time.time(), policy)
        if decision.state is not None and decision.state is not state:
            tables.sagas.put(message.order_id, decision.state)
            deadlines.track(message.order_id, decision.state)
        if decision.note:
            log.debug("order %s: %s", message.order_id, decision.note)
        await wiring.send_all((*decision.commands, *decision.events), event)

    @app.agent(inbox, name="orchestrator")  # type: ignore[untyped-decorator]  # faust is untyped
    async def orchestrator(stream: Any) -> None:
        async for event in stream.events():
            message = await wiring.decode(event, INBOX)
            if message is not None:
                await wiring.guarded(handle, event, message)

    async def _on_assigned(*_: Any, **__: Any) -> None:
        deadlines.stale = True

    app.on_partitions_assigned.connect(_on_assigned)

    async def saga_deadlines() -> None:
        if app.rebalancing or not app.tables.recovery.completed.is_set():
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
