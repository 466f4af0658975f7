"""The payment agent: payment commands in, gateway calls, the payments table and replies out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from eatcloud.domain.payment import PaymentStatus
from eatcloud.errors import InfrastructureError
from eatcloud.payments.gateway import SimulatedGateway
from eatcloud.settings import PaymentSettings
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import encode
from tests.agents.harness import FakeGateway, Harness

AUTHORIZE = r.AuthorizePayment(order_id="o1", store_id="s1", customer_id="c1", amount=3500)


@pytest.fixture
async def payment(harness: Harness) -> AsyncIterator[Any]:
    async with harness.agent("payment").test_context() as agent:
        yield agent


def reply_to(command: r.Record, harness: Harness) -> Any:
    """The one message sent, checked to be the saga reply keyed and named for ``command``."""
    (reply,) = harness.outbox.take()
    assert (reply.topic, reply.key) == (t.SAGA_REPLIES, b"s1")  # the saga's partition: its store
    assert reply.record.event_id == r.derived_id(command.event_id, "reply")
    return reply


async def test_authorizes_through_the_gateway_and_records_the_authorization(
    harness: Harness, payment: Any, gateway: FakeGateway
) -> None:
    await harness.deliver(payment, AUTHORIZE)

    assert gateway.calls == [("authorize", "o1")]
    recorded = harness.payment("o1")
    assert recorded is not None
    assert (recorded.status, recorded.amount, recorded.authorization_id) == (
        PaymentStatus.AUTHORIZED,
        3500,
        "auth-o1",
    )
    reply = reply_to(AUTHORIZE, harness)
    assert (reply.type, reply.record.amount, reply.record.authorization_id) == (
        "PaymentAuthorized",
        3500,
        "auth-o1",
    )


async def test_a_redelivered_authorize_answers_from_the_record_without_charging_again(
    harness: Harness, payment: Any, gateway: FakeGateway
) -> None:
    await harness.deliver(payment, AUTHORIZE)
    first, recorded = reply_to(AUTHORIZE, harness), harness.payment("o1")
    harness.outbox.clear()

    await harness.deliver(payment, AUTHORIZE)

    assert gateway.calls == [("authorize", "o1")]
    again = reply_to(AUTHORIZE, harness)
    assert (again.type, again.record.event_id, again.record.authorization_id) == (
        first.type,
        first.record.event_id,
        first.record.authorization_id,
    )
    assert harness.payment("o1") == recorded
    assert harness.outbox.writes == []


async def test_records_a_decline_and_answers_payment_declined(
    harness: Harness, payment: Any, gateway: FakeGateway
) -> None:
    gateway.declined["o1"] = "card_declined"

    await harness.deliver(payment, AUTHORIZE)

    recorded = harness.payment("o1")
    assert recorded is not None
    assert (recorded.status, recorded.reason) == (PaymentStatus.DECLINED, "card_declined")
    reply = reply_to(AUTHORIZE, harness)
    assert (reply.type, reply.record.reason) == ("PaymentDeclined", "card_declined")


async def test_voids_an_authorization_once(
    harness: Harness, payment: Any, gateway: FakeGateway
) -> None:
    void = r.VoidPayment(order_id="o1", store_id="s1")
    await harness.deliver(payment, AUTHORIZE)
    harness.outbox.clear()

    await harness.deliver(payment, void)
    await harness.deliver(payment, void)

    assert gateway.calls == [("authorize", "o1"), ("void", "o1")]
    recorded = harness.payment("o1")
    assert recorded is not None and recorded.status is PaymentStatus.VOIDED
    replies = harness.outbox.take()
    assert [s.type for s in replies] == ["PaymentVoided", "PaymentVoided"]
    assert replies[0].record.event_id == replies[1].record.event_id
    assert len(harness.outbox.writes) == 1


async def test_refunds_an_authorization(
    harness: Harness, payment: Any, gateway: FakeGateway
) -> None:
    refund = r.RefundPayment(order_id="o1", store_id="s1")
    await harness.deliver(payment, AUTHORIZE)
    harness.outbox.clear()

    await harness.deliver(payment, refund)

    assert gateway.calls[-1] == ("refund", "o1")
    recorded = harness.payment("o1")
    assert recorded is not None and recorded.status is PaymentStatus.REFUNDED
    assert reply_to(refund, harness).type == "PaymentRefunded"


async def test_a_void_before_any_authorize_leaves_a_tombstone_that_refuses_a_late_authorize(
    harness: Harness, payment: Any, gateway: FakeGateway
) -> None:
    void = r.VoidPayment(order_id="o1", store_id="s1")

    await harness.deliver(payment, void)
    assert reply_to(void, harness).type == "PaymentVoided"
    await harness.deliver(payment, AUTHORIZE)

    assert gateway.calls == []
    recorded = harness.payment("o1")
    assert recorded is not None
    assert (recorded.status, recorded.reason) == (PaymentStatus.VOIDED, "never_authorized")
    reply = reply_to(AUTHORIZE, harness)
    assert (reply.type, reply.record.reason) == ("PaymentDeclined", "never_authorized")


async def test_a_gateway_outage_crashes_the_agent_before_anything_is_recorded_or_answered(
    harness: Harness, gateway: FakeGateway
) -> None:
    gateway.failure = InfrastructureError("the gateway is unreachable")

    with pytest.raises(InfrastructureError):
        async with harness.agent("payment").test_context() as payment:
            await harness.deliver(payment, AUTHORIZE)

    assert harness.payment("o1") is None
    assert harness.outbox.sent == []
    assert harness.outbox.writes == []


async def test_a_gateway_bug_parks_the_command_in_the_dlq_and_the_agent_goes_on(
    harness: Harness, payment: Any, gateway: FakeGateway
) -> None:
    gateway.failure = ValueError("unexpected answer")

    await harness.deliver(payment, AUTHORIZE)

    (parked,) = harness.outbox.take()
    assert (parked.topic, parked.value) == (t.dlq(t.PAYMENT_COMMANDS), encode(AUTHORIZE))
    assert parked.headers["x-error-reason"] == b"handler_error"
    assert harness.payment("o1") is None

    gateway.failure = None
    await harness.deliver(
        payment, r.AuthorizePayment(order_id="o1", store_id="s1", customer_id="c1", amount=1)
    )
    assert [s.type for s in harness.outbox.take()] == ["PaymentAuthorized"]


@pytest.mark.parametrize(
    ("amount", "reply", "reason"),
    [(3500, "PaymentAuthorized", None), (3513, "PaymentDeclined", "card_declined")],
)
async def test_the_simulated_gateway_declines_amounts_ending_in_its_decline_cents(
    tmp_path: Path, amount: int, reply: str, reason: str | None
) -> None:
    # Its latency makes the handler wait mid-message: ``deliver`` still returns only after it.
    simulated = SimulatedGateway(PaymentSettings(decline_cents=13, latency_ms=20))
    harness = Harness.build(tmp_path, simulated)
    try:
        async with harness.agent("payment").test_context() as payment:
            await harness.deliver(
                payment,
                r.AuthorizePayment(order_id="o1", store_id="s1", customer_id="c1", amount=amount),
            )
        (sent,) = harness.outbox.take()
        assert (sent.type, getattr(sent.record, "reason", None)) == (reply, reason)
    finally:
        harness.close()


async def test_a_forget_deletes_the_payment_record_and_answers_nothing(
    harness: Harness, payment: Any, gateway: FakeGateway
) -> None:
    await harness.deliver(payment, AUTHORIZE)
    harness.outbox.clear()

    forget = r.ForgetPayment(order_id="o1", store_id="s1")
    await harness.deliver(payment, forget)
    await harness.deliver(payment, forget)  # redelivered: nothing left to delete

    assert harness.payment("o1") is None
    assert harness.outbox.take() == []
    assert gateway.calls == [("authorize", "o1")]
