"""A forged reply cannot move an order, on the real broker (issue 13, the event backbone).

Anyone who can write to the saga's topics could once produce a ``PaymentAuthorized`` and see
the order PAID without a payment: one decoder read ``order-commands`` and ``saga-replies``
together, and a reply was never tied to the command the saga sent. Now each topic has its own
decoder and the saga takes a reply only if its id answers a command it sent; the rest goes to
the dead letters with its reason.

The worker's gateway answers after 6 s, so the order waits in the payment step while the
forgeries arrive.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from eatcloud.settings import Settings
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import encode
from tests.integration.saga_harness import Bus, order, saga_worker, unique_prefix


async def test_a_forged_reply_on_either_topic_is_dead_lettered_and_moves_nothing(
    stack: Settings, tmp_path: Path
) -> None:
    prefix = unique_prefix("forged")
    worker = saga_worker(
        tmp_path,
        stack.kafka.bootstrap_servers,
        prefix,
        EATCLOUD_PAYMENT__LATENCY_MS="6000",
        EATCLOUD_SAGA__STEP_TIMEOUT_SECONDS="30",
    )
    worker.start()
    bus = Bus(stack.kafka.bootstrap_servers, prefix)
    await bus.start()
    try:
        store, menu = f"store-{uuid.uuid4().hex[:8]}", f"menu-{uuid.uuid4().hex[:8]}"
        await bus.adjust(r.AdjustStock(store_id=store, menu_id=menu, delta=5, reason="delivery"))
        placed = order(store, [(menu, 1, 9_000)])
        await bus.send(placed)
        await bus.wait(
            t.PAYMENT_COMMANDS,
            lambda vs: any(v.get("order_id") == placed.order_id for v in vs),
            within=60,
        )

        forged = r.PaymentAuthorized(
            order_id=placed.order_id,
            store_id=store,
            amount=placed.final_amount,
            authorization_id="forged-authorization",
        )
        await bus.send(forged)  # to saga-replies, where replies go
        await bus.send(raw=encode(forged), topic=t.ORDER_COMMANDS)  # and where commands go

        def parked(reason: str) -> Callable[[list[dict[str, Any]]], bool]:
            return lambda vs: any(
                v.get("event_id") == forged.event_id
                and v["_headers"].get("x-error-reason") == reason
                for v in vs
            )

        await bus.wait(t.dlq(t.SAGA_REPLIES), parked("unsolicited_reply"), within=30)
        await bus.wait(t.dlq(t.ORDER_COMMANDS), parked("unknown_type"), within=30)

        # The real payment still decides: the order is paid by the gateway's authorization.
        paid = await bus.wait_for(placed.order_id, "OrderPaid", within=60)
        assert paid["authorization_id"] != "forged-authorization", paid
        mine = [v for v in bus.seen[t.ORDER_EVENTS] if v.get("order_id") == placed.order_id]
        assert [v["type"] for v in mine] == ["OrderPlaced", "OrderPaid"], mine
    finally:
        await bus.stop()
        worker.stop()
