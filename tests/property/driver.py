"""The worker's real saga handlers, run in memory: one message per unit, committed at once.

``Agents`` builds the handlers as ``eatcloud.agents.register`` does (the orchestrator with its
local stock step, payment and points) over the tables ``eatcloud.tables.declare`` lays out,
with no Faust table behind them. ``deliver`` does for one record what the runtime
(``eatcloud.runtime.adapter``) does for one message: it encodes the record, decodes it with the
decoder of the handler that reads the topic the record is routed to, runs that handler in a
``Context`` whose reads see the committed values of the message's partition, then commits the
writes (each value through its JSON encoding, as the changelog keeps it) and hands back what
changed and what was sent. On the way it checks what every message must do to stock,
whichever machine sends it: its stock events tell the ledger's counts, and an expiry sweep
releases only what is still held and expired. The gateway answers at once, so a handler runs
to its end without an event loop; the orchestrator reads the test's clock, not the wall's.
"""

from __future__ import annotations

import functools
import itertools
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

from pydantic import BaseModel

from eatcloud import tables
from eatcloud.agents import orchestrator, payment, points, stock
from eatcloud.domain.payment import Action, Payment
from eatcloud.domain.points import Hold, PointsAccount
from eatcloud.domain.saga import SagaPolicy, SagaState
from eatcloud.domain.stock import Reservation, ReservationStatus, StoreStock, is_expired
from eatcloud.payments.gateway import Authorization
from eatcloud.runtime.adapter import Context, Handler, Runtime, Source, Unit
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import encode
from eatcloud.tables import RecordTable, scoped

V = TypeVar("V", bound=BaseModel)
Key = tuple[str, str]  # (table name, full key)

PARTITIONS = 4
RETENTION = 3_600.0


class CountingGateway:
    """A ``PaymentGateway`` that approves unless the order is in ``declines``; counts calls."""

    def __init__(self) -> None:
        self.declines: set[str] = set()
        self.calls: Counter[tuple[str, Action]] = Counter()

    async def authorize(self, order_id: str, customer_id: str, amount: int) -> Authorization:
        self.calls[(order_id, Action.AUTHORIZE)] += 1
        if order_id in self.declines:
            return Authorization(False, reason="card_declined")
        return Authorization(True, authorization_id=f"auth-{order_id}")

    async def void(self, order_id: str) -> None:
        self.calls[(order_id, Action.VOID)] += 1

    async def refund(self, order_id: str) -> None:
        self.calls[(order_id, Action.REFUND)] += 1


@dataclass(frozen=True)
class Effects:
    """What one message did: the handler that ran, the values it changed (None: deleted) and
    the records it sent."""

    handler: str
    changed: dict[Key, Any]
    sends: list[r.Record]


class _Declarer:
    """The one thing ``tables.declare`` asks of the runtime: a table, here with no Faust one."""

    def table(self, name: str, model: type[V], help: str) -> RecordTable[V]:
        return RecordTable(name, None, model)


class _Unit:
    """What a ``Context`` asks of its unit: an id, and the value of a key in a partition."""

    def __init__(self, agents: Agents, id: str) -> None:
        self.agents = agents
        self.id = id

    def get(self, table: RecordTable[V], key: str, partition: int) -> V | None:
        value: V | None = self.agents.stores[partition].get((table.name, key))
        return value


class _UnitView:
    """A unit of several messages: its own writes first, then the committed values."""

    def __init__(self, unit: _Unit, writes: dict[Key, tuple[RecordTable[Any], Any]]) -> None:
        self.unit, self.writes, self.id = unit, writes, unit.id

    def get(self, table: RecordTable[V], key: str, partition: int) -> V | None:
        mine = self.writes.get((table.name, key))
        if mine is not None:
            value: V | None = mine[1]
            return value
        return self.unit.get(table, key, partition)


@dataclass(frozen=True)
class _Clock:
    """The test's clock as the handlers read it (``resources.Clock``)."""

    time: Callable[[], float]

    def now(self) -> float:
        return self.time()


class Agents:
    """The handlers, their committed tables (by partition) and the gateway's calls."""

    def __init__(self, policy: SagaPolicy, ttl: float, clock: Callable[[], float]) -> None:
        self.tables = tables.declare(cast(Runtime, _Declarer()))
        self.gateway = CountingGateway()
        self.stock = stock.Stock(self.tables.stock, ttl, stock.HeldReservations())
        self.orchestrator = orchestrator.Orchestrator(
            self.tables.sagas, policy, orchestrator.Deadlines(RETENTION), self.stock, _Clock(clock)
        )
        handlers: tuple[Handler[Any], ...] = (
            orchestrator.handler(self.orchestrator),
            payment.handler(payment.Payments(self.tables.payments, self.gateway)),
            points.handler(points.Points(self.tables.points)),
        )
        self.reading = {topic: handler for handler in handlers for topic in handler.topics}
        self.stores: list[dict[Key, Any]] = [{} for _ in range(PARTITIONS)]
        self.offsets = itertools.count()

    def deliver(self, record: r.Record) -> Effects:
        """Run the handler of the record's topic on it as one unit and commit its effects."""
        topic, key = t.route(record)
        handler = self.reading[topic]
        message = handler.decoder_for(topic)(encode(record))
        assert handler.key(message) == key, f"{topic} is read by another key than it is sent"
        partition = _partition(key)
        offset = next(self.offsets)
        source = Source(topic, partition, offset, key.encode(), {})
        ctx = Context(cast(Unit, _Unit(self, f"unit-{offset}")), source)
        sweep = record if isinstance(record, r.ExpireReservations) else None
        named = {} if sweep is None else self._named(sweep)
        _to_the_end(handler.handle(ctx, message))
        changed = self._commit(partition, list(ctx.writes.items()))
        for sent in ctx.sends:
            t.route(sent)  # raises for a record that has nowhere to go
        self._check_stock_events(ctx.sends)
        if sweep is not None:
            self._check_sweep(sweep, named)
        return Effects(handler.name, changed, ctx.sends)

    def deliver_unit(self, records: list[r.Record], cut: int | None = None) -> None:
        """Run records of one owner (one partition) as ONE unit, as the runtime runs a batch:
        each message sees the unit's earlier writes; the unit writes each key once, in the
        order the keys were first written. ``cut``: a crash after that many writes reached the
        changelog (the rest never did; the records are then delivered again)."""
        unit = _Unit(self, f"unit-{next(self.offsets)}")
        writes: dict[Key, tuple[RecordTable[Any], Any]] = {}
        partitions = set()
        for record in records:
            topic, key = t.route(record)
            handler = self.reading[topic]
            partition = _partition(key)
            partitions.add(partition)
            source = Source(topic, partition, next(self.offsets), key.encode(), {})
            ctx = Context(cast(Unit, _UnitView(unit, writes)), source)
            _to_the_end(handler.handle(ctx, handler.decoder_for(topic)(encode(record))))
            for where, write in ctx.writes.items():
                writes[where] = write
        assert len(partitions) <= 1, "a unit's records here come from one partition"
        kept = list(writes.items())[:cut]
        if partitions:
            self._commit(partitions.pop(), kept)

    def _commit(
        self, partition: int, writes: list[tuple[Key, tuple[RecordTable[Any], Any]]]
    ) -> dict[Key, Any]:
        """Each value through its JSON encoding, as the changelog keeps it; what changed."""
        store, changed = self.stores[partition], {}
        for where, (table, value) in writes:
            kept = None if value is None else table.decode(table.encode(value) or b"")
            if store.pop(where, None) != kept:
                changed[where] = kept
            if kept is not None:
                store[where] = kept
        return changed

    def _named(self, sweep: r.ExpireReservations) -> dict[str, Reservation | None]:
        reservations = self.reservations(sweep.store_id)
        return {order_id: reservations.get(order_id) for order_id in sweep.order_ids}

    def _check_sweep(self, sweep: r.ExpireReservations, before: dict[str, Any]) -> None:
        """A sweep releases the reservations it names that are held and expired by its time,
        and leaves the others alone (committed or released since the timer looked)."""
        after = self._named(sweep)
        for order_id, reservation in before.items():
            if is_expired(reservation, sweep.now):
                released = after[order_id]
                assert released and released.status is ReservationStatus.RELEASED, order_id
            else:
                assert after[order_id] == reservation, order_id

    def _check_stock_events(self, sends: list[r.Record]) -> None:
        """A message's last stock event per item tells that item's counts and version after
        the message; within it, each line that changed the item counts its version up by one
        and a line that changed nothing (a refusal, a probe) repeats it."""
        events = [e for e in sends if isinstance(e, r.StockLevelChanged | r.StockLevelsChanged)]
        last: dict[tuple[str, str], r.StockLevelChanged] = {}
        for line in r.stock_lines(events):
            before = last.get((line.store_id, line.menu_id))
            if before is not None:
                assert before.version is not None, "a line without a version"
                moved = _counts(line) != _counts(before)
                assert line.version == before.version + moved, (line.menu_id, line.change)
            last[(line.store_id, line.menu_id)] = line
        for (store_id, menu_id), event in last.items():
            item = self.ledger(store_id).items[menu_id]
            told = (event.on_hand, event.reserved, event.sold, event.unlimited, event.version)
            now = (item.on_hand, item.reserved, item.sold, item.unlimited, item.version)
            assert told == now, menu_id

    # --- the committed values --------------------------------------------------------------

    def value(self, table: RecordTable[V], key: str) -> V | None:
        """The committed value of a key, from the one partition that holds it."""
        where = (table.name, table.prefix + key)
        found = [store[where] for store in self.stores if where in store]
        assert len(found) <= 1, f"{where} is in {len(found)} partitions"
        return cast(V, found[0]) if found else None

    def records(self, table: RecordTable[V], owner: str) -> dict[str, V]:
        """An owner's per-order records, by order_id."""
        prefix = table.prefix + scoped(owner, "")
        partition = self.stores[_partition(owner)]
        return {
            key[len(prefix) :]: value
            for (name, key), value in partition.items()
            if name == table.name and key.startswith(prefix)
        }

    def saga(self, order_id: str) -> SagaState | None:
        return self.value(self.tables.sagas, order_id)

    def ledger(self, store_id: str) -> StoreStock:
        entry = self.value(self.tables.stock.entries, store_id)
        return StoreStock() if entry is None else entry.ledger

    def reservations(self, store_id: str) -> dict[str, Reservation]:
        return self.records(self.tables.stock.records, store_id)

    def account(self, customer_id: str) -> PointsAccount:
        entry = self.value(self.tables.points.entries, customer_id)
        return PointsAccount() if entry is None else entry.account

    def holds(self, customer_id: str) -> dict[str, Hold]:
        return self.records(self.tables.points.records, customer_id)

    def payment(self, order_id: str) -> Payment | None:
        return self.value(self.tables.payments, order_id)


def _counts(line: r.StockLevelChanged) -> tuple[int, int, int, bool]:
    """What a stock line says of its item (the version aside)."""
    return line.on_hand, line.reserved, line.sold, line.unlimited


@functools.cache
def _partition(key: str) -> int:
    """The partition of a key, as Kafka's default partitioner gives it."""
    return t.partition_for(key.encode(), PARTITIONS)


def _to_the_end(step: Awaitable[None]) -> None:
    """Run a handler whose awaits never wait (the gateway answers at once) to its end."""
    steps = step.__await__()
    try:
        next(steps)
    except StopIteration:
        return
    steps.close()
    raise AssertionError("a handler waited on something")
