"""The points handler: one customer's points per key; one hold record per order.

Reserve, deduct, release and earn are idempotent per order through the hold record; a
release touches only that order's hold. ``AdjustPoints`` grants or removes points outside
orders and is recognised by its event_id when delivered twice. ``ForgetPoints``, sent by the
saga when it deletes a finished order after its retention, deletes the order's hold.

Every change of a customer's points is told on ``points-events`` (``PointsChanged``: what
changed and the whole account after it, with the account's version), which the points
projection turns into the customer's wallet (``GET /me/points``). The event is sent in the same
unit as the table write; its id is derived from the command's, so a redelivery is a duplicate.
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


def _told(
    ctx: Context,
    command: Any,
    entry: PointsEntry,
    change: r.PointsChange,
    before: points.PointsAccount,
    reason: str = "",
) -> PointsEntry:
    """``entry`` one version on, and its ``PointsChanged`` sent."""
    after = entry.account
    entry = entry.model_copy(update={"version": entry.version + 1})
    ctx.send(
        r.PointsChanged(
            event_id=r.derived_id(command.event_id, "points"),
            occurred_at=command.occurred_at,
            customer_id=command.customer_id,
            change=change,
            delta=after.balance - before.balance,
            held_delta=after.held - before.held,
            balance=after.balance,
            held=after.held,
            version=entry.version,
            order_id=getattr(command, "order_id", ""),
            reason=reason[:200],
        )
    )
    return entry


def _adjust(ctx: Context, command: r.AdjustPoints, entry: PointsEntry) -> PointsEntry:
    """An admin's grant or take-back applied (or refused: a take-back may not leave less
    than is held), and told."""
    before = entry.account
    adjusted = points.adjust(before, command.delta)
    if adjusted is None:
        log.warning("customer %s: points adjust refused", command.customer_id)
        reason = f"{command.reason} (refused: {command.delta} would leave less than is held)"
        return _told(ctx, command, entry, r.PointsChange.REFUSED, before, reason)
    if command.delta == 0:
        return entry
    change = r.PointsChange.GRANTED if command.delta > 0 else r.PointsChange.TAKEN
    entry = entry.model_copy(update={"account": adjusted})
    return _told(ctx, command, entry, change, before, command.reason)


async def handle(pts: Points, ctx: Context, command: Any) -> None:
    customer = command.customer_id
    entry = pts.accounts.load(ctx, customer)
    if isinstance(command, r.AdjustPoints):
        if not pts.accounts.adjusted(ctx, customer, entry, command.event_id):
            pts.accounts.save_adjusted(
                ctx, customer, _adjust(ctx, command, entry), command.event_id
            )
        return
    if isinstance(command, r.ForgetPoints):  # the saga is gone: so goes its hold
        pts.accounts.forget(ctx, customer, command.order_id)
        return
    hold = pts.accounts.record(ctx, customer, command.order_id)
    if isinstance(command, r.EarnPoints):
        outcome = points.earn(entry.account, hold, command.amount)
    else:
        outcome = points.apply(entry.account, hold, command)
    if outcome.hold is not None or outcome.account is not entry.account:
        changed = entry.model_copy(update={"account": outcome.account})
        if (change := points.change(command, entry.account, outcome)) is not None:
            changed = _told(ctx, command, changed, change, entry.account)
        pts.accounts.save(ctx, customer, changed, command.order_id, outcome.hold)
    if not isinstance(command, r.EarnPoints):  # the saga has ended: nobody waits for a reply
        ctx.send(points.reply_for(command, outcome.hold or hold))


def handler(pts: Points) -> Handler[Any]:
    return Handler(
        name="points",
        topics=(t.POINTS_COMMANDS,),
        decoder=COMMANDS,
        handle=functools.partial(handle, pts),
        key=lambda command: command.customer_id,
        help="Reserves, deducts, releases and credits customers' points; tells points-events.",
    )
