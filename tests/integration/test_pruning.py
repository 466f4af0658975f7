"""Pruning the outbox and processed_events against the real PostgreSQL, in a database of its own."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from prometheus_client import CollectorRegistry

from eatcloud.agents import housekeeping
from eatcloud.bootstrap import build
from eatcloud.observability.metrics import Metrics
from eatcloud.postgres import migrate, pruning
from eatcloud.postgres.read_models import FENCE
from eatcloud.settings import Settings
from tests.integration.databases import fresh_database

DAY = dt.timedelta(days=1)
WEEK = 7 * 24 * 3600.0


@pytest.fixture
async def db(settings: Settings) -> AsyncIterator[Settings]:
    async with fresh_database(settings) as fresh:
        yield fresh


@pytest.fixture
async def conn(db: Settings) -> AsyncIterator[Any]:
    connection = await asyncpg.connect(dsn=db.postgres.dsn())
    try:
        yield connection
    finally:
        await connection.close()


async def add_outbox_row(
    conn: Any, name: str, *, created: dt.timedelta, published: dt.timedelta | None
) -> int:
    """A row created ``created`` ago and published ``published`` ago (None: not yet)."""
    row_id: int = await conn.fetchval(
        """INSERT INTO outbox (aggregate_type, aggregate_id, topic, key, type, payload,
               created_at, published_at)
           VALUES ('order', $1, 'order-commands', $1, 'PlaceOrder', '\\x7b7d'::bytea,
               now() - $2::interval, now() - $3::interval)
           RETURNING id""",
        name,
        created,
        published,
    )
    return row_id


async def add_processed(conn: Any, consumer: str, event_id: str, *, age: dt.timedelta) -> None:
    await conn.execute(
        """INSERT INTO processed_events (consumer, event_id, processed_at)
           VALUES ($1, $2, now() - $3::interval)""",
        consumer,
        event_id,
        age,
    )


async def outbox_names(conn: Any) -> set[str]:
    return {row["aggregate_id"] for row in await conn.fetch("SELECT aggregate_id FROM outbox")}


async def processed(conn: Any) -> set[tuple[str, str]]:
    rows = await conn.fetch("SELECT consumer, event_id FROM processed_events")
    return {(row["consumer"], row["event_id"]) for row in rows}


async def seed(conn: Any) -> tuple[set[str], set[tuple[str, str]]]:
    """Five outbox rows and five records past a week, and what must survive a week's prune."""
    for n in range(5):
        await add_outbox_row(conn, f"published-old-{n}", created=20 * DAY, published=(8 + n) * DAY)
        await add_processed(conn, "order_view", f"old-{n}", age=(8 + n) * DAY)
    await add_processed(conn, "stock_view", "old-stock", age=30 * DAY)
    await add_outbox_row(conn, "published-recent", created=2 * DAY, published=DAY)
    await add_outbox_row(conn, "published-inside-the-week", created=7 * DAY, published=6 * DAY)
    await add_outbox_row(conn, "unpublished-old", created=30 * DAY, published=None)
    await add_outbox_row(conn, "unpublished-new", created=dt.timedelta(0), published=None)
    await add_processed(conn, "order_view", "recent", age=dt.timedelta(hours=1))
    await add_processed(conn, "stock_view", "inside-the-week", age=6 * DAY)
    await add_processed(conn, "order_view_next", "rebuilding", age=dt.timedelta(0))
    kept_rows = {"published-recent", "published-inside-the-week", "unpublished-old"}
    kept_records = {
        ("order_view", "recent"),
        ("stock_view", "inside-the-week"),
        ("order_view_next", "rebuilding"),
    }
    return kept_rows | {"unpublished-new"}, kept_records


def prune_a_week(db: Settings, chunk: int = pruning.CHUNK) -> Awaitable[pruning.Pruned | None]:
    return pruning.prune(
        db.postgres, outbox_keep_seconds=WEEK, processed_events_keep_seconds=WEEK, chunk=chunk
    )


async def test_a_round_deletes_published_rows_and_records_past_their_keep_time_and_nothing_else(
    db: Settings, conn: Any
) -> None:
    kept_rows, kept_records = await seed(conn)
    # Chunks of two: five old rows take three statements, the last one short.
    pruned = await prune_a_week(db, chunk=2)
    assert pruned == pruning.Pruned(outbox=5, processed_events=6)
    assert await outbox_names(conn) == kept_rows
    assert await processed(conn) == kept_records
    # The lock went with the round: the next round runs, and finds nothing left to delete.
    assert await prune_a_week(db) == pruning.Pruned(outbox=0, processed_events=0)
    assert await outbox_names(conn) == kept_rows


async def test_a_row_never_published_stays_however_old_and_short_a_keep_time(
    db: Settings, conn: Any
) -> None:
    await add_outbox_row(conn, "stuck", created=365 * DAY, published=None)
    await add_outbox_row(conn, "sent", created=DAY, published=DAY)
    pruned = await pruning.prune(
        db.postgres, outbox_keep_seconds=1.0, processed_events_keep_seconds=1.0
    )
    assert pruned == pruning.Pruned(outbox=1, processed_events=0)
    assert await outbox_names(conn) == {"stuck"}


async def wait_for(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(200):
        if await check():
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"waited 10 s for {what}")


async def test_a_second_pruner_skips_its_round_while_the_first_holds_the_lock(
    db: Settings, conn: Any
) -> None:
    kept_rows, kept_records = await seed(conn)
    blocker = await asyncpg.connect(dsn=db.postgres.dsn())
    try:
        # The first pruner takes the lock, then waits on an old row locked here.
        held = await blocker.fetchval(
            "SELECT id FROM outbox WHERE aggregate_id = 'published-old-0'"
        )
        blocking = blocker.transaction()
        await blocking.start()
        await blocker.execute("SELECT 1 FROM outbox WHERE id = $1 FOR UPDATE", held)
        first = asyncio.create_task(prune_a_week(db))

        async def first_holds_the_lock_and_waits() -> bool:
            row = await conn.fetchrow(
                """SELECT
                     EXISTS (SELECT 1 FROM pg_locks
                             WHERE locktype = 'advisory' AND granted AND objid::bigint = $1
                               AND database = (SELECT oid FROM pg_database
                                               WHERE datname = current_database())),
                     EXISTS (SELECT 1 FROM pg_stat_activity
                             WHERE datname = current_database() AND wait_event_type = 'Lock')""",
                pruning.LOCK,
            )
            return bool(row[0] and row[1])

        await wait_for(first_holds_the_lock_and_waits, "the first pruner to be waiting")
        assert await prune_a_week(db) is None
        # Nothing is gone yet: the first one's deletes wait uncommitted, the second made none.
        assert await outbox_names(conn) >= {f"published-old-{n}" for n in range(5)}
        assert await processed(conn) >= {("order_view", f"old-{n}") for n in range(5)}
        assert not first.done()
        await blocking.rollback()
        assert await asyncio.wait_for(first, 30) == pruning.Pruned(outbox=5, processed_events=6)
    finally:
        await blocker.close()
    assert await outbox_names(conn) == kept_rows
    assert await processed(conn) == kept_records


async def test_a_pruner_that_dies_half_way_leaves_the_lock_to_the_next_round(
    db: Settings, conn: Any
) -> None:
    await seed(conn)
    # A rebuild's swap holds the fence: the round waits there, having pruned the outbox.
    swap = await asyncpg.connect(dsn=db.postgres.dsn())
    try:
        fence = swap.transaction()
        await fence.start()
        await swap.execute("SELECT pg_advisory_xact_lock($1)", FENCE)
        dying = asyncio.create_task(prune_a_week(db))

        async def outbox_pruned() -> bool:
            return "published-old-0" not in await outbox_names(conn)

        await wait_for(outbox_pruned, "the outbox to be pruned")
        dying.cancel()
        with pytest.raises(asyncio.CancelledError):
            await dying
        await fence.rollback()
    finally:
        await swap.close()
    assert await prune_a_week(db) == pruning.Pruned(outbox=0, processed_events=6)


def test_the_pruning_lock_is_neither_the_migrators_nor_the_read_models_fence() -> None:
    assert len({pruning.LOCK, migrate._LOCK_KEY, FENCE}) == 3


class TimerApp:
    """Just enough of a Faust app to register timers on."""

    def __init__(self) -> None:
        self.timers: list[tuple[float, Callable[[], Awaitable[None]]]] = []

    def timer(self, every: float) -> Callable[[Callable[[], Awaitable[None]]], object]:
        def add(tick: Callable[[], Awaitable[None]]) -> object:
            self.timers.append((every, tick))
            return tick

        return add


def with_worker(settings: Settings, **changes: Any) -> Settings:
    return settings.model_copy(update={"worker": settings.worker.model_copy(update=changes)})


async def test_the_timer_prunes_with_the_settings_and_logs_and_counts_what_it_deleted(
    db: Settings, conn: Any, caplog: pytest.LogCaptureFixture
) -> None:
    await seed(conn)
    await add_outbox_row(conn, "published-three-days-ago", created=4 * DAY, published=3 * DAY)
    settings = with_worker(db, prune_interval_seconds=120.0, outbox_keep_seconds=2 * 24 * 3600.0)
    bundle = Metrics(CollectorRegistry())
    app = TimerApp()
    async with build(settings, metrics=bundle) as services:
        housekeeping.register(app, services)
        [(every, tick)] = app.timers
        assert every == 120.0
        with caplog.at_level(logging.INFO, logger=housekeeping.__name__):
            await tick()
            await tick()  # nothing left: no second line
    # Outbox rows published over two days ago, records over a week.
    assert "published-three-days-ago" not in await outbox_names(conn)
    assert "published-recent" in await outbox_names(conn)
    lines = [r.getMessage() for r in caplog.records if r.name == housekeeping.__name__]
    assert lines == ["pruned 7 published outbox row(s) and 6 processed_events record(s)"]
    sample = bundle.registry.get_sample_value
    assert sample("eatcloud_pruned_rows_total", {"table": "outbox"}) == 7
    assert sample("eatcloud_pruned_rows_total", {"table": "processed_events"}) == 6


async def test_a_round_that_cannot_reach_the_database_is_logged_and_the_timer_goes_on(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    unreachable = settings.model_copy(
        update={"postgres": settings.postgres.model_copy(update={"port": 1})}
    )
    app = TimerApp()
    async with build(unreachable) as services:
        housekeeping.register(app, services)
        [(_, tick)] = app.timers
        with caplog.at_level(logging.WARNING, logger=housekeeping.__name__):
            await tick()  # returns: a timer body that raised would end the worker's timer
    assert any("pruning failed" in r.getMessage() for r in caplog.records)
