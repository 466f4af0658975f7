"""``eatcloud stock adjust``: an operator's stock change, queued like a store manager's."""

from __future__ import annotations

from eatcloud.observability.context import trace_headers
from eatcloud.postgres import create_pool
from eatcloud.postgres.catalogue import adjust_stock
from eatcloud.settings import Settings
from eatcloud.streams import records as r


async def adjust(
    settings: Settings,
    store_id: str,
    menu_id: str,
    delta: int,
    unlimited: bool | None,
    reason: str,
) -> r.AdjustStock:
    """Check the menu and queue the change in the outbox; the stock agent applies it."""
    pool = await create_pool(settings.postgres, max_size=1)
    try:
        return await adjust_stock(
            pool,
            store_id,
            menu_id,
            delta=delta,
            unlimited=unlimited,
            reason=reason,
            headers=trace_headers(),
        )
    finally:
        await pool.close()
