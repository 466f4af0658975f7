"""Pruning: published outbox rows and old processed-event records leave their tables.

Nothing else deletes from either table, and both gain rows with every order. One round:

- ``outbox``: the rows published more than ``outbox_keep_seconds`` ago. A row not published
  yet is never deleted, whatever its age: it is a command the relay still owes Kafka.
- ``processed_events``: the records of events applied more than
  ``processed_events_keep_seconds`` ago.

Each table goes in chunks of ``CHUNK`` rows, oldest first, one short statement (and
transaction) per chunk, so a large backlog (the first round on a database that grew for
months) never holds its row locks for long nor makes the relay, the projections or checkout
wait. The rows are found by the indexes of migration 0003. Each cut-off is read from the
database's clock, once per table and round. A processed_events chunk takes the read models'
fence shared, as a live projection batch does: a rebuild's swap rewrites the live consumers'
records under the fence, and the two could otherwise lock the same records in opposite
orders and deadlock, which would abort the swap.

Singleton: one process of the cluster prunes at a time. A round takes the session advisory
lock ``LOCK`` with ``pg_try_advisory_lock`` on a connection of its own and skips when another
process holds it. The connection is closed when the round ends, so the lock goes even with a
round that failed half way (the pool's connections are not reset when they go back to it: a
session lock must never be taken on one).

What a pruned record means. ``processed_events`` is how a projection knows an event it has
applied already, and skips a redelivered copy. Kafka redelivers what a consumer had read but
not committed when it crashed or lost its partitions: minutes at most. A copy that comes after
its record was pruned is applied as if it were new. That takes a projection down or behind for
longer than the keep time, or a consumer group whose committed offsets expired (Kafka's
``offsets.retention.minutes``, 7 days by default, once the group is empty) and that reads its
topics again from the start. Then:

- an order event adds no line to ``order_timeline`` (keyed by the event id), does not move
  its order back (``version``) and does not count its sale again (``counted``): the read
  models are order-tolerant. Only the order's ``events`` count goes up by one;
- a stock event does not set its menu's ``stock_view`` row back: the row moves only to a
  newer line of its item (the ledger's per-item ``version``; lines written before versions
  existed would, until the menu's next change);
- the Redis stock gate does not care: it keeps each item's last applied version itself.

So a week is plenty; keep the records well above the longest a projection may be down or
behind. ``projections rebuild`` is not concerned: it records its replay under a consumer of
its own as it goes, and hands those fresh records to the live consumers at the swap.
"""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg

from eatcloud.postgres.read_models import FENCE
from eatcloud.resources import Connection
from eatcloud.settings import PostgresSettings

# The pruners' advisory lock; distinct from the migrator's (0x0EA7C10D) and the read models'
# fence (0x0EA7F00D).
LOCK = 0x0EA7C1EA
# Rows per statement: small enough that a chunk holds its locks for milliseconds.
CHUNK = 1000
# A chunk that takes longer than this means something is wrong (a lock held elsewhere).
_COMMAND_TIMEOUT_SECONDS = 60.0

_CUTOFF = "SELECT now() - make_interval(secs => $1)"
_OUTBOX = """DELETE FROM outbox
             WHERE id = ANY(ARRAY(
                 SELECT id FROM outbox WHERE published_at IS NOT NULL AND published_at < $1
                 ORDER BY published_at LIMIT $2))
               AND published_at IS NOT NULL AND published_at < $1"""
# By ctid (the table's key is two text columns): a TID scan of the rows the index found.
_PROCESSED_EVENTS = """DELETE FROM processed_events
                       WHERE ctid = ANY(ARRAY(
                           SELECT ctid FROM processed_events WHERE processed_at < $1
                           ORDER BY processed_at LIMIT $2))
                         AND processed_at < $1"""


@dataclass(frozen=True)
class Pruned:
    """How many rows a round deleted, per table."""

    outbox: int
    processed_events: int


async def prune_outbox(conn: Connection, keep_seconds: float, chunk: int = CHUNK) -> int:
    """Delete the outbox rows published over ``keep_seconds`` ago; returns how many."""
    before = await conn.fetchval(_CUTOFF, keep_seconds)
    total = 0
    while True:
        deleted = _count(await conn.execute(_OUTBOX, before, chunk))
        total += deleted
        if deleted < chunk:
            return total


async def prune_processed_events(conn: Connection, keep_seconds: float, chunk: int = CHUNK) -> int:
    """Delete the processed-event records over ``keep_seconds`` old; returns how many."""
    before = await conn.fetchval(_CUTOFF, keep_seconds)
    total = 0
    while True:
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", FENCE)
            deleted = _count(await conn.execute(_PROCESSED_EVENTS, before, chunk))
        total += deleted
        if deleted < chunk:
            return total


async def prune(
    settings: PostgresSettings,
    *,
    outbox_keep_seconds: float,
    processed_events_keep_seconds: float,
    chunk: int = CHUNK,
) -> Pruned | None:
    """One round on a connection of its own; None when another process holds ``LOCK``."""
    conn = await asyncpg.connect(
        dsn=settings.dsn(),
        timeout=settings.connect_timeout_seconds,
        command_timeout=_COMMAND_TIMEOUT_SECONDS,
    )
    try:
        if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", LOCK):
            return None
        pruned = Pruned(
            outbox=await prune_outbox(conn, outbox_keep_seconds, chunk),
            processed_events=await prune_processed_events(
                conn, processed_events_keep_seconds, chunk
            ),
        )
        await conn.execute("SELECT pg_advisory_unlock($1)", LOCK)
        return pruned
    finally:
        await conn.close()  # ends the session: releases the lock of a round that failed


def _count(status: str) -> int:
    """The row count of a command's status (``DELETE 42``)."""
    return int(status.rsplit(" ", 1)[-1])
