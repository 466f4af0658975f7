"""The changelog-backed tables, declared once, with typed access to their immutable values.

| table    | key                          | value          | written by    |
|----------|------------------------------|----------------|---------------|
| sagas    | order_id                     | SagaState      | orchestrator  |
| stock    | ledger/store_id              | StockEntry     | orchestrator  |
|          | order/store_id/order_id      | Reservation    |               |
|          | adjusted/store_id/event_id   | Adjusted       |               |
| points   | account/customer_id          | PointsEntry    | points        |
|          | order/customer_id/order_id   | Hold           |               |
|          | adjusted/customer_id/event_id| Adjusted       |               |
| payments | order_id                     | Payment        | payment       |

A table is written only by the handler that consumes its key, through the runtime
(``eatcloud.runtime``): each key once per unit, in the partition of the input record that
changed it, so per-order records live in the partition of their store or customer. Values
are JSON bytes, always replaced whole.

Crash consistency: a unit's effect must be all or nothing in the changelog, which is what a
worker recovers from. The payment handler writes one self-contained value per order; the
orchestrator writes the saga's (and its stock steps' in the stock table: another changelog,
so a replay applies those steps again, see ``orchestrator.handle``). Stock steps and the
points handler change an owner's value *and* orders' records, so both live in
one table (one changelog partition, where writes land in order). The owner's value is written
first in a unit and carries every order record the unit changed for it (``last``); a crash can
only cut the unit's writes short, and the next load of the owner writes any missing record
back from ``last`` before the unit is run again.

Adjustments (stock deliveries, points grants and take-backs) belong to no order. Each one
applied leaves a marker (``adjusted/<owner>/<event_id>``, kept for good: adjustments are rare
next to orders), so a redelivered adjustment is recognised however long ago it was applied.
The marker rides on the owner's value like an order's record: ``adjusted`` lists the unit's
own adjustments, and the next load writes back any marker a crash cut off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from eatcloud.domain.payment import Payment
from eatcloud.domain.points import Hold, PointsAccount
from eatcloud.domain.saga import SagaState
from eatcloud.domain.stock import Reservation, StoreStock
from eatcloud.streams.codec import encode

if TYPE_CHECKING:
    from eatcloud.runtime.adapter import Context, Runtime

V = TypeVar("V", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)


class RecordTable(Generic[V]):
    """A Faust table (or the keys under ``prefix`` of one) holding one pydantic model per key."""

    def __init__(self, name: str, table: Any, model: type[V], prefix: str = "") -> None:
        self.name = name
        self.table = table
        self.model = model
        self.prefix = prefix

    def under(self, model: type[R], prefix: str) -> RecordTable[R]:
        """The keys under ``prefix`` of the same Faust table, holding ``model`` values."""
        return RecordTable(self.name, self.table, model, prefix)

    def decode(self, raw: bytes) -> V:
        return self.model.model_validate_json(raw)

    def encode(self, value: V | None) -> bytes | None:
        return None if value is None else encode(value)

    def get(self, key: str) -> V | None:
        """Faust's own read, outside of a unit (timers' rebuilds, operators, tests)."""
        raw = self.table.get(self.prefix + key)
        return None if raw is None else self.decode(raw)

    def items(self) -> list[tuple[str, V]]:
        """Every (key, value) under the prefix in this worker's active partitions."""
        n = len(self.prefix)
        return [(k[n:], self.decode(v)) for k, v in self.table.items() if k.startswith(self.prefix)]


class Adjusted(BaseModel):
    """The marker of an adjustment that was applied (its key carries the event id)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


APPLIED = Adjusted()


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    unit: str = ""  # the unit that wrote ``last`` and ``adjusted``
    adjusted: tuple[str, ...] = ()  # the adjustments that unit applied
    # Written by versions that kept only the last 64 adjustment ids, instead of markers:
    # still recognised, never added to.
    recent: tuple[str, ...] = ()


class StockEntry(_Entry):
    ledger: StoreStock = StoreStock()
    last: dict[str, Reservation] = {}


class PointsEntry(_Entry):
    account: PointsAccount = PointsAccount()
    version: int = 0  # one more with each change of ``account`` (each points-events record)
    last: dict[str, Hold] = {}


E = TypeVar("E", StockEntry, PointsEntry)


class OwnedRecords(Generic[E, R]):
    """An owner's value and its per-order records, in one table; see the module docstring."""

    def __init__(self, table: RecordTable[Any], entry: type[E], record: type[R], kind: str):
        self.entries: RecordTable[E] = table.under(entry, f"{kind}/")
        self.records: RecordTable[R] = table.under(record, "order/")
        self.markers: RecordTable[Adjusted] = table.under(Adjusted, "adjusted/")
        self.entry_model: type[E] = entry

    def load(self, ctx: Context, owner: str) -> E:
        """The owner's value; first writes back the records and adjustment markers a crash
        may have cut off."""
        entry = ctx.get(self.entries, owner)
        if entry is None:
            return self.entry_model()
        if entry.unit != ctx.unit.id:
            for order_id, record in entry.last.items():
                key = scoped(owner, order_id)
                if ctx.get(self.records, key) != record:
                    ctx.put(self.records, key, cast(R, record))  # E.last holds R values
            for event_id in entry.adjusted:
                key = scoped(owner, event_id)
                if ctx.get(self.markers, key) is None:
                    ctx.put(self.markers, key, APPLIED)
        return entry

    def adjusted(self, ctx: Context, owner: str, entry: E, event_id: str) -> bool:
        """Whether the owner has applied this adjustment already, ever."""
        if event_id in entry.recent or (entry.unit == ctx.unit.id and event_id in entry.adjusted):
            return True
        return ctx.get(self.markers, scoped(owner, event_id)) is not None

    def save_adjusted(self, ctx: Context, owner: str, entry: E, event_id: str) -> E:
        """Write the owner's value after an adjustment, then the adjustment's marker."""
        mine = entry.unit == ctx.unit.id
        entry = entry.model_copy(
            update={
                "last": dict(entry.last) if mine else {},
                "adjusted": (*entry.adjusted, event_id) if mine else (event_id,),
                "unit": ctx.unit.id,
            }
        )
        ctx.put(self.entries, owner, entry)
        ctx.put(self.markers, scoped(owner, event_id), APPLIED)
        return entry

    def record(self, ctx: Context, owner: str, order_id: str) -> R | None:
        return ctx.get(self.records, scoped(owner, order_id))

    def forget(self, ctx: Context, owner: str, order_id: str) -> None:
        """Delete an order's record, and drop it from the owner's ``last`` so that no later
        load writes it back. A crash between the two writes leaves the finished record in
        place (garbage, never a wrong ledger)."""
        entry = self.load(ctx, owner)
        if order_id in entry.last:
            last = {k: v for k, v in entry.last.items() if k != order_id}
            ctx.put(self.entries, owner, entry.model_copy(update={"last": last}))
        if self.record(ctx, owner, order_id) is not None:
            ctx.put(self.records, scoped(owner, order_id), None)

    def save(self, ctx: Context, owner: str, entry: E, order_id: str | None, record: R | None) -> E:
        """Write the owner's value (carrying the unit's changed records), then the record."""
        mine = entry.unit == ctx.unit.id
        last: dict[str, Any] = dict(entry.last) if mine else {}
        if record is not None and order_id is not None:
            last[order_id] = record
        adjusted = entry.adjusted if mine else ()
        entry = entry.model_copy(update={"last": last, "adjusted": adjusted, "unit": ctx.unit.id})
        ctx.put(self.entries, owner, entry)
        if record is not None and order_id is not None:
            ctx.put(self.records, scoped(owner, order_id), record)
        return entry


@dataclass(frozen=True)
class Tables:
    sagas: RecordTable[SagaState]
    stock: OwnedRecords[StockEntry, Reservation]
    points: OwnedRecords[PointsEntry, Hold]
    payments: RecordTable[Payment]


# What `faust -A eatcloud.app tables` says about each table.
_HELP = {
    "sagas": "order sagas by order_id (orchestrator)",
    "stock": "stock ledgers by store and reservations by order (orchestrator)",
    "points": "points accounts by customer and holds by order (points handler)",
    "payments": "payments by order_id (payment handler)",
}


def declare(runtime: Runtime) -> Tables:
    def table(name: str, model: type[V]) -> RecordTable[V]:
        return runtime.table(name, model, _HELP[name])

    return Tables(
        sagas=table("sagas", SagaState),
        stock=OwnedRecords(table("stock", StoreStock), StockEntry, Reservation, "ledger"),
        points=OwnedRecords(table("points", PointsAccount), PointsEntry, Hold, "account"),
        payments=table("payments", Payment),
    )


def scoped(owner: str, order_id: str) -> str:
    """The key of an order's record inside its owner's (store's, customer's) partition."""
    return f"{owner}/{order_id}"
