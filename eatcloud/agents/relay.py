"""The outbox relay: publishes committed outbox rows to Kafka, each once, in order per aggregate.

One round, in one PostgreSQL transaction:
1. claim up to ``batch`` unpublished rows, oldest first, ``FOR UPDATE SKIP LOCKED`` (another
   relay running at the same time claims other rows, never these);
2. drop the rows of any aggregate that has an older unpublished row this relay did not get
   (another relay holds it): publishing ours first would reorder that aggregate;
3. send the rest in id order and wait for the broker's acknowledgement of every one; rows
   for the saga's input topics travel as one batch envelope per partition
   (``eatcloud.runtime.wire``), so the saga pays Faust's per-record cost once per batch;
4. mark them published and commit.

A broker error rolls the transaction back: the rows stay unpublished and the relay retries
with backoff, so nothing is lost. A crash between the broker's ack and the commit publishes
those rows again on the next round; consumers dedupe by ``event_id`` (at-least-once). The
relay sleeps on ``LISTEN eatcloud_outbox`` and also polls, in case a notification is missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
from aiokafka.errors import KafkaError

from eatcloud.observability.metrics import Metrics
from eatcloud.observability.metrics import metrics as process_metrics
from eatcloud.outages import DRIVER_ERRORS, is_open, transient, unavailable_dependency
from eatcloud.postgres.outbox import CHANNEL, backlog
from eatcloud.resources import Connection, Pool, Producer, Record, Services
from eatcloud.runtime import wire
from eatcloud.runtime.adapter import CARRIED, INTERNAL

log = logging.getLogger(__name__)

_CLAIM = """SELECT id, aggregate_id, topic, key, payload, headers FROM outbox
            WHERE published_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED"""
_OLDEST = """SELECT aggregate_id, min(id) AS first FROM outbox
             WHERE published_at IS NULL AND aggregate_id = ANY($1::text[])
             GROUP BY aggregate_id"""


class OutboxRelay:
    def __init__(
        self,
        pool: Pool,
        producer: Producer,
        *,
        topic_prefix: str = "",
        batch: int = 500,
        poll_seconds: float = 1.0,
        max_backoff_seconds: float = 30.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.pool = pool
        self.producer = producer
        self.metrics = metrics or process_metrics()
        self.topic_prefix = topic_prefix
        self.batch = batch
        self.poll_seconds = poll_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.published = 0
        self._wake = asyncio.Event()
        self._partition_counts: dict[str, int] = {}

    async def publish_once(self) -> int:
        """One round; returns how many rows it published."""
        async with self.pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, self.batch)
            if not rows:
                return 0
            mine: dict[str, int] = {}
            for row in rows:
                mine.setdefault(row["aggregate_id"], row["id"])
            oldest = await conn.fetch(_OLDEST, list(mine))
            held_elsewhere = {
                o["aggregate_id"] for o in oldest if o["first"] < mine[o["aggregate_id"]]
            }
            rows = [row for row in rows if row["aggregate_id"] not in held_elsewhere]
            acks = await self._send(rows)
            await asyncio.gather(*acks)
            await conn.execute(
                "UPDATE outbox SET published_at = now() WHERE id = ANY($1::bigint[])",
                [row["id"] for row in rows],
            )
        self.published += len(rows)
        self.metrics.outbox_published.inc(len(rows))
        return len(rows)

    async def run(self, keep_going: Callable[[], bool] = lambda: True) -> None:
        """Publish until ``keep_going()`` says stop; sleeps on NOTIFY or the poll interval.

        A broker error or a PostgreSQL outage (a restart drops every connection, the
        listening one too) is waited out with backoff; the listening connection is replaced
        once it has died, so notifications come again. Anything else is a bug: it raises."""
        listener: Connection | None = None
        backoff = 0.5
        try:
            while keep_going():
                self._wake.clear()  # before the round: a NOTIFY during it starts the next one
                try:
                    if listener is None or not is_open(listener):
                        listener = await self._listen(listener)
                    published = await self.publish_once()
                    backoff = 0.5
                except Exception as exc:
                    if not transient(exc, (KafkaError,)):
                        raise
                    log.warning("outbox relay: publishing failed (%r); retrying in %.1f s",
                                exc, backoff)  # fmt: skip
                    await asyncio.sleep(backoff)
                    backoff = min(backoff * 2, self.max_backoff_seconds)
                    continue
                if published < self.batch and is_open(listener):
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
        finally:
            if listener is not None:
                await self._unlisten(listener)

    async def _listen(self, old: Connection | None) -> Connection:
        """A pooled connection that listens on the outbox channel (replacing ``old``)."""
        if old is not None:
            await self._unlisten(old)
        listener = await self.pool.acquire()
        try:
            # A lost connection wakes the loop too, which then listens on a new one. First:
            # a connection that dies while LISTEN is answered must still wake us.
            listener.add_termination_listener(self._notified)
            await listener.add_listener(CHANNEL, self._notified)
        except Exception as exc:
            dead = not is_open(listener)
            await self._unlisten(listener, listening=False)
            if dead and unavailable_dependency(exc) is None:
                # The pool handed out a connection the restart was killing. asyncpg may then
                # say so as an InternalClientError ("another operation is in progress"),
                # which would otherwise pass for a bug and stop the relay.
                raise asyncpg.ConnectionDoesNotExistError(
                    f"lost while starting to LISTEN: {exc}"
                ) from exc
            raise
        except BaseException:
            await self._unlisten(listener, listening=False)
            raise
        return listener

    async def _unlisten(self, listener: Connection, *, listening: bool = True) -> None:
        """Stop listening and give the connection back; a dead one is only given back (the
        pool replaces it), and a failure here never hides the error that brought us here."""
        with contextlib.suppress(*DRIVER_ERRORS):
            if listening and is_open(listener):
                listener.remove_termination_listener(self._notified)
                await listener.remove_listener(CHANNEL, self._notified)
        with contextlib.suppress(*DRIVER_ERRORS):
            await self.pool.release(listener)

    async def _send(self, rows: list[Record]) -> list[Awaitable[object]]:
        """Send the rows in id order: the saga's inputs as one batch envelope per partition
        (``runtime.wire``, in row order within each), anything else one record per row."""
        envelopes = wire.Envelopes()
        acks = []
        for row in rows:
            topic, key = self.topic_prefix + row["topic"], row["key"].encode()
            headers = {k: str(v) for k, v in row["headers"].items()}
            if row["topic"] in INTERNAL:
                carried = {k: v for k, v in headers.items() if k in CARRIED}
                count = await self._partitions(topic)
                envelopes.add(topic, key, count, bytes(row["payload"]), carried)
                continue
            encoded = [(k, v.encode()) for k, v in headers.items()]
            acks.append(
                await self.producer.send(topic, bytes(row["payload"]), key=key, headers=encoded)
            )
        for topic, partition, first, envelope in envelopes.records():
            acks.append(await self.producer.send(topic, envelope, key=first, partition=partition))
        return acks

    async def _partitions(self, topic: str) -> int:
        known = self._partition_counts.get(topic)
        if known is None:
            found = await self.producer.partitions_for(topic)
            known = self._partition_counts[topic] = len(found)
        return known

    def _notified(self, *args: object) -> None:
        self._wake.set()


def register(app: Any, services: Services) -> None:
    """Run the relay in this worker while it is the group's leader (one relay per cluster)."""

    @app.task  # type: ignore[untyped-decorator]  # faust is untyped
    async def outbox_relay() -> None:
        backoff = 1.0
        while True:
            if not app.is_leader():
                await asyncio.sleep(1.0)
                continue
            try:
                await _relay_while_leader(app, services)
                backoff = 1.0
            except Exception as exc:
                if not transient(exc, (KafkaError,)):
                    raise
                log.warning("outbox relay stopped (%s); restarting in %.0f s", exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)


async def _relay_while_leader(app: Any, services: Services) -> None:
    """Relay with the worker's pool and producer (they stay open when leadership moves)."""
    pool, producer = await services.pool(), await services.producer()
    prefix, bundle = services.settings.kafka.topic_prefix, services.metrics
    relay = OutboxRelay(pool, producer, topic_prefix=prefix, metrics=bundle)
    log.info("outbox relay: running (this worker is the leader)")
    sampler = asyncio.create_task(_sample_backlog(pool, app.is_leader, bundle))
    try:
        await relay.run(app.is_leader)
    finally:
        sampler.cancel()


async def _sample_backlog(
    pool: Pool, keep_going: Callable[[], bool], bundle: Metrics, every: float = 5.0
) -> None:
    """The outbox backlog and the age of its oldest row, for metrics and alerts."""
    while keep_going():
        try:
            async with pool.acquire() as conn:
                rows, age = await backlog(conn)
            bundle.outbox_backlog.set(rows)
            bundle.outbox_lag_seconds.set(age)
        except DRIVER_ERRORS as exc:
            if unavailable_dependency(exc) is None:
                raise
            log.warning("outbox backlog sample failed: %r", exc)
        await asyncio.sleep(every)
