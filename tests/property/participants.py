"""In-memory saga participants (points, stock, payment) built on the real domain functions.

Each answers a command the way its agent in ``eatcloud/agents/`` does (kept in step by hand,
since the agents import Faust): it reads the order's record, applies the pure domain
function, keeps the result and replies with an id derived from the command's id, so a
re-delivered command gets a reply with the same id. The payment gateway is a counter.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from eatcloud.domain import payment, points, stock
from eatcloud.domain.payment import Action, Payment, PaymentStatus
from eatcloud.domain.points import Hold, HoldStatus, PointsAccount
from eatcloud.domain.stock import Reservation, ReservationStatus, StoreStock
from eatcloud.streams import records as r

RESERVATION_TTL = 50.0


def _ids(command: r.Record, order_id: str) -> dict[str, Any]:
    return {"event_id": r.derived_id(command.event_id, "reply"), "order_id": order_id}


@dataclass
class PointsParticipant:
    accounts: dict[str, PointsAccount]
    holds: dict[tuple[str, str], Hold] = field(default_factory=dict)

    def handle(self, command: r.Record) -> r.Reply:
        assert isinstance(command, r.ReservePoints | r.DeductPoints | r.ReleasePoints)
        key = (command.customer_id, command.order_id)
        account, hold = self.accounts[command.customer_id], self.holds.get(key)
        if isinstance(command, r.ReservePoints):
            outcome = points.reserve(account, hold, command.amount)
        elif isinstance(command, r.DeductPoints):
            outcome = points.deduct(account, hold)
        else:
            outcome = points.release(account, hold)
        self.accounts[command.customer_id] = outcome.account
        if outcome.hold is not None:
            self.holds[key] = outcome.hold
        after = self.holds.get(key)
        ids = _ids(command, command.order_id)
        if isinstance(command, r.ReservePoints):
            if after is None or after.status is HoldStatus.REJECTED:
                return r.PointsRejected(**ids, reason=after.reason if after else "insufficient")
            if after.status is HoldStatus.RELEASED and after.amount == 0:  # a tombstone
                return r.PointsRejected(**ids, reason="cancelled_before_reserved")
            return r.PointsReserved(**ids)
        if isinstance(command, r.DeductPoints):
            return r.PointsDeducted(**ids)
        return r.PointsReleased(**ids)


@dataclass
class StockParticipant:
    store: StoreStock
    reservations: dict[str, Reservation] = field(default_factory=dict)

    def handle(self, command: r.Record) -> r.Reply:
        assert isinstance(command, r.ReserveStock | r.CommitStock | r.ReleaseStock)
        current = self.reservations.get(command.order_id)
        ids = _ids(command, command.order_id)
        if isinstance(command, r.ReserveStock):
            expires = command.occurred_at + RESERVATION_TTL
            outcome = stock.reserve(self.store, current, command.order_id, command.lines, expires)
        elif isinstance(command, r.CommitStock):
            outcome = stock.commit(self.store, current, command.order_id)
        else:
            reason = command.reason or "released"
            outcome = stock.release(self.store, current, command.order_id, reason)
        self._keep(command.order_id, outcome)
        if isinstance(command, r.ReserveStock):
            after = self.reservations[command.order_id]
            if after.status is ReservationStatus.REJECTED:
                return r.StockRejected(**ids, reason=after.reason, short=after.short)
            if after.status is ReservationStatus.RELEASED and not after.lines:  # a tombstone
                return r.StockRejected(**ids, reason="cancelled_before_reserved")
            return r.StockReserved(**ids)
        if isinstance(command, r.CommitStock):
            if outcome.rejected:
                return r.StockCommitRejected(**ids, reason=outcome.rejected)
            return r.StockCommitted(**ids)
        return r.StockReleased(**ids)

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
        ids = _ids(command, command.order_id)
        if isinstance(command, r.AuthorizePayment):
            if after.status is PaymentStatus.DECLINED or after.authorization_id is None:
                return r.PaymentDeclined(**ids, reason=after.reason or "declined")
            return r.PaymentAuthorized(
                **ids, amount=after.amount, authorization_id=after.authorization_id
            )
        if isinstance(command, r.VoidPayment):
            return r.PaymentVoided(**ids)
        return r.PaymentRefunded(**ids)
