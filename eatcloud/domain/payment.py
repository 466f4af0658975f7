"""Payment states of one order and what each payment command must do about them. Pure.

The payment record (one per order) makes every command idempotent: a repeated authorize
replays the stored answer instead of charging again; a void or refund of a payment that was
never authorized calls no gateway and leaves a tombstone, so a late authorize is refused.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from eatcloud.streams import records as r


class PaymentStatus(StrEnum):
    AUTHORIZED = "AUTHORIZED"
    DECLINED = "DECLINED"
    VOIDED = "VOIDED"
    REFUNDED = "REFUNDED"


class Payment(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    status: PaymentStatus
    amount: int = 0
    authorization_id: str | None = None
    reason: str = ""


class Action(StrEnum):
    """What the payment agent has to do for a command, given the order's payment record."""

    AUTHORIZE = "authorize"  # call the gateway, then record the answer
    VOID = "void"  # call the gateway to cancel the authorization
    REFUND = "refund"  # call the gateway to give the money back
    RECORD = "record"  # no gateway call; write the tombstone/status only
    REPLAY = "replay"  # nothing to do; answer from the record


def plan(current: Payment | None, command: str) -> Action:
    if command == "AuthorizePayment":
        return Action.AUTHORIZE if current is None else Action.REPLAY
    undone = PaymentStatus.VOIDED if command == "VoidPayment" else PaymentStatus.REFUNDED
    if current is None:
        return Action.RECORD
    if current.status is PaymentStatus.AUTHORIZED:
        return Action.VOID if undone is PaymentStatus.VOIDED else Action.REFUND
    return Action.REPLAY


def undone(current: Payment | None, command: str) -> Payment:
    """The record after a void or refund (tombstone when nothing was authorized)."""
    status = PaymentStatus.VOIDED if command == "VoidPayment" else PaymentStatus.REFUNDED
    if current is None:
        return Payment(status=status, reason="never_authorized")
    if current.status is PaymentStatus.AUTHORIZED:
        return current.model_copy(update={"status": status})
    return current


def reply_for(
    command: r.AuthorizePayment | r.VoidPayment | r.RefundPayment, payment: Payment
) -> r.Reply:
    """The saga's answer to a command, from the order's payment record after it."""
    ids = r.reply_ids(command)
    if isinstance(command, r.AuthorizePayment):
        if payment.status is PaymentStatus.DECLINED or payment.authorization_id is None:
            return r.PaymentDeclined(**ids, reason=payment.reason or "declined")
        return r.PaymentAuthorized(
            **ids, amount=payment.amount, authorization_id=payment.authorization_id
        )
    if isinstance(command, r.VoidPayment):
        return r.PaymentVoided(**ids)
    return r.PaymentRefunded(**ids)
