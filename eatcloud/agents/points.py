"""The points agent: one customer's points per key; one hold record per order.

Reserve, deduct and release are idempotent per order through the hold record; a release
touches only that order's hold. ``AdjustPoints`` grants or removes points outside orders.
"""

from __future__ import annotations

import logging
from typing import Any

from eatcloud.agents.wiring import Wiring
from eatcloud.domain import points
from eatcloud.domain.points import Hold, HoldStatus, PointsAccount
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder
from eatcloud.tables import scoped

log = logging.getLogger("eatcloud.agents.points")

COMMANDS: Decoder[Any] = Decoder(r.PointsCommand)


def reply_for(command: Any, hold: Hold | None) -> r.Reply:
    ids = {"event_id": r.derived_id(command.event_id, "reply"), "order_id": command.order_id}
    if isinstance(command, r.ReservePoints):
        if hold is None or hold.status is HoldStatus.REJECTED:
            return r.PointsRejected(**ids, reason=hold.reason if hold else "insufficient_points")
        return r.PointsReserved(**ids)
    if isinstance(command, r.DeductPoints):
        return r.PointsDeducted(**ids)
    return r.PointsReleased(**ids)


def register(wiring: Wiring) -> None:
    app, accounts, holds = wiring.app, wiring.tables.points, wiring.tables.holds

    async def handle(event: Any, command: Any) -> None:
        account = accounts.get(command.customer_id) or PointsAccount()
        if isinstance(command, r.AdjustPoints):
            adjusted = points.adjust(account, command.delta)
            if adjusted is None:
                log.warning("customer %s: points adjust refused", command.customer_id)
            else:
                accounts.put(command.customer_id, adjusted)
            return
        key = scoped(command.customer_id, command.order_id)
        hold = holds.get(key)
        if isinstance(command, r.ReservePoints):
            outcome = points.reserve(account, hold, command.amount)
        elif isinstance(command, r.DeductPoints):
            outcome = points.deduct(account, hold)
        else:
            outcome = points.release(account, hold)
        if outcome.account is not account:
            accounts.put(command.customer_id, outcome.account)
        if outcome.hold is not None:
            holds.put(key, outcome.hold)
        await wiring.send(reply_for(command, outcome.hold or hold), event)

    @app.agent(wiring.topics[t.POINTS_COMMANDS], name="points")  # type: ignore[untyped-decorator]
    async def points_agent(stream: Any) -> None:
        async for event in stream.events():
            command = await wiring.decode(event, COMMANDS)
            if command is not None:
                await wiring.guarded(handle, event, command)
