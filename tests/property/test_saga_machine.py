"""The real saga handlers under duplicates, reordering, loss, timeouts and cancels.

Hypothesis chooses which queue of the world moves next, re-delivers any command or saga
input, replays the saga's last input, loses a message the saga would re-send, fires current
and stale timeouts, lets reservations expire, and injects cancels, accepts, completes and
stock changes. A re-delivered command changes nothing and calls no gateway. After every step
the ledgers balance and no order has ended twice; at the end the world is drained, every
order has ended exactly once with its participants agreeing, and once their retention has
passed, every order leaves every table.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from eatcloud.domain.saga import Step
from eatcloud.domain.stock import is_expired
from eatcloud.streams import records as r
from tests.property.saga_world import (
    BALANCES,
    MAX_ORDERS,
    PRICES,
    RESERVATION_TTL,
    SHELF,
    STORE,
    UNDOS,
    World,
    commands,
    events,
    semantics,
)

F = TypeVar("F", bound=Callable[..., None])


def settles(method: F) -> F:
    """Mark the machine unsettled while a rule runs, so teardown drains only a healthy run."""

    @functools.wraps(method)
    def run(self: SagaMachine, *args: Any, **kwargs: Any) -> None:
        self.healthy = False
        method(self, *args, **kwargs)

    return run  # type: ignore[return-value]


pick = st.integers(min_value=0, max_value=1_000)

ORDER = st.fixed_dictionaries(
    {
        "customer": st.sampled_from(sorted(BALANCES)),
        "quantities": st.dictionaries(
            st.sampled_from(sorted(PRICES)), st.integers(1, 2), min_size=1
        ),
        "share": st.sampled_from([0, 0, 1, 3]),  # of the total paid in points: none, all, a third
        "declined": st.sampled_from([False, False, False, True]),
        "store_accepts": st.sampled_from([True, True, True, False]),
    }
)


class SagaMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.world = World()
        self.healthy = True

    def placed(self, n: int) -> str:
        return sorted(self.world.orders)[n % len(self.world.orders)]

    # --- customers and stores --------------------------------------------------------------

    @initialize(order=ORDER)
    @settles
    def first_order(self, order: dict[str, Any]) -> None:
        self.world.place(**order)

    @precondition(lambda self: len(self.world.orders) < MAX_ORDERS)
    @rule(order=ORDER)
    @settles
    def another_order(self, order: dict[str, Any]) -> None:
        self.world.place(**order)

    @precondition(lambda self: self.world.orders)
    @rule(n=pick, by=st.sampled_from(list(r.Actor)))
    @settles
    def cancel(self, n: int, by: r.Actor) -> None:
        order_id = self.placed(n)
        before = self.world.saga(order_id)
        self.world.decide(
            r.CancelOrder(
                event_id=self.world.next_id("cancel"), order_id=order_id, store_id=STORE, by=by
            )
        )
        accepted = before.step is Step.COMPLETION and by is r.Actor.CUSTOMER
        if accepted or before.step in (Step.COMPENSATING, Step.DONE):
            assert semantics(self.world.saga(order_id)) == semantics(before)

    @precondition(lambda self: self.world.orders)
    @rule(n=pick, own_store=st.booleans())
    @settles
    def accept(self, n: int, own_store: bool) -> None:
        order_id = self.placed(n)
        store_id = STORE if own_store else "store-2"
        before = self.world.saga(order_id)
        message = r.AcceptOrder(
            event_id=self.world.next_id("accept"), order_id=order_id, store_id=store_id
        )
        self.world.decide(message)
        if not own_store or before.step is not Step.STORE:
            assert semantics(self.world.saga(order_id)) == semantics(before)

    @precondition(lambda self: self.world.orders)
    @rule(n=pick, own_store=st.booleans())
    @settles
    def complete(self, n: int, own_store: bool) -> None:
        order_id = self.placed(n)
        store_id = STORE if own_store else "store-2"
        before = self.world.saga(order_id)
        message = r.CompleteOrder(
            event_id=self.world.next_id("complete"), order_id=order_id, store_id=store_id
        )
        self.world.decide(message)
        if not own_store or before.step is not Step.COMPLETION:
            assert semantics(self.world.saga(order_id)) == semantics(before)

    @rule(menu_id=st.sampled_from(sorted(SHELF)), delta=st.integers(-2, 2))
    @settles
    def restock(self, menu_id: str, delta: int) -> None:
        self.world.restock(menu_id, delta)

    # --- delivery --------------------------------------------------------------------------

    @precondition(lambda self: self.world.busy())
    @rule(n=pick)
    @settles
    def deliver_next(self, n: int) -> None:
        busy = self.world.busy()
        self.world.move(*busy[n % len(busy)])

    @precondition(lambda self: self.world.busy())
    @rule(ns=st.lists(pick, min_size=2, max_size=12))
    @settles
    def deliver_a_burst(self, ns: list[int]) -> None:
        for n in ns:
            if busy := self.world.busy():
                self.world.move(*busy[n % len(busy)])

    @precondition(lambda self: self.world.losable())
    @rule(n=pick)
    @settles
    def lose_a_message(self, n: int) -> None:
        """The saga re-sends on its deadlines, so a lost command or reply is not forgotten."""
        kind, queue = self.world.losable()[n % len(self.world.losable())]
        (self.world.commands if kind == "command" else self.world.replies)[queue].popleft()

    @precondition(lambda self: self.world.handled)
    @rule(n=pick)
    @settles
    def redeliver_command(self, n: int) -> None:
        """A command handled before changes nothing and calls no gateway: it only answers."""
        handled = self.world.handled
        command = handled[len(handled) - 1 - n % len(handled)]
        calls = self.world.agents.gateway.calls.copy()
        effects = self.world.deliver(command)
        assert not effects.changed, f"a re-delivered {command.type} changed {list(effects.changed)}"  # type: ignore[attr-defined]
        assert self.world.agents.gateway.calls == calls, "a re-delivered command paid again"

    @precondition(lambda self: self.world.inputs)
    @rule(n=pick)
    @settles
    def redeliver_saga_input(self, n: int) -> None:
        """A saga input seen before changes nothing the saga means; the last one is replayed."""
        inputs = [
            m
            for m in self.world.inputs.values()
            if not isinstance(m, r.AcceptOrder | r.CompleteOrder)  # a store may say it again
        ]
        message = inputs[len(inputs) - 1 - n % len(inputs)]
        before = self.world.saga(message.order_id)
        effects = self.world.decide(message)
        if message.event_id == before.last_input:
            self.world.check_replayed(before, effects)
            return
        assert semantics(self.world.saga(message.order_id)) == semantics(before), message.type  # type: ignore[union-attr]
        assert events(effects) == []
        assert {c.type for c in commands(effects)} <= UNDOS  # type: ignore[attr-defined]
        saga_key = (self.world.agents.tables.sagas.name, message.order_id)
        assert set(effects.changed) <= {saga_key}, list(effects.changed)

    @precondition(lambda self: self.world.orders)
    @rule(n=pick)
    @settles
    def replay_last_input(self, n: int) -> None:
        state = self.world.saga(self.placed(n))
        assert state.last_input in self.world.inputs, "the saga's last input is none it was given"
        self.world.check_replayed(state, self.world.decide(self.world.inputs[state.last_input]))

    # --- time ------------------------------------------------------------------------------

    @precondition(lambda self: any(s.deadline is not None for s in self.world.sagas().values()))
    @rule(n=pick)
    @settles
    def fire_timeout(self, n: int) -> None:
        waiting = sorted(o for o, s in self.world.sagas().items() if s.deadline is not None)
        timeout = self.world.timeout(waiting[n % len(waiting)])
        assert timeout is not None
        self.world.decide(timeout)

    @precondition(lambda self: self.world.orders)
    @rule(n=pick, step=st.sampled_from(list(Step)))
    @settles
    def fire_stale_timeout(self, n: int, step: Step) -> None:
        """A deadline the saga once had but has no more, or one it never had."""
        order_id = self.placed(n)
        before = self.world.saga(order_id)
        past = [a for a in self.world.armed[order_id] if a != (before.step, before.deadline)]
        armed_step, deadline = past[n % len(past)] if past else (step, -1.0)
        stale = r.Timeout(
            event_id=self.world.next_id("stale"),
            order_id=order_id,
            store_id=STORE,
            step=armed_step,
            deadline=deadline,
        )
        effects = self.world.decide(stale)
        assert not effects.changed and effects.sends == []

    @rule(wait=st.sampled_from([0.0, RESERVATION_TTL / 2, RESERVATION_TTL]))
    @settles
    def expire_reservations(self, wait: float) -> None:
        self.world.now += wait
        self.sweep()

    @precondition(lambda self: self.world.held())
    @rule(n=pick)
    @settles
    def reach_an_expiry(self, n: int) -> None:
        """The clock reaches a held reservation's expiry, its order's saga mid-way."""
        held = self.world.held()
        self.world.now = max(self.world.now, held[n % len(held)].expires_at)
        self.sweep()

    def sweep(self) -> None:
        """The stock timer runs: every reservation expired by now is in a sweep on its way."""
        self.world.expire()
        expired = {
            order_id
            for order_id, reservation in self.world.agents.reservations(STORE).items()
            if is_expired(reservation, self.world.now)
        }
        assert expired <= self.world.swept(), "the stock timer missed expired reservations"

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def ledgers_balance_and_each_order_ends_at_most_once(self) -> None:
        self.world.check_ledgers()
        self.world.check_sagas()
        self.healthy = True

    def teardown(self) -> None:
        if not self.healthy:
            return  # a rule or an invariant failed: that failure is the one to report
        self.world.drain()
        self.world.check_ledgers()
        self.world.check_sagas()
        self.world.check_settled()
        self.world.forget()


SagaMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSagaMachine = SagaMachine.TestCase
