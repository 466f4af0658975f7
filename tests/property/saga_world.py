"""A little world for the saga machine: the saga, its participants and the queues between.

Commands travel to the participants through FIFO queues per (topic, key), as Kafka keeps
per-key order per topic; replies travel back through a FIFO per participant and order. The
world moves whichever queue it is told to, fires the saga's deadlines, and checks what must
hold: the ledgers balance, every order ends at most once, and once drained, exactly once,
with its participants agreeing with its end.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable

from eatcloud.domain import stock
from eatcloud.domain.payment import Action, PaymentStatus
from eatcloud.domain.points import HoldStatus, PointsAccount
from eatcloud.domain.saga import (
    TERMINAL,
    Decision,
    Message,
    OrderStatus,
    SagaPolicy,
    SagaState,
    Step,
    decide,
)
from eatcloud.domain.stock import ReservationStatus, StoreStock
from eatcloud.streams import records as r
from tests.property.participants import PaymentParticipant, PointsParticipant, StockParticipant

STORE = "store-1"
BALANCES = {"customer-1": 5_000, "customer-2": 1_500}
PRICES = {"burger": 2_000, "fries": 1_000, "soda": 500}
SHELF = {"burger": 3, "fries": 2}  # soda is unlimited
MAX_ORDERS = 3
POLICY = SagaPolicy(
    step_timeout=10.0, step_attempts=3, accept_timeout=100.0, compensation_retry=10.0
)
ENDINGS = {
    "OrderCompleted": OrderStatus.COMPLETED,
    "OrderCancelled": OrderStatus.CANCELLED,
    "OrderRejected": OrderStatus.REJECTED,
}
PARTICIPANT_OF = {
    "ReservePoints": "points",
    "DeductPoints": "points",
    "ReleasePoints": "points",
    "ReserveStock": "stock",
    "CommitStock": "stock",
    "ReleaseStock": "stock",
    "AuthorizePayment": "payment",
    "VoidPayment": "payment",
    "RefundPayment": "payment",
}
UNDOS = {"ReleasePoints", "ReleaseStock", "VoidPayment", "RefundPayment"}

Queue = tuple[str, str]  # (topic, key)


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


def opening_store() -> StoreStock:
    store = StoreStock()
    for menu_id, quantity in SHELF.items():
        store = stock.adjust(store, menu_id, quantity, None).store
    return stock.adjust(store, "soda", 0, True).store


class World:
    """The saga, its participants and the queues between them; the clock is ``now``."""

    def __init__(self) -> None:
        self.now = 1_000.0
        self.points = PointsParticipant({c: PointsAccount(balance=b) for c, b in BALANCES.items()})
        self.stock = StockParticipant(opening_store())
        self.payment = PaymentParticipant()
        self.orders: dict[str, r.PlaceOrder] = {}
        self.sagas: dict[str, SagaState] = {}
        self.commands: dict[Queue, deque[r.Record]] = defaultdict(deque)
        self.replies: dict[Queue, deque[r.Reply]] = defaultdict(deque)
        self.handled: list[r.Record] = []  # every command a participant saw, to re-deliver
        self.inputs: dict[str, Message] = {}  # every saga input by id
        self.sent: dict[str, r.Record] = {}  # every command the saga sent, by id
        self.events: dict[str, dict[str, r.OrderEvent]] = defaultdict(dict)
        self.armed: dict[str, list[tuple[Step, float]]] = defaultdict(list)  # deadlines set
        self.accepting: set[str] = set()  # orders the store accepts when the drain reaches them
        self.serial = 0

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
            self.payment.declines.add(order_id)
        if store_accepts:
            self.accepting.add(order_id)
        self.decide(placed)

    def next_id(self, kind: str) -> str:
        self.serial += 1
        return f"{kind}-{self.serial}"

    # --- the saga side ---------------------------------------------------------------------

    def decide(self, message: Message) -> Decision:
        order_id = message.order_id
        decision = decide(self.sagas.get(order_id), message, self.now, POLICY)
        if decision.state is not None:
            self.sagas[order_id] = decision.state
            step, deadline = decision.state.step, decision.state.deadline
            if deadline is not None and (step, deadline) not in self.armed[order_id]:
                self.armed[order_id].append((step, deadline))
        self.inputs[message.event_id] = message
        self.send(decision)
        return decision

    def send(self, decision: Decision) -> None:
        for command in decision.commands:
            first = self.sent.setdefault(command.event_id, command)
            assert _content(first) == _content(command), "one command id, two different commands"
            self.commands[self.queue_of(command)].append(command)
        for event in decision.events:
            seen = self.events[event.order_id].setdefault(event.event_id, event)
            assert seen.type == event.type, "one event id, two different events"  # type: ignore[attr-defined]

    def queue_of(self, command: r.Record) -> Queue:
        participant = PARTICIPANT_OF[command.type]  # type: ignore[attr-defined]
        order = self.orders[command.order_id]  # type: ignore[attr-defined]
        key = {"points": order.customer_id, "stock": order.store_id, "payment": order.order_id}
        return participant, key[participant]

    def timeout(self, order_id: str) -> r.Timeout | None:
        """The Timeout the saga timer sends for this order's current deadline, if any."""
        state = self.sagas[order_id]
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

    # --- the participant side --------------------------------------------------------------

    def handle(self, command: r.Record) -> None:
        participant = PARTICIPANT_OF[command.type]  # type: ignore[attr-defined]
        handlers: dict[str, Callable[[r.Record], r.Reply]] = {
            "points": self.points.handle,
            "stock": self.stock.handle,
            "payment": self.payment.handle,
        }
        reply = handlers[participant](command)
        self.handled.append(command)
        self.replies[(participant, reply.order_id)].append(reply)

    def busy(self) -> list[tuple[str, Queue]]:
        return [("command", q) for q, items in sorted(self.commands.items()) if items] + [
            ("reply", q) for q, items in sorted(self.replies.items()) if items
        ]

    def losable(self) -> list[tuple[str, Queue]]:
        """Busy queues whose next message may be lost: all but a DeductPoints, which the saga
        sends once and never re-sends (it waits for no answer)."""
        return [
            (kind, queue)
            for kind, queue in self.busy()
            if kind == "reply" or self.commands[queue][0].type != "DeductPoints"  # type: ignore[attr-defined]
        ]

    def move(self, kind: str, queue: Queue) -> None:
        if kind == "command":
            self.handle(self.commands[queue].popleft())
        else:
            self.decide(self.replies[queue].popleft())

    def drain(self, limit: int = 5_000) -> None:
        """Deliver everything, fire every deadline and complete accepted orders until all end."""
        for _ in range(limit):
            if busy := self.busy():
                self.move(*busy[0])
                continue
            live = sorted(o for o, s in self.sagas.items() if s.step is not Step.DONE)
            if not live:
                return
            state = self.sagas[live[0]]
            if state.step is Step.STORE and live[0] in self.accepting:
                self.decide(r.AcceptOrder(order_id=live[0], store_id=state.order.store_id))
            elif state.step is Step.COMPLETION:
                self.decide(r.CompleteOrder(order_id=live[0], store_id=state.order.store_id))
            else:
                timeout = self.timeout(live[0])
                assert timeout is not None, f"saga stuck in {state.step} without a deadline"
                self.decide(timeout)
        raise AssertionError("the sagas did not settle")

    # --- what must hold --------------------------------------------------------------------

    def endings(self, order_id: str) -> list[r.OrderEvent]:
        return [e for e in self.events[order_id].values() if e.type in ENDINGS]  # type: ignore[attr-defined]

    def check_ledgers(self) -> None:
        reservations = self.stock.reservations.values()
        for menu_id, item in self.stock.store.items.items():
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
        for customer, account in self.points.accounts.items():
            holds = [h for (c, _), h in self.points.holds.items() if c == customer]
            assert 0 <= account.held <= account.balance, customer
            assert account.held == sum(h.amount for h in holds if h.status is HoldStatus.RESERVED)
            spent = sum(h.amount for h in holds if h.status is HoldStatus.DEDUCTED)
            assert account.balance == BALANCES[customer] - spent, customer
        for order_id in self.orders:
            assert self.payment.gateway[(order_id, Action.AUTHORIZE)] <= 1, order_id

    def check_sagas(self) -> None:
        for order_id, state in self.sagas.items():
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
        reservation = self.stock.reservations.get(order_id)
        hold = self.points.holds.get((order.customer_id, order_id))
        record = self.payment.payments.get(order_id)
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
        for order_id, order in self.orders.items():
            state = self.sagas[order_id]
            assert state.step is Step.DONE and state.status in TERMINAL, order_id
            assert len(self.endings(order_id)) == 1, order_id
            reservation = self.stock.reservations.get(order_id)
            hold = self.points.holds.get((order.customer_id, order_id))
            record = self.payment.payments.get(order_id)
            voided = self.payment.gateway[(order_id, Action.VOID)]
            refunded = self.payment.gateway[(order_id, Action.REFUND)]
            if state.status is OrderStatus.COMPLETED:
                assert reservation is not None
                assert reservation.status is ReservationStatus.COMMITTED
                for line in order.lines:
                    sold[line.menu_id] += line.quantity
                if order.points:
                    assert hold is not None and hold.status is HoldStatus.DEDUCTED
                    spent[order.customer_id] += order.points
                if order.final_amount:
                    assert record is not None and record.status is PaymentStatus.AUTHORIZED
                    assert self.payment.gateway[(order_id, Action.AUTHORIZE)] == 1
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
        for menu_id, item in self.stock.store.items.items():
            assert item.reserved == 0, menu_id
            if not item.unlimited:
                assert item.sold == sold[menu_id], menu_id
        for customer, account in self.points.accounts.items():
            assert account.held == 0, customer
            assert account.balance == BALANCES[customer] - spent[customer], customer
