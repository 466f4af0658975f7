"""The changelog-backed tables, declared once, with typed access to their immutable values.

| table    | key                          | value          | written by    |
|----------|------------------------------|----------------|---------------|
| sagas    | order_id                     | SagaState      | orchestrator  |
| stock    | ledger/store_id              | StockEntry     | stock agent   |
|          | order/store_id/order_id      | Reservation    |               |
| points   | account/customer_id          | PointsEntry    | points agent  |
|          | hold/customer_id/order_id    | Hold           |               |
| payments | order_id                     | Payment        | payment agent |

A table is written only inside the agent that consumes its key: Faust writes a change to the
changelog partition of the event being processed, so per-order records live in the partition
of their store or customer. Values are JSON bytes, always replaced whole (``table[k] = new``).

Crash consistency: a message's effect must be all or nothing in the changelog, which is what a
worker recovers from. The saga and payment agents write one value per message. The stock and
points agents change an owner's value *and* an order's record, so both live in one table (one
changelog partition, where writes land in order) and the owner's value is written first and
carries the order's new record as ``last``. A crash can only cut between the two writes of the
last message, and the next message for that owner writes the missing record from ``last``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from eatcloud.domain.payment import Payment
from eatcloud.domain.points import Hold, PointsAccount
from eatcloud.domain.saga import SagaState
from eatcloud.domain.stock import Reservation, StoreStock
from eatcloud.streams.codec import encode

V = TypeVar("V", bound=BaseModel)
R = TypeVar("R", bound=BaseModel)

# Adjustments (stock deliveries, points grants) have no order record; the owner's value keeps
# the ids of its most recent ones, so a replayed adjustment is recognised and skipped.
RECENT_ADJUSTMENTS = 64


class RecordTable(Generic[V]):
    """A Faust table (or the keys under ``prefix`` of one) holding one pydantic model per key."""

    def __init__(self, table: Any, model: type[V], prefix: str = "") -> None:
        self.table = table
        self.model = model
        self.prefix = prefix

    def get(self, key: str) -> V | None:
        raw = self.table.get(self.prefix + key)
        return None if raw is None else self.model.model_validate_json(raw)

    def raw(self, key: str) -> bytes | None:
        value: bytes | None = self.table.get(self.prefix + key)
        return value

    def put(self, key: str, value: V) -> None:
        self.table[self.prefix + key] = encode(value)

    def items(self) -> list[tuple[str, V]]:
        """Every (key, value) under the prefix in this worker's active partitions."""
        n = len(self.prefix)
        return [
            (k[n:], self.model.model_validate_json(v))
            for k, v in self.table.items()
            if k.startswith(self.prefix)
        ]


class _Entry(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    last_order: str | None = None
    recent: tuple[str, ...] = ()

    def seen(self, event_id: str) -> bool:
        return event_id in self.recent

    def remembering(self, event_id: str) -> tuple[str, ...]:
        return (*self.recent, event_id)[-RECENT_ADJUSTMENTS:]


class StockEntry(_Entry):
    ledger: StoreStock = StoreStock()
    last: Reservation | None = None


class PointsEntry(_Entry):
    account: PointsAccount = PointsAccount()
    last: Hold | None = None


E = TypeVar("E", StockEntry, PointsEntry)


class OwnedRecords(Generic[E, R]):
    """An owner's value and its per-order records, in one table; see the module docstring."""

    def __init__(self, table: Any, entry: type[E], record: type[R], kind: str) -> None:
        self.entries: RecordTable[E] = RecordTable(table, entry, f"{kind}/")
        self.records: RecordTable[R] = RecordTable(table, record, "order/")
        self.entry_model: type[E] = entry

    def load(self, owner: str) -> E:
        """The owner's value; first writes the record a crash may have cut off after it."""
        entry = self.entries.get(owner)
        if entry is None:
            return self.entry_model()
        if entry.last_order is not None and entry.last is not None:
            key = scoped(owner, entry.last_order)
            if self.records.raw(key) != encode(entry.last):
                self.records.put(key, cast(R, entry.last))
        return entry

    def record(self, owner: str, entry: E, order_id: str) -> R | None:
        if entry.last_order == order_id:
            return cast(R, entry.last)  # E.last is R for our (entry, record) pairs
        return self.records.get(scoped(owner, order_id))

    def save(self, owner: str, entry: E, order_id: str | None = None, record: R | None = None) -> E:
        """Write the owner's value, then the order's record (if it changed)."""
        if record is not None:
            entry = entry.model_copy(update={"last_order": order_id, "last": record})
        self.entries.put(owner, entry)
        if record is not None and order_id is not None:
            self.records.put(scoped(owner, order_id), record)
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
    "stock": "stock ledgers by store and reservations by order (stock agent)",
    "points": "points accounts by customer and holds by order (points agent)",
    "payments": "payments by order_id (payment agent)",
}


def declare(app: Any, partitions: int) -> Tables:
    def table(name: str) -> Any:
        # bytes values: Faust stores and logs them as they are (serializer "raw").
        return app.Table(
            name, partitions=partitions, key_type=str, value_type=bytes, help=_HELP[name]
        )

    return Tables(
        sagas=RecordTable(table("sagas"), SagaState),
        stock=OwnedRecords(table("stock"), StockEntry, Reservation, "ledger"),
        points=OwnedRecords(table("points"), PointsEntry, Hold, "account"),
        payments=RecordTable(table("payments"), Payment),
    )


def scoped(owner: str, order_id: str) -> str:
    """The key of an order's record inside its owner's (store's, customer's) partition."""
    return f"{owner}/{order_id}"
