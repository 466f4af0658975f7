"""The payment agent: authorizes, voids and refunds through the ``PaymentGateway`` port.

Keyed by order_id. The order's payment record makes every command idempotent: a repeated
authorize answers from the record without calling the gateway; a void or refund of a payment
that was never authorized calls nothing and leaves a tombstone. The gateway itself is asked
to be idempotent per order too, which covers a crash between its answer and our record.
"""

from __future__ import annotations

from typing import Any

from eatcloud.agents.wiring import Wiring
from eatcloud.domain.payment import Action, Payment, PaymentStatus, plan, reply_for, undone
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder

COMMANDS: Decoder[Any] = Decoder(r.PaymentCommand)


def register(wiring: Wiring) -> None:
    app, payments, gateway = wiring.app, wiring.tables.payments, wiring.gateway

    async def handle(event: Any, command: Any) -> None:
        current = payments.get(command.order_id)
        action = plan(current, command.type)
        if action is Action.AUTHORIZE:
            answer = await gateway.authorize(command.order_id, command.customer_id, command.amount)
            after = Payment(
                status=PaymentStatus.AUTHORIZED if answer.approved else PaymentStatus.DECLINED,
                amount=command.amount,
                authorization_id=answer.authorization_id,
                reason=answer.reason,
            )
        elif action is Action.REPLAY:
            assert current is not None
            after = current
        else:
            if action is Action.VOID:
                await gateway.void(command.order_id)
            elif action is Action.REFUND:
                await gateway.refund(command.order_id)
            after = undone(current, command.type)
        if after is not current:
            payments.put(command.order_id, after)
        await wiring.send(reply_for(command, after), event)

    @app.agent(wiring.topics[t.PAYMENT_COMMANDS], name="payment")  # type: ignore[untyped-decorator]
    async def payment_agent(stream: Any) -> None:
        """Authorizes, voids and refunds payments (the saga's payment steps)."""
        async for event in stream.events():
            command = await wiring.decode(event, COMMANDS)
            if command is not None:
                await wiring.guarded(handle, event, command)
