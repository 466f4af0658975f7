"""The points handler: one customer's points per key; one hold record per order.

Reserve, deduct and release are idempotent per order through the hold record; a release
touches only that order's hold. ``AdjustPoints`` grants or removes points outside orders and
is recognised by its event_id when delivered twice. ``ForgetPoints``, sent by the saga when
it deletes a finished order after its retention, deletes the order's hold.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

from eatcloud.domain import points
from eatcloud.domain.points import Hold
from eatcloud.runtime.adapter import Context, Handler
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder
from eatcloud.tables import OwnedRecords, PointsEntry

log = logging.getLogger("eatcloud.agents.points")

COMMANDS: Decoder[Any] = Decoder(r.PointsCommand)


@dataclass(frozen=True)
class Points:
    accounts: OwnedRecords[PointsEntry, Hold]


async def handle(pts: Points, ctx: Context, command: Any) -> None:
    customer = command.customer_id
    entry = pts.accounts.load(ctx, customer)
    if isinstance(command, r.AdjustPoints):
        if pts.accounts.adjusted(ctx, customer, entry, command.event_id):
            return
        adjusted = points.adjust(entry.account, command.delta)
        if adjusted is None:
            log.warning("customer %s: points adjust refused", customer)
            adjusted = entry.account
        changed = entry.model_copy(update={"account": adjusted})
        pts.accounts.save_adjusted(ctx, customer, changed, command.event_id)
        return
    if isinstance(command, r.ForgetPoints):  # the saga is gone: so goes its hold
        pts.accounts.forget(ctx, customer, command.order_id)
        return
    hold = pts.accounts.record(ctx, customer, command.order_id)
    outcome = points.apply(entry.account, hold, command)
    if outcome.hold is not None or outcome.account is not entry.account:
        changed = entry.model_copy(update={"account": outcome.account})
        pts.accounts.save(ctx, customer, changed, command.order_id, outcome.hold)
    ctx.send(points.reply_for(command, outcome.hold or hold))


def handler(pts: Points) -> Handler[Any]:
    return Handler(
        name="points",
        topics=(t.POINTS_COMMANDS,),
        decoder=COMMANDS,
        handle=functools.partial(handle, pts),
        key=lambda command: command.customer_id,
        help="Reserves, deducts and releases customers' points.",
    )
