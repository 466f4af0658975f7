"""Poison messages, for every agent and input topic: parked in ``<topic>-dlq`` with the error and
their coordinates, and the agent goes on with the next message."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from tests.agents.harness import Harness

ORDER = r.PlaceOrder(
    order_id="o1",
    customer_id="c1",
    store_id="s1",
    lines=(r.OrderLine(menu_id="m1", quantity=1, unit_price=1000),),
)


@dataclass(frozen=True)
class Inbox:
    agent: str
    topic: str
    key: str
    invalid: bytes  # a known record type that fails validation
    then: r.Record  # a good message the agent must still process afterwards
    answer: str  # the type of one output of ``then``


INBOXES = [
    Inbox(
        "orchestrator",
        t.ORDER_COMMANDS,
        "s1",
        b'{"type":"PlaceOrder","order_id":"o1","customer_id":"c1","store_id":"s1","points":5000,'
        b'"lines":[{"menu_id":"m1","quantity":1,"unit_price":1000}]}',  # points over the total
        ORDER,
        "OrderPlaced",
    ),
    Inbox(
        "orchestrator",
        t.SAGA_REPLIES,
        "s1",
        b'{"type":"PaymentAuthorized","order_id":"o1","amount":1000}',
        ORDER,
        "OrderPlaced",
    ),
    Inbox(
        "orchestrator",
        t.STOCK_COMMANDS,
        "s1",
        b'{"type":"ReserveStock","order_id":"o1","store_id":"s1","lines":[]}',
        r.AdjustStock(store_id="s1", menu_id="m1", delta=5),
        "StockLevelsChanged",
    ),
    Inbox(
        "payment",
        t.PAYMENT_COMMANDS,
        "o1",
        b'{"type":"AuthorizePayment","order_id":"o1","customer_id":"c1","amount":-5}',
        r.AuthorizePayment(order_id="o1", store_id="s1", customer_id="c1", amount=1000),
        "PaymentAuthorized",
    ),
    Inbox(
        "points",
        t.POINTS_COMMANDS,
        "c1",
        b'{"type":"ReservePoints","order_id":"o1","customer_id":"c1","amount":-1}',
        r.ReservePoints(order_id="o1", store_id="s1", customer_id="c1", amount=10),
        "PointsRejected",
    ),
]
POISONS = {
    "undecodable": b'{"type": "PlaceOrder", ',
    "unknown_type": b'{"type":"ShipIt","order_id":"o1"}',
    "empty": b"",
}


def cases() -> list[object]:
    out: list[object] = []
    for inbox in INBOXES:
        for reason, value in [*POISONS.items(), ("invalid", inbox.invalid)]:
            out.append(pytest.param(inbox, reason, value, id=f"{inbox.topic}-{reason}"))
    return out


@pytest.mark.parametrize(("inbox", "reason", "value"), cases())
async def test_parks_a_poison_message_with_its_coordinates_and_goes_on(
    harness: Harness, inbox: Inbox, reason: str, value: bytes
) -> None:
    async with harness.agent(inbox.agent).test_context() as agent:
        event = await harness.deliver(agent, value, topic=inbox.topic, key=inbox.key, partition=2)

        (parked,) = harness.outbox.take()
        assert (parked.topic, parked.key, parked.value) == (
            t.dlq(inbox.topic),
            inbox.key.encode(),
            value,
        )
        assert parked.headers["x-error-reason"] == reason.encode()
        assert parked.headers["x-error-detail"]
        assert parked.headers["x-original-topic"] == harness.topic_name(inbox.topic).encode()
        assert parked.headers["x-original-partition"] == b"2"
        assert parked.headers["x-original-offset"] == str(event.message.offset).encode()
        assert harness.outbox.writes == []

        await harness.deliver(agent, inbox.then)

        assert inbox.answer in [s.type for s in harness.outbox.take()]


async def test_a_parked_message_keeps_its_headers_but_not_an_older_error(
    harness: Harness,
) -> None:
    headers = [("traceparent", b"00-abc-def-01"), ("x-error-reason", b"an older failure")]

    async with harness.agent("points").test_context() as agent:
        await harness.deliver(agent, b"{", topic=t.POINTS_COMMANDS, key="c1", headers=headers)

    (parked,) = harness.outbox.take()
    assert parked.headers["traceparent"] == b"00-abc-def-01"
    assert parked.headers["x-error-reason"] == b"undecodable"
    assert [k for k, _ in parked.header_list].count("x-error-reason") == 1
