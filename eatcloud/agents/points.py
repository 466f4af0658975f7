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
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder
from eatcloud.tables import PointsEntry

log = logging.getLogger("eatcloud.agents.points")

COMMANDS: Decoder[Any] = Decoder(r.PointsCommand)


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
        outcome = points.apply(entry.account, hold, command)
        if outcome.hold is not None or outcome.account is not entry.account:
            changed = entry.model_copy(update={"account": outcome.account})
            accounts.save(command.customer_id, changed, command.order_id, outcome.hold)
        await wiring.send(points.reply_for(command, outcome.hold or hold), event)

    @app.agent(wiring.topics[t.POINTS_COMMANDS], name="points")  # type: ignore[untyped-decorator]
    async def points_agent(stream: Any) -> None:
        """Reserves, deducts and releases customers' points."""
        async for event in stream.events():
            command = await wiring.decode(event, COMMANDS)
            if command is not None:
                await wiring.guarded(handle, event, command)
