"""The one Faust adapter: runs typed handlers over batches of input records as one unit.

A handler is a module-level function ``handle(ctx, message)`` registered declaratively with a
``Handler``. The adapter runs one Faust agent per handler and, for every ``take_events`` batch
(many Kafka records, each a batch envelope of many messages, see ``wire``):

1. decodes every message; a poison one goes to ``<topic>-dlq`` with its coordinates;
2. runs the handler on each message in order (messages of different keys concurrently when
   the handler asks for it: the payment gateway is slow I/O that must not stall a partition);
   the handler reads tables through ``ctx.get`` (the unit's own writes first, then a cache of
   decoded values, then the store) and buffers its effects through ``ctx.put`` and ``ctx.send``;
   a bug a message triggers dead-letters that message and drops its effects, nothing else;
3. writes each table key once (store and changelog, in the partition of the record that
   caused it), sends one envelope per destination partition of our internal topics and one
   record per event on the public topics, and waits for the broker to acknowledge all of it;
4. only then lets Faust acknowledge the input records.

Failure semantics: an infrastructure error (the broker refuses a write) ends the worker
process at once (``stop_the_worker``), without acknowledging the unit's records, instead of
letting Faust restart the agent on the same channel, which would go on with later records
first. The restarted worker re-reads from the committed offsets, so a unit is all-or-nothing
as far as anyone can tell (at-least-once; every handler is idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, NoReturn, TypeVar

from aiokafka.errors import KafkaError
from faust.types import TP
from mode import CrashingSupervisor
from pydantic import BaseModel

from eatcloud.errors import EXIT_UNIT_FAILED, InfrastructureError, PoisonMessage
from eatcloud.observability import context
from eatcloud.observability.metrics import metrics
from eatcloud.runtime import wire
from eatcloud.runtime.tables import TableIO
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder, encode
from eatcloud.tables import RecordTable

log = logging.getLogger("eatcloud.runtime")

M = TypeVar("M")
V = TypeVar("V", bound=BaseModel)
Headers = list[tuple[str, bytes]]
# Trace context travels unchanged from a message to everything it causes.
CARRIED = ("traceparent", "tracestate", "x-request-id")
# Topics between our own agents carry batch envelopes; the others carry one record each.
INTERNAL = frozenset(t.INPUTS)


@dataclass(frozen=True)
class Handler(Generic[M]):
    """A participant of the saga, as the adapter runs it."""

    name: str  # the Faust agent's name
    topics: tuple[str, ...]  # unprefixed, co-partitioned inputs
    decoder: Decoder[M]
    handle: Callable[[Context, M], Awaitable[None]]
    key: Callable[[M], str]  # messages of one key run in order
    concurrent: bool = False  # messages of different keys may overlap (slow I/O)
    help: str = ""
    # A decoder of its own for some input topics (unprefixed name); the others use ``decoder``.
    decoders: Mapping[str, Decoder[Any]] = field(default_factory=dict)

    def decoder_for(self, topic: str) -> Decoder[Any]:
        return self.decoders.get(topic, self.decoder)


class Sink:
    """Where a unit's records go, changelog records included: Faust's producer (tests swap in
    a recorder)."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.producer: Any = None
        self._starting = asyncio.Lock()

    async def produce(
        self, topic: str, key: bytes | None, value: bytes | None, partition: int | None,
        headers: Headers | None,
    ) -> Awaitable[Any]:  # fmt: skip
        """Hand one record to the producer; the returned future resolves on the broker's ack."""
        if self.producer is None:
            # Faust starts its producer on first use; two agents asking at once must both
            # wait for the start (a send on a half-started producer never completes).
            async with self._starting:
                if self.producer is None:
                    self.producer = await self.app.maybe_start_producer()
        ack: Awaitable[Any] = await self.producer.send(topic, key, value, partition, None, headers)
        return ack


@dataclass
class Source:
    """Where an input message came from: for dead letters, partitions and trace headers."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: dict[str, str]
    index: int | None = None  # its place in a batch envelope
    value: bytes | None = None  # the message as it arrived, for the dead-letter topic


class Context:
    """One message's view of its unit: reads, buffered writes and sends."""

    __slots__ = ("sends", "source", "unit", "writes")

    def __init__(self, unit: Unit, source: Source) -> None:
        self.unit = unit
        self.source = source
        self.writes: dict[tuple[str, str], tuple[RecordTable[Any], Any]] = {}
        self.sends: list[r.Record] = []

    def get(self, table: RecordTable[V], key: str) -> V | None:
        key = table.prefix + key
        mine = self.writes.get((table.name, key), _MISSING)
        if mine is not _MISSING:
            value: V | None = mine[1]  # type: ignore[index]  # a (table, value) pair
            return value
        return self.unit.get(table, key, self.source.partition)

    def put(self, table: RecordTable[V], key: str, value: V | None) -> None:
        """Write (None: delete) ``key`` when the unit ends, in this message's partition."""
        self.writes[(table.name, table.prefix + key)] = (table, value)

    def send(self, *records: r.Record) -> None:
        """Send when the unit ends, carrying this message's trace headers."""
        self.sends.extend(records)


@dataclass
class Unit:
    """The effects of one batch of input records, written and sent together."""

    runtime: Runtime
    id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    writes: dict[tuple[str, str], tuple[RecordTable[Any], Any, int]] = field(default_factory=dict)
    internal: wire.Envelopes = field(default_factory=wire.Envelopes)
    public: list[tuple[str, bytes, bytes, Headers]] = field(default_factory=list)
    dead: list[tuple[Source, bytes | None, PoisonMessage]] = field(default_factory=list)

    def get(self, table: RecordTable[V], key: str, partition: int) -> V | None:
        written = self.writes.get((table.name, key), _MISSING)
        if written is not _MISSING:
            value: V | None = written[1]  # type: ignore[index]  # a (table, value, partition)
            return value
        return self.runtime.read(table, key, partition)

    def merge(self, ctx: Context) -> None:
        """Take a message's effects into the unit; a record with no route raises first, before
        anything is taken (the message is then dead-lettered alone)."""
        routed = [(record, t.route(record)) for record in ctx.sends]
        partition = ctx.source.partition
        for where, (table, value) in ctx.writes.items():
            self.writes[where] = (table, value, partition)
        carried = {k: v for k, v in ctx.source.headers.items() if k in CARRIED}
        for record, route in routed:
            self.add(record, carried, route)

    def add(
        self, record: r.Record, carried: dict[str, str], route: tuple[str, str] | None = None
    ) -> None:
        topic, key = route or t.route(record)
        value = encode(record)
        key_bytes = key.encode()
        if topic in INTERNAL:
            self.internal.add(topic, key_bytes, self.runtime.partitions, value, carried)
        else:
            headers = [("event_id", record.event_id.encode())]
            headers += [(k, v.encode()) for k, v in carried.items()]
            self.public.append((topic, key_bytes, value, headers))

    async def flush(self) -> None:
        """Write, send, and wait for the broker to acknowledge everything (or raise)."""
        rt = self.runtime
        pending: list[Awaitable[Any]] = []
        changelogs: list[tuple[TableIO, int]] = []
        for (name, full_key), (table, value, partition) in self.writes.items():
            io = rt.tables[name]
            pending.append(await io.write(full_key, table.encode(value), partition))
            changelogs.append((io, partition))
            rt.remember(table, full_key, value)
        prefix = rt.prefix
        for topic, partition, first, envelope in self.internal.records():
            pending.append(await rt.sink.produce(prefix + topic, first, envelope, partition, None))
        for topic, key_bytes, value, headers in self.public:
            pending.append(await rt.sink.produce(prefix + topic, key_bytes, value, None, headers))
        for source, value, error in self.dead:
            pending.append(await rt.dead_letter(source, value, error))
        try:
            acks = await asyncio.gather(*pending)
        except KafkaError as exc:
            raise InfrastructureError(f"the broker did not take a unit's output: {exc}") from exc
        persisted: dict[tuple[TableIO, int], int] = {}
        for where, ack in zip(changelogs, acks, strict=False):  # the changelogs come first
            if ack is not None:  # None: a test's recording sink
                persisted[where] = max(persisted.get(where, -1), ack.offset)
        for (io, partition), offset in persisted.items():
            io.persisted(partition, offset)


class Runtime:
    """Runs handlers on a Faust app; built once per worker by the composition root."""

    def __init__(
        self,
        app: Any,
        *,
        prefix: str,
        partitions: int,
        batch: int,
        within: float,
        cached: int,
        rocksdb: dict[str, int] | None = None,
    ):
        self.app = app
        self.prefix = prefix
        self.partitions = partitions
        self.batch = batch
        self.within = within
        self.sink = Sink(app)
        # What a unit that failed half way does: end the worker (agent tests swap it).
        self.stop: Callable[[str, BaseException], None] = stop_the_worker
        self.tables: dict[str, TableIO] = {}
        # Decoded values by (table, full key), the least recently written first.
        self._cache: dict[tuple[str, str], Any] = {}
        self.cache_limit = cached
        # Options of each table's RocksDB (Faust's ``options``): memtable and block cache sizes.
        self.rocksdb = dict(rocksdb or {})
        # At most this many messages per unit: an owner's ``last`` of 1,000 records is ~200 KB.
        self.unit_messages = 1_000
        # The offset and timestamp of the last record each input partition processed.
        self.position: dict[tuple[str, int], tuple[int, float]] = {}
        app.on_partitions_revoked.connect(self._forget)
        app.on_partitions_assigned.connect(self._forget)

    # --- tables ----------------------------------------------------------------------------

    def table(self, name: str, model: type[V], help: str) -> RecordTable[V]:
        """Declare a changelog-backed table of ``model`` values (JSON bytes, keyed by str)."""
        faust_table = self.app.Table(
            name,
            partitions=self.partitions,
            key_type=str,
            value_type=bytes,
            help=help,
            # A copy each: Faust's store pops keys off the dict it is given.
            options=dict(self.rocksdb),
        )
        self.tables[name] = TableIO(self, faust_table)
        return RecordTable(name, faust_table, model)

    def read(self, table: RecordTable[V], key: str, partition: int) -> V | None:
        """The value of a full key (prefix included), decoded once and then cached."""
        cached = self._cache.get((table.name, key), _MISSING)
        if cached is not _MISSING:
            value: V | None = cached
            return value
        raw = self.tables[table.name].read(key, partition)
        decoded = None if raw is None else table.decode(raw)
        self.remember(table, key, decoded)
        return decoded

    def remember(self, table: RecordTable[Any], key: str, value: Any) -> None:
        where = (table.name, key)
        cache = self._cache
        cache.pop(where, None)  # to the end: the oldest write is evicted first
        if self.cache_limit <= 0:
            return
        if len(cache) >= self.cache_limit:
            del cache[next(iter(cache))]
        cache[where] = value

    async def _forget(self, *_: Any, **__: Any) -> None:
        """Partitions moved: values cached from them may be changed by another worker now."""
        self._cache.clear()
        self.position.clear()

    # --- agents ----------------------------------------------------------------------------

    def register(self, handler: Handler[M], topics: dict[str, Any]) -> Any:
        """A Faust agent running ``handler`` over ``take_events`` batches of its topics."""
        names = [topics[name].get_topic_name() for name in handler.topics]
        channel = (
            topics[handler.topics[0]]
            if len(names) == 1
            else self.app.topic(
                *names,
                key_type=str,
                key_serializer="raw",
                value_serializer="raw",
                partitions=self.partitions,
                internal=True,
            )
        )

        async def agent(stream: Any) -> None:
            async for events in stream.take_events(self.batch, within=self.within):
                try:
                    await self.run(handler, events)
                except BaseException as exc:  # even a cancel mid-unit: see stop_the_worker
                    self.stop(handler.name, exc)

        agent.__doc__ = handler.help
        agent.__name__ = handler.name.replace("-", "_")
        return self.app.agent(channel, name=handler.name, supervisor_strategy=CrashingSupervisor)(
            agent
        )

    async def run(self, handler: Handler[M], events: Iterable[Any]) -> None:
        """Every message of ``events``, then its writes and sends, acknowledged: one unit per
        ``unit_messages`` messages. A stock or points owner carries every record its unit
        changed (``tables._Entry.last``), so a unit must stay well under Kafka's 1 MB record
        limit however many messages a batch of envelopes holds."""
        unit = Unit(self)
        work: list[tuple[Source, M]] = []
        for event in events:
            work.extend(self._messages(handler, event, unit))
        for start in range(0, max(len(work), 1), self.unit_messages):
            await self._unit(handler, unit, work[start : start + self.unit_messages])
            unit = Unit(self)

    async def _unit(self, handler: Handler[M], unit: Unit, work: list[tuple[Source, M]]) -> None:
        if handler.concurrent:
            lanes: dict[str, list[tuple[Source, M]]] = {}
            for source, message in work:
                lanes.setdefault(handler.key(message), []).append((source, message))
            await asyncio.gather(*(self._lane(handler, unit, lane) for lane in lanes.values()))
        else:
            await self._lane(handler, unit, work)
        await unit.flush()

    async def _lane(self, handler: Handler[M], unit: Unit, work: list[tuple[Source, M]]) -> None:
        for source, message in work:
            ctx = Context(unit, source)
            ids = (
                context.request_id.set(source.headers.get("x-request-id")),
                context.order_id.set(getattr(message, "order_id", None)),
            )
            # The message's own trace, for its log lines (none is minted when it has none).
            trace = context.start_trace(source.headers) if "traceparent" in source.headers else None
            try:
                await handler.handle(ctx, message)
                unit.merge(ctx)
            except PoisonMessage as exc:
                unit.dead.append((source, source.value, exc))
                continue
            except (InfrastructureError, KafkaError):
                raise
            except Exception as exc:  # a bug meets this message: park it, keep going
                log.exception("handler %s failed on %s", handler.name, _where(source))
                error = PoisonMessage("handler_error", repr(exc)[:500])
                unit.dead.append((source, source.value, error))
                continue
            finally:
                context.end_trace(trace)
                context.request_id.reset(ids[0])
                context.order_id.reset(ids[1])

    def _messages(self, handler: Handler[M], event: Any, unit: Unit) -> list[tuple[Source, M]]:
        message = event.message
        topic = message.topic[len(self.prefix) :]
        self.position[(topic, message.partition)] = (message.offset, message.timestamp)
        headers = header_text(message.headers)
        value = message.value
        source = Source(topic, message.partition, message.offset, message.key, headers, None, value)
        batched = wire.is_batch(value)
        if not batched:
            items = [wire.Item(value, {k: v for k, v in headers.items() if k in CARRIED})]
        else:
            try:
                items = wire.unpack(value)
            except ValueError as exc:
                unit.dead.append((source, value, PoisonMessage("undecodable", str(exc)[:500])))
                return []
        out = []
        decoder = handler.decoder_for(topic)
        for n, item in enumerate(items):
            at = _at(source, n, item) if batched else source
            try:
                out.append((at, decoder(item.value)))
            except PoisonMessage as exc:
                unit.dead.append((at, item.value, exc))
        return out

    def timer(self, every: float, name: str, tick: Callable[[], Awaitable[None]]) -> None:
        """Run ``tick`` every ``every`` seconds; its failures are logged, never fatal."""
        self.app.timer(every)(guard_timer(name, tick))

    # --- sending outside of a unit ------------------------------------------------------------

    async def emit(self, records: Iterable[r.Record]) -> None:
        """Send records caused by no input (the timers): batched, acknowledged before return."""
        unit = Unit(self)
        for record in records:
            unit.add(record, {})
        await unit.flush()

    def backlog_time(self, topic: str, partition: int) -> float:
        """How far this worker has read a partition, as a time: now when nothing is left to
        read, else the timestamp of the last record it processed (0 if none yet while records
        wait: right after a rebalance, from the committed offset on)."""
        tp = TP(self.prefix + topic, partition)
        consumer: Any = self.app.consumer  # highwater: public; committed offset: see below
        try:
            highwater = consumer.highwater(tp)
        except Exception:  # no consumer yet (tests) or partition not assigned
            return time.time()
        seen = self.position.get((topic, partition))
        if seen is None:
            # Nothing processed since this worker got the partition: it is caught up when its
            # committed offset (the next record to read) has reached the end. Faust keeps it
            # in ``_committed_offset`` (faust_patches' rewind reads it too, for 0.15.3).
            committed = consumer._committed_offset.get(tp) or 0
            return time.time() if highwater is None or committed >= highwater else 0.0
        offset, timestamp = seen
        if highwater is None or offset + 1 >= highwater:
            return time.time()
        return timestamp / 1000 if timestamp > 1e11 else timestamp

    async def dead_letter(
        self, source: Source, value: bytes | None, error: PoisonMessage
    ) -> Awaitable[Any]:
        coordinates: Headers = [
            ("x-error-reason", error.reason.encode()),
            ("x-error-detail", error.detail.encode()),
            ("x-original-topic", (self.prefix + source.topic).encode()),
            ("x-original-partition", str(source.partition).encode()),
            ("x-original-offset", str(source.offset).encode()),
        ]
        if source.index is not None:
            coordinates.append(("x-original-index", str(source.index).encode()))
        carried = [(k, v.encode()) for k, v in source.headers.items() if not k.startswith("x-err")]
        dlq = t.dlq(source.topic)
        metrics().dead_letters.labels(dlq, error.reason).inc()
        log.warning("poison message %s sent to %s: %s", _where(source), dlq, error)
        return await self.sink.produce(
            self.prefix + dlq, source.key, value, source.partition, coordinates + carried
        )


_MISSING = object()


def guard_timer(name: str, tick: Callable[[], Awaitable[None]]) -> Callable[[], Awaitable[None]]:
    """A timer body that logs its failures instead of crashing the worker (Faust's default)."""

    async def guarded_tick() -> None:
        try:
            await tick()
        except (InfrastructureError, KafkaError):
            log.warning("timer %s: broker unavailable, retrying on the next tick", name)
        except Exception:
            log.exception("timer %s failed; it runs again on the next tick", name)

    guarded_tick.__name__ = name
    return guarded_tick


def _at(source: Source, index: int, item: wire.Item) -> Source:
    headers = {**{k: v for k, v in source.headers.items() if k not in CARRIED}, **item.headers}
    return Source(
        source.topic, source.partition, source.offset, source.key, headers, index, item.value
    )


def stop_the_worker(agent: str, exc: BaseException) -> NoReturn:
    """End the process at once: a unit failed (or was cancelled) half way.

    Its input records must be read again, so nothing may acknowledge or commit them. Letting
    the exception out of the agent would: Faust's ``take_events`` acknowledges the batch in a
    ``finally`` as the generator closes, and a clean shutdown commits what was acknowledged.
    And mode's ``CrashingSupervisor`` alone does not stop the worker (measured: an agent that
    raised left the worker running without it). So the worker exits as a ``kill -9`` would,
    which the chaos tests prove safe: the restarted worker rebuilds its tables from the
    changelogs (its RUNNING marker is still there) and re-reads from the committed offsets.
    """
    log.critical(
        "agent %s: a unit failed half way (%r); stopping the worker so that its records are "
        "read again after the restart",
        agent,
        exc,
        exc_info=not isinstance(exc, asyncio.CancelledError),
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_UNIT_FAILED)


def _where(source: Source) -> str:
    at = f"{source.topic}[{source.partition}]@{source.offset}"
    return at if source.index is None else f"{at}#{source.index}"


def header_text(raw: Any) -> dict[str, str]:
    """Kafka headers (a list of pairs or a mapping) as text: trace context, event_id."""
    items = (raw.items() if isinstance(raw, dict) else raw) or []
    return {k: v.decode("latin-1") if isinstance(v, bytes) else str(v) for k, v in items}
