"""``eatcloud stock adjust``: an operator's stock change, queued like a store manager's."""

from __future__ import annotations

from eatcloud.observability.context import trace_headers
from eatcloud.postgres.catalogue import adjust_stock
from eatcloud.resources import Services
from eatcloud.streams import records as r


async def adjust(
    services: Services,
    store_id: str,
    menu_id: str,
    delta: int,
    unlimited: bool | None,
    reason: str,
) -> r.AdjustStock:
    """Check the menu and queue the change in the outbox; the orchestrator applies it."""
    return await adjust_stock(
        await services.pool(),
        store_id,
        menu_id,
        delta=delta,
        unlimited=unlimited,
        reason=reason,
        headers=trace_headers(),
    )
