"""The read models (CQRS): written by the projections from events, read by the API.

Writes are batched: one transaction per batch of events, a handful of statements whatever
the batch size, and ``processed_events`` in the same transaction, so a redelivered or replayed
event changes nothing, even when both copies arrive in one batch.

Order-tolerant: an order's row keeps the lifecycle stage of the newest event it applied
(``version``: placed 1, paid 2, accepted 3, ended 4; the saga never moves an order back), and
an older event that comes late (a redelivery, a rebuild racing the live projection) adds to its
history without moving its status back. The row may be created by any of its events;
``placed`` says whether the OrderPlaced, which carries the order's lines and amounts, has been
applied (the API reads only placed rows). A sale is added to ``store_sales`` once, when its row
is both placed and completed, whichever came first (``counted``).

Every function takes ``into``: the suffix of the tables it writes, empty for the live read
models, ``_next`` for the shadow tables ``projections rebuild`` fills and swaps in
(``eatcloud.postgres.rebuild``). Each set of tables has its own ``processed_events`` consumer.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import Any

from eatcloud.streams import records as r

ORDER_VIEW = "order_view"
STOCK_VIEW = "stock_view"
POINTS_VIEW = "points_view"
# The advisory lock that fences the live projections while a rebuild swaps its tables in:
# every live batch takes it shared, the swap exclusively (``eatcloud.postgres.rebuild``).
FENCE = 0x0EA7F00D
# The advisory lock under which a live order batch numbers its timeline rows, so that numbers
# commit in order (``order_timeline.seq``, what a live-update client resumes from).
TIMELINE = 0x0EA7714E
# Who hears of a changed order (``NOTIFY``, payload ``<store_id> <order_id>``): the API's
# live updates and long-polls (``eatcloud.api.live``).
ORDER_CHANGES = "eatcloud_order_changes"

STATUS = {
    "OrderPlaced": "PENDING",
    "OrderPaid": "PAID",
    "OrderAccepted": "ACCEPTED",
    "OrderCompleted": "COMPLETED",
    "OrderCancelled": "CANCELLED",
    "OrderRejected": "REJECTED",
}
# The lifecycle stage each event moves an order to (its ``version``).
STAGE = {
    "OrderPlaced": 1,
    "OrderPaid": 2,
    "OrderAccepted": 3,
    "OrderCompleted": 4,
    "OrderCancelled": 4,
    "OrderRejected": 4,
}


def _when(record: r.Record) -> dt.datetime:
    return dt.datetime.fromtimestamp(record.occurred_at, tz=dt.UTC)


async def _fresh(conn: Any, consumer: str, records: Sequence[Any]) -> list[Any]:
    """The records not applied before, each once, in their order; records them as applied."""
    first: dict[str, Any] = {}
    for record in records:
        first.setdefault(record.event_id, record)
    unique = list(first.values())
    new = await conn.fetch(
        """INSERT INTO processed_events (consumer, event_id)
           SELECT $1, unnest($2::text[]) ON CONFLICT DO NOTHING RETURNING event_id""",
        consumer,
        [record.event_id for record in unique],
    )
    ids = {row["event_id"] for row in new}
    return [record for record in unique if record.event_id in ids]


def _newer(version: int | None, than: int | None) -> bool:
    return version is None or than is None or version > than


async def _fenced(conn: Any, into: str) -> None:
    """A live batch waits while a rebuild swaps the tables (and then writes the new ones)."""
    if not into:
        await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", FENCE)


def _order_row(e: r.OrderEvent) -> tuple[Any, ...]:
    kind: str = e.type  # type: ignore[attr-defined]  # every concrete event has its literal
    details = (
        (e.total_amount, e.points, [ln.model_dump() for ln in e.lines])
        if isinstance(e, r.OrderPlaced)
        else (0, 0, [])  # until its OrderPlaced comes (``placed`` false)
    )
    return (
        e.order_id,
        e.customer_id,
        e.store_id,
        STATUS[kind],
        getattr(e, "reason", ""),
        *details,
        _when(e),
        STAGE[kind],
        isinstance(e, r.OrderPlaced),
    )


async def apply_order_events(
    conn: Any, records: Sequence[r.OrderEvent], into: str = ""
) -> list[r.OrderEvent]:
    """Project a batch into order_view, order_timeline and store_sales; returns the new ones."""
    async with conn.transaction():
        await _fenced(conn, into)
        if not into:  # numbers commit in order; a rebuild renumbers its table at the swap
            # First, before any row lock: two batches that both locked rows and then waited
            # for this lock could deadlock (two workers during a rebalance).
            await conn.execute("SELECT pg_advisory_xact_lock($1)", TIMELINE)
        fresh = await _fresh(conn, ORDER_VIEW + into, records)
        await conn.executemany(
            f"""INSERT INTO order_view{into} AS v (order_id, customer_id, store_id, status, reason,
                   total, points, lines, placed_at, updated_at, events, version, placed)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9, 1, $10, $11)
               ON CONFLICT (order_id) DO UPDATE SET
                   events = v.events + 1,
                   status = CASE WHEN EXCLUDED.version > v.version
                                 THEN EXCLUDED.status ELSE v.status END,
                   reason = CASE WHEN EXCLUDED.version > v.version
                                 THEN EXCLUDED.reason ELSE v.reason END,
                   updated_at = CASE WHEN EXCLUDED.version > v.version
                                     THEN EXCLUDED.updated_at ELSE v.updated_at END,
                   version = GREATEST(v.version, EXCLUDED.version),
                   total = CASE WHEN v.placed THEN v.total ELSE EXCLUDED.total END,
                   points = CASE WHEN v.placed THEN v.points ELSE EXCLUDED.points END,
                   lines = CASE WHEN v.placed THEN v.lines ELSE EXCLUDED.lines END,
                   placed_at = CASE WHEN v.placed THEN v.placed_at ELSE EXCLUDED.placed_at END,
                   placed = v.placed OR EXCLUDED.placed""",
            [_order_row(e) for e in fresh],
        )
        await conn.executemany(
            f"""INSERT INTO order_timeline{into} (order_id, event_id, type, status, reason,
                   occurred_at)
               VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING""",
            [
                (e.order_id, e.event_id, e.type, STATUS[e.type], getattr(e, "reason", ""), _when(e))
                for e in fresh
            ],
        )
        # A sale counts once its order is both placed and completed, in either order.
        sold = await conn.fetch(
            f"""UPDATE order_view{into} SET counted = true
               WHERE order_id = ANY($1::text[]) AND status = 'COMPLETED' AND placed
                 AND NOT counted
               RETURNING store_id, (updated_at AT TIME ZONE 'UTC')::date AS day,
                   total - points AS revenue""",
            list({e.order_id for e in fresh}),
        )
        orders: Counter[tuple[str, dt.date]] = Counter()
        revenue: Counter[tuple[str, dt.date]] = Counter()
        for row in sold:
            orders[(row["store_id"], row["day"])] += 1
            revenue[(row["store_id"], row["day"])] += row["revenue"]
        await conn.executemany(
            f"""INSERT INTO store_sales{into} (store_id, day, orders, revenue)
               VALUES ($1, $2, $3, $4)
               ON CONFLICT (store_id, day) DO UPDATE
               SET orders = store_sales{into}.orders + EXCLUDED.orders,
                   revenue = store_sales{into}.revenue + EXCLUDED.revenue""",
            [(store, day, n, revenue[(store, day)]) for (store, day), n in orders.items()],
        )
        if not into and fresh:  # delivered when (and if) the batch commits
            await conn.execute(
                "SELECT pg_notify($1, changed) FROM unnest($2::text[]) AS changed",
                ORDER_CHANGES,
                sorted({f"{e.store_id} {e.order_id}" for e in fresh}),
            )
    return fresh


async def apply_stock_events(
    conn: Any, records: Sequence[r.StockLevelChanged | r.StockLevelsChanged], into: str = ""
) -> list[r.StockLevelChanged]:
    """Project a batch into stock_view (the ledger line after each event); the lines that
    were new (one per line, ``records.stock_lines``, deduplicated by their ids)."""
    async with conn.transaction():
        await _fenced(conn, into)
        fresh = await _fresh(conn, STOCK_VIEW + into, r.stock_lines(records))
        last: dict[tuple[str, str], r.StockLevelChanged] = {}
        for event in fresh:
            if event.change is r.StockChange.INSUFFICIENT:
                continue
            shown = last.get((event.store_id, event.menu_id))
            if shown is None or _newer(event.version, shown.version):
                last[(event.store_id, event.menu_id)] = event
        # A row moves only to a newer line of its item (by the ledger's version; lines without
        # one, written before versions, are taken in the order they come).
        await conn.executemany(
            f"""INSERT INTO stock_view{into} AS v (store_id, menu_id, on_hand, reserved, sold,
                   unlimited, updated_at, version)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
               ON CONFLICT (store_id, menu_id) DO UPDATE SET on_hand = EXCLUDED.on_hand,
                   reserved = EXCLUDED.reserved, sold = EXCLUDED.sold,
                   unlimited = EXCLUDED.unlimited, updated_at = EXCLUDED.updated_at,
                   version = EXCLUDED.version
               WHERE v.version IS NULL OR EXCLUDED.version IS NULL
                  OR EXCLUDED.version > v.version""",
            [
                (
                    e.store_id,
                    e.menu_id,
                    e.on_hand,
                    e.reserved,
                    e.sold,
                    e.unlimited,
                    _when(e),
                    e.version,
                )
                for e in last.values()
            ],
        )
    return fresh


def _history_row(e: r.PointsChanged) -> tuple[Any, ...]:
    return (e.event_id, e.customer_id, e.change.value, e.delta, e.held_delta, e.balance,
            e.held, e.version, e.order_id, e.reason, _when(e))  # fmt: skip


async def apply_points_events(
    conn: Any, records: Sequence[r.PointsChanged], into: str = ""
) -> list[r.PointsChanged]:
    """Project a batch into points_history (each change once) and points_view (the account
    after the newest change, by the account's version); returns the new ones."""
    async with conn.transaction():
        await _fenced(conn, into)
        fresh = await _fresh(conn, POINTS_VIEW + into, records)
        await conn.executemany(
            f"""INSERT INTO points_history{into} (event_id, customer_id, change, delta,
                   held_delta, balance, held, version, order_id, reason, occurred_at)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) ON CONFLICT DO NOTHING""",
            [_history_row(e) for e in fresh],
        )
        newest: dict[str, r.PointsChanged] = {}
        for event in fresh:
            shown = newest.get(event.customer_id)
            if shown is None or event.version > shown.version:
                newest[event.customer_id] = event
        await conn.executemany(
            f"""INSERT INTO points_view{into} AS v (customer_id, balance, held, version,
                   updated_at)
               VALUES ($1, $2, $3, $4, $5)
               ON CONFLICT (customer_id) DO UPDATE SET balance = EXCLUDED.balance,
                   held = EXCLUDED.held, version = EXCLUDED.version,
                   updated_at = EXCLUDED.updated_at
               WHERE EXCLUDED.version > v.version""",
            [(e.customer_id, e.balance, e.held, e.version, _when(e)) for e in newest.values()],
        )
    return fresh


async def points_wallet(
    conn: Any, customer_id: str, limit: int = 50, offset: int = 0
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """The customer's account (None before any change) and its changes, newest first."""
    account = await conn.fetchrow(
        "SELECT balance, held, version, updated_at FROM points_view WHERE customer_id = $1",
        customer_id,
    )
    rows = await conn.fetch(
        """SELECT change, delta, held_delta, balance, held, order_id, reason, occurred_at
           FROM points_history WHERE customer_id = $1
           ORDER BY version DESC, event_id LIMIT $2 OFFSET $3""",
        customer_id,
        limit,
        offset,
    )
    return (None if account is None else dict(account)), [dict(row) for row in rows]


async def stock_levels(conn: Any, store_id: str) -> list[dict[str, Any]]:
    """Every menu of the store with its stock line from ``stock_view`` (None figures for a
    menu the stock projection has not seen yet), by name."""
    rows = await conn.fetch(
        """SELECT m.id::text AS menu_id, m.name, m.available, s.on_hand, s.reserved, s.sold,
               coalesce(s.unlimited, m.unlimited) AS unlimited, s.updated_at
           FROM menus m LEFT JOIN stock_view s
             ON s.store_id = m.store_id::text AND s.menu_id = m.id::text
           WHERE m.store_id = $1::uuid AND m.deleted_at IS NULL
           ORDER BY m.name, m.id""",
        store_id,
    )
    return [dict(row) for row in rows]


async def sales(conn: Any, store_id: str, first: dt.date, last: dt.date) -> dict[str, Any]:
    """The store's completed orders from ``first`` to ``last`` (UTC days, both included):
    per day from ``store_sales`` (orders, and revenue: what customers paid, points not
    included), per menu from the completed orders' lines (units, and gross sales: units at
    the price the order was taken at, before points)."""
    days = await conn.fetch(
        """SELECT day, orders, revenue FROM store_sales
           WHERE store_id = $1 AND day BETWEEN $2 AND $3 ORDER BY day""",
        store_id,
        first,
        last,
    )
    menus = await conn.fetch(
        """SELECT line->>'menu_id' AS menu_id, coalesce(m.name, '') AS name,
               sum((line->>'quantity')::int) AS units,
               sum((line->>'quantity')::bigint * (line->>'unit_price')::bigint) AS gross
           FROM order_view o CROSS JOIN jsonb_array_elements(o.lines) AS line
           LEFT JOIN menus m ON m.id::text = line->>'menu_id'
           WHERE o.store_id = $1 AND o.status = 'COMPLETED' AND o.counted
             AND (o.updated_at AT TIME ZONE 'UTC')::date BETWEEN $2 AND $3
           GROUP BY 1, 2 ORDER BY gross DESC, 1""",
        store_id,
        first,
        last,
    )
    return {"days": [dict(row) for row in days], "menus": [dict(row) for row in menus]}


async def order_view(conn: Any, order_id: str) -> dict[str, Any] | None:
    """The order's row once its OrderPlaced is applied (None before)."""
    row = await conn.fetchrow("SELECT * FROM order_view WHERE order_id = $1 AND placed", order_id)
    return None if row is None else dict(row)


async def timeline(conn: Any, order_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        """SELECT type, status, reason, occurred_at FROM order_timeline WHERE order_id = $1
           ORDER BY occurred_at, event_id""",
        order_id,
    )
    return [dict(row) for row in rows]


async def timeline_since(
    conn: Any,
    *,
    after: int,
    order_id: str | None = None,
    store_id: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The timeline rows numbered above ``after``, of one order or of one store's orders, in
    number order (what a live-update stream sends next)."""
    rows = await conn.fetch(
        """SELECT t.seq, t.order_id, t.type, t.status, t.reason, t.occurred_at
           FROM order_timeline t JOIN order_view v ON v.order_id = t.order_id
           WHERE t.seq > $1 AND ($2::text IS NULL OR t.order_id = $2)
             AND ($3::text IS NULL OR v.store_id = $3)
           ORDER BY t.seq LIMIT $4""",
        after,
        order_id,
        store_id,
        limit,
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
           WHERE placed AND ($1::text IS NULL OR customer_id = $1)
             AND ($2::text IS NULL OR store_id = $2) AND ($3::text IS NULL OR status = $3)
           ORDER BY placed_at DESC, order_id LIMIT $4 OFFSET $5""",
        customer_id,
        store_id,
        status,
        limit,
        offset,
    )
    return [dict(row) for row in rows]
