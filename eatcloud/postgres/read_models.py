"""The read models (CQRS): written by the projections from events, read by the API.

Writes are batched: one transaction per batch of events, a handful of statements whatever
the batch size, and ``processed_events`` in the same transaction, so a redelivered or replayed
event changes nothing. Events of one order (one store) arrive in order within a batch, since
they come from one partition.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from eatcloud.streams import records as r

ORDER_VIEW = "order_view"
STOCK_VIEW = "stock_view"

STATUS = {
    "OrderPlaced": "PENDING",
    "OrderPaid": "PAID",
    "OrderAccepted": "ACCEPTED",
    "OrderCompleted": "COMPLETED",
    "OrderCancelled": "CANCELLED",
    "OrderRejected": "REJECTED",
}


def _when(record: r.Record) -> dt.datetime:
    return dt.datetime.fromtimestamp(record.occurred_at, tz=dt.UTC)


async def _fresh(conn: Any, consumer: str, records: list[Any]) -> list[Any]:
    """The records not applied before, in their order; records them as applied."""
    new = await conn.fetch(
        """INSERT INTO processed_events (consumer, event_id)
           SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING RETURNING event_id""",
        consumer,
        [record.event_id for record in records],
    )
    ids = {row["event_id"] for row in new}
    return [record for record in records if record.event_id in ids]


async def apply_order_events(conn: Any, records: list[r.OrderEvent]) -> list[r.OrderEvent]:
    """Project a batch into order_view, order_timeline and store_sales; returns the new ones."""
    async with conn.transaction():
        fresh = await _fresh(conn, ORDER_VIEW, records)
        placed = [e for e in fresh if isinstance(e, r.OrderPlaced)]
        await conn.executemany(
            """INSERT INTO order_view (order_id, customer_id, store_id, status, total, points,
                   lines, placed_at, updated_at)
               VALUES ($1, $2, $3, 'PENDING', $4, $5, $6, $7, $7)
               ON CONFLICT (order_id) DO NOTHING""",
            [
                (
                    e.order_id,
                    e.customer_id,
                    e.store_id,
                    e.total_amount,
                    e.points,
                    [ln.model_dump() for ln in e.lines],
                    _when(e),
                )
                for e in placed
            ],
        )
        await conn.executemany(
            """UPDATE order_view SET status = $2, reason = $3, updated_at = $4,
                   events = events + 1
               WHERE order_id = $1""",
            [(e.order_id, STATUS[e.type], getattr(e, "reason", ""), _when(e)) for e in fresh],
        )
        await conn.executemany(
            """INSERT INTO order_timeline (order_id, event_id, type, status, reason, occurred_at)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
            [
                (e.order_id, e.event_id, e.type, STATUS[e.type], getattr(e, "reason", ""), _when(e))
                for e in fresh
            ],
        )
        completed = [e for e in fresh if isinstance(e, r.OrderCompleted)]
        await conn.executemany(
            """INSERT INTO store_sales (store_id, day, orders, revenue)
               SELECT store_id, $2, 1, total - points FROM order_view WHERE order_id = $1
               ON CONFLICT (store_id, day) DO UPDATE
               SET orders = store_sales.orders + 1,
                   revenue = store_sales.revenue + EXCLUDED.revenue""",
            [(e.order_id, _when(e).date()) for e in completed],
        )
    return fresh


async def apply_stock_events(
    conn: Any, records: Sequence[r.StockLevelChanged | r.StockLevelsChanged]
) -> list[r.StockLevelChanged]:
    """Project a batch into stock_view (the ledger line after each event); the lines that
    were new (one per line, ``records.stock_lines``, deduplicated by their ids)."""
    async with conn.transaction():
        fresh = await _fresh(conn, STOCK_VIEW, r.stock_lines(records))
        last: dict[tuple[str, str], r.StockLevelChanged] = {}
        for event in fresh:
            if event.change is not r.StockChange.INSUFFICIENT:
                last[(event.store_id, event.menu_id)] = event
        await conn.executemany(
            """INSERT INTO stock_view (store_id, menu_id, on_hand, reserved, sold, unlimited,
                   updated_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7)
               ON CONFLICT (store_id, menu_id) DO UPDATE SET on_hand = EXCLUDED.on_hand,
                   reserved = EXCLUDED.reserved, sold = EXCLUDED.sold,
                   unlimited = EXCLUDED.unlimited, updated_at = EXCLUDED.updated_at""",
            [
                (e.store_id, e.menu_id, e.on_hand, e.reserved, e.sold, e.unlimited, _when(e))
                for e in last.values()
            ],
        )
    return fresh


async def order_view(conn: Any, order_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow("SELECT * FROM order_view WHERE order_id = $1", order_id)
    return None if row is None else dict(row)


async def timeline(conn: Any, order_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT type, status, reason, occurred_at FROM order_timeline WHERE order_id = $1
           ORDER BY occurred_at, event_id""",
        order_id,
    )
    return [dict(row) for row in rows]


async def orders_where(
    conn: Any,
    *,
    customer_id: str | None = None,
    store_id: str | None = None,
    status: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT * FROM order_view
           WHERE ($1::text IS NULL OR customer_id = $1) AND ($2::text IS NULL OR store_id = $2)
             AND ($3::text IS NULL OR status = $3)
           ORDER BY placed_at DESC, order_id LIMIT $4 OFFSET $5""",
        customer_id,
        store_id,
        status,
        limit,
        offset,
    )
    return [dict(row) for row in rows]
