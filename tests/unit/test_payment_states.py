"""Payment states of one order: what each payment command must do, and the record after it."""

from __future__ import annotations

import pytest

from eatcloud.domain.payment import Action, Payment, PaymentStatus, plan, undone

AUTHORIZED = Payment(status=PaymentStatus.AUTHORIZED, amount=9_000, authorization_id="auth-1")
DECLINED = Payment(status=PaymentStatus.DECLINED, amount=9_000, reason="card_declined")
VOIDED = AUTHORIZED.model_copy(update={"status": PaymentStatus.VOIDED})
REFUNDED = AUTHORIZED.model_copy(update={"status": PaymentStatus.REFUNDED})
EVERY_RECORD = [AUTHORIZED, DECLINED, VOIDED, REFUNDED]


def test_authorize_calls_the_gateway_only_for_an_order_without_a_record() -> None:
    assert plan(None, "AuthorizePayment") is Action.AUTHORIZE


@pytest.mark.parametrize("current", EVERY_RECORD, ids=lambda p: p.status.value)
def test_a_repeated_authorize_replays_the_recorded_answer(current: Payment) -> None:
    assert plan(current, "AuthorizePayment") is Action.REPLAY


@pytest.mark.parametrize(
    ("command", "action"),
    [("VoidPayment", Action.VOID), ("RefundPayment", Action.REFUND)],
)
def test_void_or_refund_of_an_authorized_payment_calls_the_gateway(
    command: str, action: Action
) -> None:
    assert plan(AUTHORIZED, command) is action


@pytest.mark.parametrize("command", ["VoidPayment", "RefundPayment"])
def test_void_or_refund_of_a_never_authorized_payment_only_records_a_tombstone(
    command: str,
) -> None:
    assert plan(None, command) is Action.RECORD
    tombstone = undone(None, command)
    status = PaymentStatus.VOIDED if command == "VoidPayment" else PaymentStatus.REFUNDED
    assert tombstone == Payment(status=status, reason="never_authorized")


@pytest.mark.parametrize("command", ["VoidPayment", "RefundPayment"])
def test_a_tombstone_refuses_a_late_authorize(command: str) -> None:
    tombstone = undone(None, command)
    assert plan(tombstone, "AuthorizePayment") is Action.REPLAY
    assert tombstone.authorization_id is None


@pytest.mark.parametrize("command", ["VoidPayment", "RefundPayment"])
@pytest.mark.parametrize("current", [DECLINED, VOIDED, REFUNDED], ids=lambda p: p.status.value)
def test_void_or_refund_of_a_settled_payment_calls_nothing_and_keeps_the_record(
    current: Payment, command: str
) -> None:
    assert plan(current, command) is Action.REPLAY
    assert undone(current, command) is current


@pytest.mark.parametrize(
    ("command", "status"),
    [("VoidPayment", PaymentStatus.VOIDED), ("RefundPayment", PaymentStatus.REFUNDED)],
)
def test_undone_keeps_the_amount_and_authorization_of_the_payment(
    command: str, status: PaymentStatus
) -> None:
    after = undone(AUTHORIZED, command)
    assert after == Payment(status=status, amount=9_000, authorization_id="auth-1")
