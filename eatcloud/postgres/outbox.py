"""The transactional outbox: commands for the stream side, written with the state change.

The API never produces to Kafka. It inserts the record's exact bytes here, in the same
transaction as the row that caused it (an order, a stock adjustment), and a NOTIFY wakes the
relay when that transaction commits. If the transaction rolls back, the command never existed.
"""

from __future__ import annotations

from typing import Any

from eatcloud.streams import records as r
from eatcloud.streams.codec import encode
from eatcloud.streams.topics import route

CHANNEL = "eatcloud_outbox"


# The outbox columns, for statements that insert a row together with other work.
COLUMNS = "(aggregate_type, aggregate_id, topic, key, type, payload, headers)"


def row(record: r.Record, aggregate_type: str, headers: dict[str, str]) -> tuple[Any, ...]:
    """The values of ``record``'s outbox row, in ``COLUMNS`` order."""
    topic, key = route(record)
    kind = record.type  # type: ignore[attr-defined]  # every concrete record has its literal type
    # The aggregate is the order for an order's commands (their Kafka key is its store).
    aggregate_id = getattr(record, "order_id", None) or key
    return (
        aggregate_type,
        aggregate_id,
        topic,
        key,
        kind,
        encode(record),
        {**headers, "event_id": record.event_id},
    )


async def enqueue(
    conn: Any, record: r.Record, *, aggregate_type: str, headers: dict[str, str]
) -> int:
    """Add ``record`` to the outbox inside the caller's transaction; returns the row id."""
    row_id: int = await conn.fetchval(
        f"INSERT INTO outbox {COLUMNS} VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        *row(record, aggregate_type, headers),
    )
    # Delivered to listeners when (and only if) this transaction commits.
    await conn.execute("SELECT pg_notify($1, '')", CHANNEL)
    return row_id


async def backlog(conn: Any) -> tuple[int, float]:
    """Rows not yet published and the age of the oldest, in seconds (for metrics and ops)."""
    row = await conn.fetchrow(
        """SELECT count(*) AS n, coalesce(extract(epoch FROM now() - min(created_at)), 0) AS age
           FROM outbox WHERE published_at IS NULL"""
    )
    return int(row["n"]), float(row["age"])
