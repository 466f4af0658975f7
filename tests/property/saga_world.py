"""A little world for the saga machine: the real handlers and the queues between them.

The orchestrator, payment and points handlers run through ``driver.Agents``; stock is the
orchestrator's local step, as in the worker. Commands travel to payment and points through
FIFO queues per (topic, key), as Kafka keeps per-key order per topic, and so do the stock
timer's expiry sweeps to the orchestrator; replies travel back through a FIFO per participant
and order. Saga inputs (orders, cancels, the store's answers, timeouts) and stock adjustments
go straight to the orchestrator. The world moves whichever queue it is told to, fires the
saga's deadlines, and checks what must hold: the ledgers balance, one id names one record,
every order ends at most once, and once drained, exactly once, with its participants agreeing
with its end; after their retention, finished orders leave every table.
"""

from __future__ import annotations

from collections import defaultdict, deque
from types import SimpleNamespace
from typing import cast

from eatcloud.agents import orchestrator
from eatcloud.agents.orchestrator import FORGET
from eatcloud.agents.stock import COMMAND_TYPES as LOCAL_STEPS
from eatcloud.domain.payment import Action, PaymentStatus
from eatcloud.domain.points import HoldStatus, PointsAccount
from eatcloud.domain.saga import (
    TERMINAL,
    Message,
    OrderStatus,
    SagaPolicy,
    SagaState,
    Step,
)
from eatcloud.domain.stock import Reservation, ReservationStatus, StoreStock
from eatcloud.runtime.adapter import Runtime
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from tests.property.driver import PARTITIONS, RETENTION, Agents, Effects

STORE = "store-1"
BALANCES = {"customer-1": 5_000, "customer-2": 1_500}
PRICES = {"burger": 2_000, "fries": 1_000, "soda": 500}
SHELF = {"burger": 3, "fries": 2}  # soda is unlimited
MAX_ORDERS = 3
RESERVATION_TTL = 50.0
POLICY = SagaPolicy(
    step_timeout=10.0,
    step_attempts=3,
    accept_timeout=100.0,
    compensation_retry=10.0,
    points_earn_bp=500,  # 5 %: 100 points on a burger
)
ENDINGS = {
    "OrderCompleted": OrderStatus.COMPLETED,
    "OrderCancelled": OrderStatus.CANCELLED,
    "OrderRejected": OrderStatus.REJECTED,
}
UNDOS = {"ReleasePoints", "ReleaseStock", "VoidPayment", "RefundPayment"}

Queue = tuple[str, str]  # commands: (topic, key); replies: (participant, order_id)


def semantics(state: SagaState) -> tuple[object, ...]:
    """What the saga means, without its bookkeeping (version, last input and outputs)."""
    return (
        state.status,
        state.step,
        state.held,
        state.pending,
        state.outcome,
        state.reason,
        state.paid,
        state.deadline,
        state.attempts,
        state.authorization_id,
        state.cancelled_by,
    )


def _content(record: r.Record) -> dict[str, object]:
    return record.model_dump(exclude={"occurred_at"})


def commands(effects: Effects) -> list[r.Record]:
    """The participant commands a message sent."""
    return [s for s in effects.sends if t.route(s)[0] in (t.PAYMENT_COMMANDS, t.POINTS_COMMANDS)]


def events(effects: Effects) -> list[r.Record]:
    return [s for s in effects.sends if isinstance(s, r.OrderEvent)]


class World:
    """The handlers, the queues between them and what was sent; the clock is ``now``."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.agents = Agents(POLICY, RESERVATION_TTL, lambda: self.now)
        self.orders: dict[str, r.PlaceOrder] = {}
        self.commands: dict[Queue, deque[r.Record]] = defaultdict(deque)
        self.replies: dict[Queue, deque[r.Reply]] = defaultdict(deque)
        self.handled: list[r.Record] = []  # every command a handler took, to re-deliver
        self.inputs: dict[str, Message] = {}  # every saga input by id
        self.sent: dict[str, r.Record] = {}  # every command and reply sent, by id
        self.events: dict[str, dict[str, r.OrderEvent]] = defaultdict(dict)
        # every points-events record, by customer and account version
        self.points_told: dict[str, dict[int, r.PointsChanged]] = defaultdict(dict)
        # the deadlines each saga had, in order (a dict as an ordered set)
        self.armed: dict[str, dict[tuple[Step, float], None]] = defaultdict(dict)
        self.accepting: set[str] = set()  # orders the store accepts when the drain reaches them
        self.serial = 0
        for customer, balance in BALANCES.items():
            self.deliver(
                r.AdjustPoints(event_id=self.next_id("grant"), customer_id=customer, delta=balance)
            )
        for menu_id, quantity in SHELF.items():
            self.restock(menu_id, quantity)
        self.restock("soda", 0, unlimited=True)

    def place(
        self,
        customer: str,
        quantities: dict[str, int],
        share: int,
        declined: bool,
        store_accepts: bool,
    ) -> None:
        order_id = f"order-{len(self.orders) + 1}"
        lines = tuple(
            r.OrderLine(menu_id=m, quantity=q, unit_price=PRICES[m]) for m, q in quantities.items()
        )
        total = sum(line.quantity * line.unit_price for line in lines)
        placed = r.PlaceOrder(
            event_id=f"place-{order_id}",
            order_id=order_id,
            customer_id=customer,
            store_id=STORE,
            lines=lines,
            points=total // share if share else 0,
        )
        self.orders[order_id] = placed
        if declined:
            self.agents.gateway.declines.add(order_id)
        if store_accepts:
            self.accepting.add(order_id)
        self.decide(placed)

    def next_id(self, kind: str) -> str:
        self.serial += 1
        return f"{kind}-{self.serial}"

    def saga(self, order_id: str) -> SagaState:
        state = self.agents.saga(order_id)
        assert state is not None, f"{order_id} has no saga"
        return state

    def sagas(self) -> dict[str, SagaState]:
        return {order_id: self.saga(order_id) for order_id in self.orders}

    # --- delivery --------------------------------------------------------------------------

    def decide(self, message: Message) -> Effects:
        """Deliver a saga input to the orchestrator."""
        self.inputs[message.event_id] = message
        return self.deliver(message)

    def deliver(self, record: r.Record) -> Effects:
        """Run the handler of the record's topic; queue what it sent and check its ids."""
        effects = self.agents.deliver(record)
        for (table, order_id), state in effects.changed.items():
            if table == self.agents.tables.sagas.name and state and state.deadline is not None:
                self.armed[order_id][(state.step, state.deadline)] = None
        for sent in effects.sends:
            if isinstance(sent, r.OrderEvent):
                seen = self.events[sent.order_id].setdefault(sent.event_id, sent)
                assert seen.type == sent.type, "one event id, two different events"  # type: ignore[attr-defined]
            elif isinstance(sent, r.PointsChanged):
                told = self.points_told[sent.customer_id].setdefault(sent.version, sent)
                assert _content(told) == _content(sent), "one account version, two changes"
            elif t.route(sent)[0] != t.STOCK_EVENTS:
                first = self.sent.setdefault(sent.event_id, sent)
                assert _content(first) == _content(sent), "one id, two different records"
                self.queue(effects.handler, sent)
        return effects

    def queue(self, handler: str, sent: r.Record) -> None:
        topic, key = t.route(sent)
        if isinstance(sent, r.Reply):
            order = self.orders[sent.order_id]
            assert (topic, key) == (t.SAGA_REPLIES, order.store_id), "a reply lost its saga"
            self.replies[(handler, sent.order_id)].append(sent)
        else:
            assert topic in (t.PAYMENT_COMMANDS, t.POINTS_COMMANDS), f"{topic} from {handler}"
            self.commands[(topic, key)].append(sent)

    def restock(self, menu_id: str, delta: int, unlimited: bool | None = None) -> None:
        """The store's own stock change; a refused write-off changes nothing."""
        adjust = r.AdjustStock(
            event_id=self.next_id("adjust"),
            store_id=STORE,
            menu_id=menu_id,
            delta=delta,
            unlimited=unlimited,
        )
        self.deliver(adjust)
        self.handled.append(adjust)

    def expire(self) -> None:
        """The stock timer: sweeps of what its index of held reservations finds expired by
        ``now``, on their way to their store's partition."""
        for store_id, order_ids in self.agents.stock.held.due(self.now).items():
            sweep = r.ExpireReservations(
                event_id=self.next_id("expire"),
                store_id=store_id,
                now=self.now,
                order_ids=tuple(order_ids),
            )
            self.commands[t.route(sweep)].append(sweep)

    def held(self) -> list[Reservation]:
        """The reservations still held, by order."""
        reservations = sorted(self.agents.reservations(STORE).items())
        return [res for _, res in reservations if res.status is ReservationStatus.RESERVED]

    def swept(self) -> set[str]:
        """The orders named by the sweeps on their way."""
        return {
            order_id
            for queue in self.commands.values()
            for sweep in queue
            if isinstance(sweep, r.ExpireReservations)
            for order_id in sweep.order_ids
        }

    def timeout(self, order_id: str) -> r.Timeout | None:
        """The Timeout the saga timer sends for this order's current deadline, if any."""
        state = self.saga(order_id)
        if state.deadline is None:
            return None
        self.now = max(self.now, state.deadline)
        return r.Timeout(
            event_id=r.derived_id(order_id, f"timeout/{state.step}/{state.deadline}"),
            order_id=order_id,
            store_id=state.order.store_id,
            step=state.step.value,
            deadline=state.deadline,
        )

    def busy(self) -> list[tuple[str, Queue]]:
        return [("command", q) for q, items in sorted(self.commands.items()) if items] + [
            ("reply", q) for q, items in sorted(self.replies.items()) if items
        ]

    def losable(self) -> list[tuple[str, Queue]]:
        """Busy queues whose next message may be lost: all but a DeductPoints, which the saga
        sends once and never re-sends (it waits for no answer), and a sweep, which the stock
        timer hands out once (its rebuild after a restart finds a lost one again; the world
        does not restart)."""
        once = ("DeductPoints", "ExpireReservations")
        return [
            (kind, queue)
            for kind, queue in self.busy()
            if kind == "reply" or self.commands[queue][0].type not in once  # type: ignore[attr-defined]
        ]

    def move(self, kind: str, queue: Queue) -> None:
        if kind == "command":
            command = self.commands[queue].popleft()
            self.deliver(command)
            self.handled.append(command)
        else:
            self.decide(self.replies[queue].popleft())

    def drain(self, limit: int = 5_000) -> None:
        """Deliver everything, fire every deadline and complete accepted orders until all end.

        Replies go first, so that a stock sweep on its way finds its orders moved on."""
        for _ in range(limit):
            if busy := self.busy():
                self.move(*busy[-1])
                continue
            live = sorted(o for o, s in self.sagas().items() if s.step is not Step.DONE)
            if not live:
                return
            order_id, state = live[0], self.saga(live[0])
            if state.step is Step.STORE and order_id in self.accepting:
                self.decide(
                    r.AcceptOrder(
                        event_id=self.next_id("accept"), order_id=order_id, store_id=STORE
                    )
                )
            elif state.step is Step.COMPLETION:
                self.decide(
                    r.CompleteOrder(
                        event_id=self.next_id("complete"), order_id=order_id, store_id=STORE
                    )
                )
            else:
                timeout = self.timeout(order_id)
                assert timeout is not None, f"saga stuck in {state.step} without a deadline"
                self.decide(timeout)
        raise AssertionError("the sagas did not settle")

    def forget(self) -> None:
        """The saga timer once every finished order's retention has passed: each saga leaves
        its table with its reservation, and its payment record and points hold follow."""
        store, accounts = self.agents.ledger(STORE), self.accounts()
        self.now = max(s.updated_at for s in self.sagas().values()) + RETENTION
        caught_up = SimpleNamespace(partitions=PARTITIONS, backlog_time=lambda *_: self.now)
        due = orchestrator.timeouts(self.agents.orchestrator, cast(Runtime, caught_up), self.now)
        assert sorted(timeout.order_id for timeout in due) == sorted(self.orders)
        for timeout in due:
            self.decide(timeout)
        while busy := self.busy():
            self.move(*busy[0])
        self.check_forgotten(store, accounts)

    # --- what must hold --------------------------------------------------------------------

    def check_replayed(self, before: SagaState, effects: Effects) -> None:
        """The saga's last input again changes nothing and sends its outputs again (its local
        stock steps are applied again, and answer as before)."""
        assert not effects.changed, f"replaying {before.last_input} changed {list(effects.changed)}"
        remote = [c for c in before.last_commands if not isinstance(c, LOCAL_STEPS)]
        assert commands(effects) == remote
        assert events(effects) == list(before.last_events)

    def endings(self, order_id: str) -> list[r.OrderEvent]:
        return [e for e in self.events[order_id].values() if e.type in ENDINGS]  # type: ignore[attr-defined]

    def check_ledgers(self) -> None:
        reservations = self.agents.reservations(STORE).values()
        for menu_id, item in self.agents.ledger(STORE).items.items():
            assert item.on_hand + item.sold == item.baseline, menu_id
            assert 0 <= item.reserved <= item.on_hand, menu_id
            if item.unlimited:
                continue

            def units(status: ReservationStatus, menu: str = menu_id) -> int:
                return sum(
                    line.quantity
                    for res in reservations
                    if res.status is status
                    for line in res.lines
                    if line.menu_id == menu
                )

            assert item.reserved == units(ReservationStatus.RESERVED), menu_id
            assert item.sold == units(ReservationStatus.COMMITTED), menu_id
        for customer, balance in BALANCES.items():
            account, holds = self.agents.account(customer), self.agents.holds(customer).values()
            assert 0 <= account.held <= account.balance, customer
            assert account.held == sum(h.amount for h in holds if h.status is HoldStatus.RESERVED)
            spent = sum(h.amount for h in holds if h.status is HoldStatus.DEDUCTED)
            earned = sum(h.earned for h in holds)
            assert account.balance == balance - spent + earned, customer
        for order_id in self.orders:
            assert self.agents.gateway.calls[(order_id, Action.AUTHORIZE)] <= 1, order_id

    def check_sagas(self) -> None:
        for order_id, state in self.sagas().items():
            endings = self.endings(order_id)
            paid = [e for e in self.events[order_id].values() if e.type == "OrderPaid"]  # type: ignore[attr-defined]
            assert len(paid) <= 1, order_id
            assert (state.step is Step.DONE) == (state.status in TERMINAL), order_id
            if state.step is Step.DONE:
                assert len(endings) == 1, f"{order_id} ended {len(endings)} times"
                assert ENDINGS[endings[0].type] is state.status  # type: ignore[attr-defined]
                if state.status is not OrderStatus.COMPLETED:
                    self.check_nothing_held(order_id)
            else:
                assert endings == [], f"{order_id} ended but its saga goes on"

    def check_nothing_held(self, order_id: str) -> None:
        """A failed order ends only once every participant has let go of it."""
        order = self.orders[order_id]
        reservation = self.agents.reservations(STORE).get(order_id)
        hold = self.agents.holds(order.customer_id).get(order_id)
        record = self.agents.payment(order_id)
        assert reservation is None or reservation.status in (
            ReservationStatus.REJECTED,
            ReservationStatus.RELEASED,
        ), f"{order_id} ended holding stock"
        assert hold is None or hold.status in (
            HoldStatus.REJECTED,
            HoldStatus.RELEASED,
            HoldStatus.RETURNED,
        ), f"{order_id} ended holding points"
        assert record is None or record.status is not PaymentStatus.AUTHORIZED, (
            f"{order_id} ended with its payment authorized"
        )

    def check_settled(self) -> None:
        """After the drain: each order ended once, and its participants agree with its end."""
        assert not self.busy()
        sold: dict[str, int] = defaultdict(int)
        spent: dict[str, int] = defaultdict(int)
        earned: dict[str, int] = defaultdict(int)
        calls = self.agents.gateway.calls
        for order_id, order in self.orders.items():
            state = self.saga(order_id)
            assert state.step is Step.DONE and state.status in TERMINAL, order_id
            assert len(self.endings(order_id)) == 1, order_id
            reservation = self.agents.reservations(STORE).get(order_id)
            hold = self.agents.holds(order.customer_id).get(order_id)
            record = self.agents.payment(order_id)
            voided, refunded = calls[(order_id, Action.VOID)], calls[(order_id, Action.REFUND)]
            if state.status is OrderStatus.COMPLETED:
                assert reservation is not None
                assert reservation.status is ReservationStatus.COMMITTED
                for line in order.lines:
                    sold[line.menu_id] += line.quantity
                if order.points:
                    assert hold is not None and hold.status is HoldStatus.DEDUCTED
                    spent[order.customer_id] += order.points
                if earns := POLICY.points_earned(order.final_amount):  # once, whatever came twice
                    assert hold is not None and hold.earned == earns, order_id
                    earned[order.customer_id] += earns
                if order.final_amount:
                    assert record is not None and record.status is PaymentStatus.AUTHORIZED
                    assert calls[(order_id, Action.AUTHORIZE)] == 1
                else:
                    assert record is None
                assert voided == refunded == 0
            else:
                self.check_nothing_held(order_id)
                if record is not None and record.authorization_id is not None:
                    # a paid order gets its money back; an unpaid one its authorization voided
                    undone, other = (refunded, voided) if state.paid else (voided, refunded)
                    assert undone >= 1, f"{order_id}: authorization left standing"
                    assert other == 0, f"{order_id}: voided and refunded"
        for menu_id, item in self.agents.ledger(STORE).items.items():
            assert item.reserved == 0, menu_id
            if not item.unlimited:
                assert item.sold == sold[menu_id], menu_id
        for customer, balance in BALANCES.items():
            account = self.agents.account(customer)
            assert account.held == 0, customer
            assert account.balance == balance - spent[customer] + earned[customer], customer
            # the newest points-events record tells the account as it is, and no version is
            # missing: a wallet built from them ends right
            told = self.points_told[customer]
            assert sorted(told) == list(range(1, len(told) + 1)), customer
            newest = told[max(told)]
            assert (newest.balance, newest.held) == (account.balance, account.held), customer

    def accounts(self) -> list[PointsAccount]:
        return [self.agents.account(customer) for customer in BALANCES]

    def check_forgotten(self, store: StoreStock, accounts: list[PointsAccount]) -> None:
        """Nothing of a forgotten order is left, not even after its owners' next load (which
        writes back what a crash cut off), no count moved, and forgetting again does nothing."""
        self.restock("soda", 0)
        for customer in BALANCES:
            self.deliver(
                r.AdjustPoints(event_id=self.next_id("load"), customer_id=customer, delta=0)
            )
        for order_id, order in self.orders.items():
            assert self.agents.saga(order_id) is None, order_id
            assert order_id not in self.agents.reservations(STORE), order_id
            assert self.agents.payment(order_id) is None, order_id
            assert order_id not in self.agents.holds(order.customer_id), order_id
        assert (self.agents.ledger(STORE), self.accounts()) == (store, accounts)
        again: list[r.Record] = [
            m for m in self.inputs.values() if isinstance(m, r.Timeout) and m.step == FORGET
        ]
        again += [c for c in self.handled if isinstance(c, r.ForgetPayment | r.ForgetPoints)]
        for message in again:
            effects = self.deliver(message)
            assert not effects.changed and effects.sends == [], message
