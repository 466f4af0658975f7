"""The payment handler: authorizes, voids and refunds through the ``PaymentGateway`` port.

Keyed by order_id. The order's payment record makes every command idempotent: a repeated
authorize answers from the record without calling the gateway; a void or refund of a payment
that was never authorized calls nothing and leaves a tombstone. The gateway itself is asked
to be idempotent per order too, which covers a crash between its answer and our record.
A ``ForgetPayment``, sent by the saga when it deletes a finished order after its retention,
deletes the record, so the table does not grow with every order ever paid.
The gateway is slow I/O: the runtime runs the orders of a batch concurrently
(``concurrent=True``), each order's commands in order.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from eatcloud.domain.payment import Action, Payment, PaymentStatus, plan, reply_for, undone
from eatcloud.payments.gateway import PaymentGateway
from eatcloud.runtime.adapter import Context, Handler
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder
from eatcloud.tables import RecordTable

COMMANDS: Decoder[Any] = Decoder(r.PaymentCommand)


@dataclass(frozen=True)
class Payments:
    payments: RecordTable[Payment]
    gateway: PaymentGateway


async def handle(pay: Payments, ctx: Context, command: Any) -> None:
    current = ctx.get(pay.payments, command.order_id)
    if isinstance(command, r.ForgetPayment):  # the saga is gone: so goes its record
        if current is not None:
            ctx.put(pay.payments, command.order_id, None)
        return
    action = plan(current, command.type)
    if action is Action.AUTHORIZE:
        answer = await pay.gateway.authorize(command.order_id, command.customer_id, command.amount)
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
            await pay.gateway.void(command.order_id)
        elif action is Action.REFUND:
            await pay.gateway.refund(command.order_id)
        after = undone(current, command.type)
    if after is not current:
        ctx.put(pay.payments, command.order_id, after)
    ctx.send(reply_for(command, after))


def handler(pay: Payments) -> Handler[Any]:
    return Handler(
        name="payment",
        topics=(t.PAYMENT_COMMANDS,),
        decoder=COMMANDS,
        handle=functools.partial(handle, pay),
        key=lambda command: command.order_id,
        concurrent=True,
        help="Authorizes, voids and refunds payments (the saga's payment steps).",
    )
