"""The points agent: one customer's points per key; one hold record per order.

Reserve, deduct and release are idempotent per order through the hold record; a release
touches only that order's hold. ``AdjustPoints`` grants or removes points outside orders and
is recognised by its event_id when delivered twice.
"""

from __future__ import annotations

import logging
from typing import Any

from eatcloud.agents.wiring import Wiring
from eatcloud.domain import points
from eatcloud.domain.points import Hold, HoldStatus
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder
from eatcloud.tables import PointsEntry

log = logging.getLogger("eatcloud.agents.points")

COMMANDS: Decoder[Any] = Decoder(r.PointsCommand)


def reply_for(command: Any, hold: Hold | None) -> r.Reply:
    ids: dict[str, Any] = {
        "event_id": r.derived_id(command.event_id, "reply"),
        "order_id": command.order_id,
    }
    if isinstance(command, r.ReservePoints):
        if hold is None or hold.status is HoldStatus.REJECTED:
            return r.PointsRejected(**ids, reason=hold.reason if hold else "insufficient_points")
        if hold.status is HoldStatus.RELEASED and hold.amount == 0:  # a tombstone
            return r.PointsRejected(**ids, reason="cancelled_before_reserved")
        return r.PointsReserved(**ids)
    if isinstance(command, r.DeductPoints):
        return r.PointsDeducted(**ids)
    return r.PointsReleased(**ids)


def register(wiring: Wiring) -> None:
    app, accounts = wiring.app, wiring.tables.points

    def adjust(command: r.AdjustPoints, entry: PointsEntry) -> None:
        if entry.seen(command.event_id):
            return
        adjusted = points.adjust(entry.account, command.delta)
        if adjusted is None:
            log.warning("customer %s: points adjust refused", command.customer_id)
            adjusted = entry.account
        remembered = entry.model_copy(
            update={"account": adjusted, "recent": entry.remembering(command.event_id)}
        )
        accounts.save(command.customer_id, remembered)

    async def handle(event: Any, command: Any) -> None:
        entry = accounts.load(command.customer_id)
        if isinstance(command, r.AdjustPoints):
            adjust(command, entry)
            return
        hold = accounts.record(command.customer_id, entry, command.order_id)
        if isinstance(command, r.ReservePoints):
            outcome = points.reserve(entry.account, hold, command.amount)
        elif isinstance(command, r.DeductPoints):
            outcome = points.deduct(entry.account, hold)
        else:
            outcome = points.release(entry.account, hold)
        if outcome.hold is not None or outcome.account is not entry.account:
            changed = entry.model_copy(update={"account": outcome.account})
            accounts.save(command.customer_id, changed, command.order_id, outcome.hold)
        await wiring.send(reply_for(command, outcome.hold or hold), event)

    @app.agent(wiring.topics[t.POINTS_COMMANDS], name="points")  # type: ignore[untyped-decorator]
    async def points_agent(stream: Any) -> None:
        async for event in stream.events():
            command = await wiring.decode(event, COMMANDS)
            if command is not None:
                await wiring.guarded(handle, event, command)
