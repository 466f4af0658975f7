"""The stock and points ledgers under random command sequences over several orders.

Each machine keeps the records the agent would keep (one per order) and a small model of
what the counts must be; after every step the ledger's invariants hold and its counts agree
with the open records.
"""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from eatcloud.domain import points, stock
from eatcloud.domain.points import Hold, HoldStatus, PointsAccount
from eatcloud.domain.stock import Reservation, ReservationStatus, StoreStock
from eatcloud.streams.records import StockLine

ORDERS = st.sampled_from(["order-1", "order-2", "order-3", "order-4", "store", "items"])
MENUS = ("burger", "fries", "soda")
LINES = st.lists(
    st.builds(
        StockLine,
        menu_id=st.sampled_from([*MENUS, "pizza"]),  # pizza is never stocked
        quantity=st.integers(1, 3),
    ),
    min_size=1,
    max_size=3,
)
SETTINGS = settings(max_examples=150, stateful_step_count=40, deadline=None)


class StockLedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.store = StoreStock()
        self.reservations: dict[str, Reservation] = {}
        self.baseline: dict[str, int] = {}
        self.counted: dict[str, dict[str, int]] = {}  # order -> units it took from counts
        self.now = 0.0

    @initialize(
        shelf=st.fixed_dictionaries({m: st.integers(0, 4) for m in MENUS}),
        unlimited=st.sampled_from([*MENUS, None]),
    )
    def open_the_store(self, shelf: dict[str, int], unlimited: str | None) -> None:
        for menu_id, quantity in shelf.items():
            self.adjust(menu_id, quantity, True if menu_id == unlimited else None)

    def keep(self, order_id: str, outcome: stock.Outcome) -> None:
        self.store = outcome.store
        if outcome.reservation is not None:
            self.reservations[order_id] = outcome.reservation

    @rule(order_id=ORDERS, lines=LINES, ttl=st.sampled_from([5.0, 10.0, 20.0]))
    def reserve(self, order_id: str, lines: list[StockLine], ttl: float) -> None:
        before, current = self.store, self.reservations.get(order_id)
        counted: dict[str, int] = {}
        for line in lines:
            item = before.items.get(line.menu_id)
            if item is not None and not item.unlimited:
                counted[line.menu_id] = counted.get(line.menu_id, 0) + line.quantity
        outcome = stock.reserve(before, current, order_id, tuple(lines), self.now + ttl)
        self.keep(order_id, outcome)
        if current is not None:
            assert outcome.store is before and outcome.reservation is None, "not idempotent"
            return
        assert outcome.reservation is not None
        if outcome.reservation.status is ReservationStatus.RESERVED:
            self.counted[order_id] = counted
        else:
            assert outcome.store is before, "a refused reserve changed the counts"

    @rule(order_id=ORDERS)
    def commit(self, order_id: str) -> None:
        current = self.reservations.get(order_id)
        outcome = stock.commit(self.store, current, order_id)
        if current is None or current.status is not ReservationStatus.RESERVED:
            assert outcome.store is self.store
        self.keep(order_id, outcome)

    @rule(order_id=ORDERS, reason=st.sampled_from(["cancelled", "expired"]))
    def release(self, order_id: str, reason: str) -> None:
        current = self.reservations.get(order_id)
        outcome = stock.release(self.store, current, order_id, reason)
        if current is None:
            assert outcome.store is self.store, "releasing nothing changed the counts"
            assert outcome.reservation is not None
            assert outcome.reservation.status is ReservationStatus.RELEASED  # the tombstone
        self.keep(order_id, outcome)

    @rule(
        menu_id=st.sampled_from(MENUS),
        delta=st.integers(-4, 4),
        unlimited=st.sampled_from([None, None, True, False]),
    )
    def adjust(self, menu_id: str, delta: int, unlimited: bool | None) -> None:
        outcome = stock.adjust(self.store, menu_id, delta, unlimited)
        if not outcome.rejected:
            self.baseline[menu_id] = self.baseline.get(menu_id, 0) + delta
        self.store = outcome.store

    @rule(wait=st.sampled_from([0.0, 5.0, 10.0]))
    def expire(self, wait: float) -> None:
        self.now += wait
        due = [o for o, res in self.reservations.items() if stock.is_expired(res, self.now)]
        for order_id in due:
            self.keep(
                order_id,
                stock.release(self.store, self.reservations[order_id], order_id, "expired"),
            )
        assert not any(stock.is_expired(res, self.now) for res in self.reservations.values())

    def units(self, menu_id: str, status: ReservationStatus) -> int:
        return sum(
            self.counted[order_id].get(menu_id, 0)
            for order_id, reservation in self.reservations.items()
            if reservation.status is status and order_id in self.counted
        )

    @invariant()
    def counts_balance_and_match_the_open_reservations(self) -> None:
        for menu_id, item in self.store.items.items():
            assert item.on_hand + item.sold == item.baseline == self.baseline[menu_id], menu_id
            assert 0 <= item.reserved <= item.on_hand, menu_id
            assert item.reserved == self.units(menu_id, ReservationStatus.RESERVED), menu_id
            assert item.sold == self.units(menu_id, ReservationStatus.COMMITTED), menu_id


class PointsLedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.account = PointsAccount()
        self.holds: dict[str, Hold] = {}
        self.granted = 0

    @initialize(balance=st.integers(0, 1_000))
    def open_the_account(self, balance: int) -> None:
        self.adjust(balance)

    def keep(self, order_id: str, outcome: points.Outcome) -> None:
        self.account = outcome.account
        if outcome.hold is not None:
            self.holds[order_id] = outcome.hold

    @rule(order_id=ORDERS, amount=st.integers(0, 600))
    def reserve(self, order_id: str, amount: int) -> None:
        current = self.holds.get(order_id)
        outcome = points.reserve(self.account, current, amount)
        if current is not None:
            assert outcome.account is self.account and outcome.hold is None, "not idempotent"
        self.keep(order_id, outcome)

    @rule(order_id=ORDERS)
    def deduct(self, order_id: str) -> None:
        self.keep(order_id, points.deduct(self.account, self.holds.get(order_id)))

    @rule(order_id=ORDERS)
    def release(self, order_id: str) -> None:
        current = self.holds.get(order_id)
        outcome = points.release(self.account, current)
        if current is None:
            assert outcome.account is self.account, "releasing nothing changed the counts"
        self.keep(order_id, outcome)

    @rule(delta=st.integers(-500, 500))
    def adjust(self, delta: int) -> None:
        adjusted = points.adjust(self.account, delta)
        if adjusted is not None:
            self.account = adjusted
            self.granted += delta

    def amounts(self, status: HoldStatus) -> int:
        return sum(hold.amount for hold in self.holds.values() if hold.status is status)

    @invariant()
    def held_is_the_open_holds_and_never_exceeds_the_balance(self) -> None:
        assert 0 <= self.account.held <= self.account.balance
        assert self.account.held == self.amounts(HoldStatus.RESERVED)
        assert self.account.balance == self.granted - self.amounts(HoldStatus.DEDUCTED)


StockLedgerMachine.TestCase.settings = SETTINGS
PointsLedgerMachine.TestCase.settings = SETTINGS
TestStockLedger = StockLedgerMachine.TestCase
TestPointsLedger = PointsLedgerMachine.TestCase
