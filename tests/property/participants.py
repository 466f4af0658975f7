"""In-memory saga participants (points, stock, payment) built on the real domain functions.

Each answers a command the way its agent in ``eatcloud/agents/`` does, with the same domain
functions (``apply`` and ``reply_for``): it reads the order's record, applies the command,
keeps the result and replies with an id derived from the command's id, so a re-delivered
command gets a reply with the same id. The payment gateway is a counter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from eatcloud.domain import payment, points, stock
from eatcloud.domain.payment import Action, Payment, PaymentStatus
from eatcloud.domain.points import Hold, PointsAccount
from eatcloud.domain.stock import Reservation, StoreStock
from eatcloud.streams import records as r

RESERVATION_TTL = 50.0


@dataclass
class PointsParticipant:
    accounts: dict[str, PointsAccount]
    holds: dict[tuple[str, str], Hold] = field(default_factory=dict)

    def handle(self, command: r.Record) -> r.Reply:
        assert isinstance(command, r.ReservePoints | r.DeductPoints | r.ReleasePoints)
        key = (command.customer_id, command.order_id)
        account, hold = self.accounts[command.customer_id], self.holds.get(key)
        outcome = points.apply(account, hold, command)
        self.accounts[command.customer_id] = outcome.account
        if outcome.hold is not None:
            self.holds[key] = outcome.hold
        return points.reply_for(command, self.holds.get(key))


@dataclass
class StockParticipant:
    store: StoreStock
    reservations: dict[str, Reservation] = field(default_factory=dict)

    def handle(self, command: r.Record) -> r.Reply:
        assert isinstance(command, r.ReserveStock | r.CommitStock | r.ReleaseStock)
        current = self.reservations.get(command.order_id)
        outcome = stock.apply(self.store, current, command, RESERVATION_TTL)
        self._keep(command.order_id, outcome)
        reply = stock.reply_for(command, self.reservations.get(command.order_id), outcome.rejected)
        assert reply is not None
        return reply

    def expire(self, now: float) -> list[str]:
        """The stock timer: release every reservation whose TTL passed by ``now``."""
        orders = sorted(
            (o for o, res in self.reservations.items() if stock.is_expired(res, now)),
            key=lambda o: self.reservations[o].expires_at,
        )
        for order_id in orders:
            current = self.reservations.get(order_id)
            self._keep(order_id, stock.release(self.store, current, order_id, "expired"))
        return orders

    def deliver(self, menu_id: str, delta: int) -> None:
        """The store's own stock change; a refused write-off changes nothing."""
        self.store = stock.adjust(self.store, menu_id, delta, None).store

    def _keep(self, order_id: str, outcome: stock.Outcome) -> None:
        self.store = outcome.store
        if outcome.reservation is not None:
            self.reservations[order_id] = outcome.reservation


@dataclass
class PaymentParticipant:
    """The payment agent plus a gateway that counts its calls per order and action."""

    declines: set[str] = field(default_factory=set)
    payments: dict[str, Payment] = field(default_factory=dict)
    gateway: Counter[tuple[str, Action]] = field(default_factory=Counter)

    def handle(self, command: r.Record) -> r.Reply:
        assert isinstance(command, r.AuthorizePayment | r.VoidPayment | r.RefundPayment)
        current = self.payments.get(command.order_id)
        action = payment.plan(current, command.type)
        if action is not Action.REPLAY and action is not Action.RECORD:
            self.gateway[(command.order_id, action)] += 1
        if isinstance(command, r.AuthorizePayment) and action is Action.AUTHORIZE:
            approved = command.order_id not in self.declines
            after = Payment(
                status=PaymentStatus.AUTHORIZED if approved else PaymentStatus.DECLINED,
                amount=command.amount,
                authorization_id=f"auth-{command.order_id}" if approved else None,
                reason="" if approved else "card_declined",
            )
        elif isinstance(command, r.AuthorizePayment):
            assert current is not None
            after = current
        else:
            after = payment.undone(current, command.type)
        self.payments[command.order_id] = after
        return payment.reply_for(command, after)
