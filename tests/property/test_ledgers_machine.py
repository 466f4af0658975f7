"""The stock and points handlers' ledgers under random command sequences over several orders.

Each machine sends its handler (the orchestrator's stock step, the points handler) any
command of a few orders, adjustments, and for stock the expiry timer's sweeps, which may
arrive after later commands, through ``driver.Agents``; it keeps a small model of what the
counts must be. After every step the ledger's invariants hold and its counts agree with the
open records; the last command delivered again, or any adjustment, changes nothing. Across
all the events sent, each stock line that changes its item counts the item's version up by
one (1, 2, 3, ...), one that changes nothing repeats it, and the ledger holds the last told.
"""

from __future__ import annotations

from typing import Any

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from eatcloud.domain.points import Hold, HoldStatus, PointsAccount
from eatcloud.domain.saga import SagaPolicy
from eatcloud.domain.stock import ItemStock, Reservation, ReservationStatus, StoreStock, is_expired
from eatcloud.streams import records as r
from eatcloud.streams.records import StockLine
from tests.property.driver import Agents, Effects

ORDERS = st.sampled_from(["order-1", "order-2", "order-3", "order-4", "store", "items", "ledger"])
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
STORE = "store-1"
CUSTOMER = "customer-1"
TTL = 20.0
SETTINGS = settings(max_examples=150, stateful_step_count=40, deadline=None)


class LedgerMachine(RuleBasedStateMachine):
    """Sends commands to the handlers and keeps them for delivering again."""

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.agents = Agents(SagaPolicy(), TTL, lambda: self.now)
        self.handled: list[r.Record] = []
        self.serial = 0

    def next_id(self, kind: str) -> str:
        self.serial += 1
        return f"{kind}-{self.serial}"

    def send(self, command: r.Record) -> Effects:
        self.handled.append(command)
        return self.agents.deliver(command)

    def reply(self, effects: Effects) -> str:
        (reply,) = (s for s in effects.sends if isinstance(s, r.Reply))
        kind: str = reply.type  # type: ignore[attr-defined]
        return kind

    @precondition(lambda self: self.handled)
    @rule(n=st.integers(0, 100))
    def deliver_again(self, n: int) -> None:
        """The last command again (redelivered after a crash) or any adjustment again (known
        by its id): neither changes anything."""
        adjustments = [c for c in self.handled if isinstance(c, r.AdjustStock | r.AdjustPoints)]
        again = [self.handled[-1], *adjustments]
        command = again[n % len(again)]
        effects = self.agents.deliver(command)
        assert not effects.changed, f"a repeated {command.type} changed the ledger"  # type: ignore[attr-defined]


def counts(line: r.StockLevelChanged) -> tuple[int, int, int, bool]:
    return line.on_hand, line.reserved, line.sold, line.unlimited


class StockLedgerMachine(LedgerMachine):
    def __init__(self) -> None:
        super().__init__()
        self.baseline: dict[str, int] = {}
        self.counted: dict[str, dict[str, int]] = {}  # order -> units it took from counts
        self.sweeps: list[r.ExpireReservations] = []  # on their way
        self.told: dict[str, r.StockLevelChanged] = {}  # menu -> its last stock line

    def send(self, command: r.Record) -> Effects:
        effects = super().send(command)
        self.check_versions(effects)
        return effects

    def check_versions(self, effects: Effects) -> None:
        """An item's lines carry consecutive versions from one event to the next: one up when
        the line differs from the item's line before (its first line is version 1), the same
        when it does not (a refusal, a probe, an order reserved while unlimited). And every
        change is told: the ledger's versions are the ones its last lines carried."""
        events = [e for e in effects.sends if isinstance(e, r.StockLevelsChanged)]
        for line in r.stock_lines(events):
            told = self.told.get(line.menu_id)
            if told is None:
                expected = 1
            else:
                assert told.version is not None
                expected = told.version + (counts(line) != counts(told))
            assert line.version == expected, f"{line.menu_id} {line.change}: {line.version}"
            self.told[line.menu_id] = line
        ledger = {m: item.version for m, item in self.store.items.items()}
        assert ledger == {m: line.version for m, line in self.told.items()}

    @property
    def store(self) -> StoreStock:
        return self.agents.ledger(STORE)

    @property
    def reservations(self) -> dict[str, Reservation]:
        return self.agents.reservations(STORE)

    @initialize(
        shelf=st.fixed_dictionaries({m: st.integers(0, 4) for m in MENUS}),
        unlimited=st.sampled_from([*MENUS, None]),
    )
    def open_the_store(self, shelf: dict[str, int], unlimited: str | None) -> None:
        for menu_id, quantity in shelf.items():
            self.adjust(menu_id, quantity, True if menu_id == unlimited else None)

    @rule(order_id=ORDERS, lines=LINES, late=st.sampled_from([0.0, 10.0, 15.0]))
    def reserve(self, order_id: str, lines: list[StockLine], late: float) -> None:
        """A reserve sent ``late`` seconds ago: its reservation has TTL - late seconds left."""
        before, current = self.store, self.reservations.get(order_id)
        counted: dict[str, int] = {}
        for line in lines:
            item = before.items.get(line.menu_id)
            if item is not None and not item.unlimited:
                counted[line.menu_id] = counted.get(line.menu_id, 0) + line.quantity
        command = r.ReserveStock(
            event_id=self.next_id("reserve"),
            occurred_at=self.now - late,
            order_id=order_id,
            store_id=STORE,
            lines=tuple(lines),
        )
        reply = self.reply(self.send(command))
        after = self.reservations.get(order_id)
        if current is not None:
            assert (self.store, after) == (before, current), "not idempotent"
            return
        assert after is not None
        if after.status is ReservationStatus.RESERVED:
            assert reply == "StockReserved"
            self.counted[order_id] = counted
        else:
            assert reply == "StockRejected"
            assert self.store == before, "a refused reserve changed the counts"

    @rule(order_id=ORDERS)
    def commit(self, order_id: str) -> None:
        before, current = self.store, self.reservations.get(order_id)
        reply = self.reply(
            self.send(
                r.CommitStock(event_id=self.next_id("commit"), order_id=order_id, store_id=STORE)
            )
        )
        if current is None or current.status is not ReservationStatus.RESERVED:
            assert self.store == before
            committed = current is not None and current.status is ReservationStatus.COMMITTED
            assert reply == ("StockCommitted" if committed else "StockCommitRejected")
        else:
            assert reply == "StockCommitted"

    @rule(order_id=ORDERS, reason=st.sampled_from(["cancelled", "expired"]))
    def release(self, order_id: str, reason: str) -> None:
        before, current = self.store, self.reservations.get(order_id)
        release = r.ReleaseStock(
            event_id=self.next_id("release"), order_id=order_id, store_id=STORE, reason=reason
        )
        assert self.reply(self.send(release)) == "StockReleased"
        if current is None:
            assert self.store == before, "releasing nothing changed the counts"
            assert self.reservations[order_id].status is ReservationStatus.RELEASED  # tombstone

    @rule(
        menu_id=st.sampled_from(MENUS),
        delta=st.integers(-4, 4),
        unlimited=st.sampled_from([None, None, True, False]),
    )
    def adjust(self, menu_id: str, delta: int, unlimited: bool | None) -> None:
        """A delivery or write-off: refused when it would take away reserved units."""
        before = self.store
        item = before.items.get(menu_id, ItemStock())
        adjust = r.AdjustStock(
            event_id=self.next_id("adjust"),
            store_id=STORE,
            menu_id=menu_id,
            delta=delta,
            unlimited=unlimited,
        )
        self.send(adjust)
        if item.on_hand + delta >= item.reserved:
            self.baseline[menu_id] = self.baseline.get(menu_id, 0) + delta
        else:
            assert self.store == before, "a refused adjustment changed the counts"

    @rule(wait=st.sampled_from([0.0, 5.0, 10.0]))
    def expire(self, wait: float) -> None:
        """The stock timer: sweeps of what its index of held reservations finds expired, on
        their way; every expired reservation is in one."""
        self.now += wait
        for store_id, order_ids in self.agents.stock.held.due(self.now).items():
            self.sweeps.append(
                r.ExpireReservations(
                    event_id=self.next_id("expire"),
                    store_id=store_id,
                    now=self.now,
                    order_ids=tuple(order_ids),
                )
            )
        swept = {order_id for sweep in self.sweeps for order_id in sweep.order_ids}
        expired = {o for o, res in self.reservations.items() if is_expired(res, self.now)}
        assert expired <= swept, "the stock timer missed expired reservations"

    @precondition(lambda self: self.sweeps)
    @rule(n=st.integers(0, 10))
    def sweep(self, n: int) -> None:
        """A sweep arrives, maybe after commands that came later (the driver checks it)."""
        self.send(self.sweeps.pop(n % len(self.sweeps)))

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


class PointsLedgerMachine(LedgerMachine):
    def __init__(self) -> None:
        super().__init__()
        self.granted = 0

    @property
    def account(self) -> PointsAccount:
        return self.agents.account(CUSTOMER)

    @property
    def holds(self) -> dict[str, Hold]:
        return self.agents.holds(CUSTOMER)

    @initialize(balance=st.integers(0, 1_000))
    def open_the_account(self, balance: int) -> None:
        self.adjust(balance)

    def order_command(
        self,
        kind: type[r.ReservePoints | r.DeductPoints | r.ReleasePoints],
        order_id: str,
        **fields: Any,
    ) -> str:
        command = kind(
            event_id=self.next_id(kind.__name__),
            order_id=order_id,
            store_id=STORE,
            customer_id=CUSTOMER,
            **fields,
        )
        return self.reply(self.send(command))

    @rule(order_id=ORDERS, amount=st.integers(0, 600))
    def reserve(self, order_id: str, amount: int) -> None:
        before, current = self.account, self.holds.get(order_id)
        reply = self.order_command(r.ReservePoints, order_id, amount=amount)
        if current is not None:
            assert (self.account, self.holds[order_id]) == (before, current), "not idempotent"
            return
        reserved = self.holds[order_id].status is HoldStatus.RESERVED
        assert reply == ("PointsReserved" if reserved else "PointsRejected")

    @rule(order_id=ORDERS)
    def deduct(self, order_id: str) -> None:
        assert self.order_command(r.DeductPoints, order_id) == "PointsDeducted"

    @rule(order_id=ORDERS)
    def release(self, order_id: str) -> None:
        before, current = self.account, self.holds.get(order_id)
        assert self.order_command(r.ReleasePoints, order_id) == "PointsReleased"
        if current is None:
            assert self.account == before, "releasing nothing changed the counts"

    @rule(delta=st.integers(-500, 500))
    def adjust(self, delta: int) -> None:
        """A grant or a removal: refused when it would leave less than what is held."""
        before = self.account
        self.send(
            r.AdjustPoints(event_id=self.next_id("adjust"), customer_id=CUSTOMER, delta=delta)
        )
        if before.balance + delta >= before.held:
            self.granted += delta
        else:
            assert self.account == before, "a refused adjustment changed the counts"

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
