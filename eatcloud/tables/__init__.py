"""The changelog-backed tables, declared once, with typed access to their immutable values.

| table          | key                 | value            | written by   |
|----------------|---------------------|------------------|--------------|
| sagas          | order_id            | SagaState        | orchestrator |
| stock          | store_id            | StoreStock       | stock agent  |
| reservations   | store_id/order_id   | Reservation      | stock agent  |
| points         | customer_id         | PointsAccount    | points agent |
| holds          | customer_id/order_id| Hold             | points agent |
| payments       | order_id            | Payment          | payment agent|

A table is written only inside the agent that consumes its key: Faust writes a change to the
changelog partition of the event being processed, so ``store_id/order_id`` keys live in the
partition of their store. Values are JSON bytes and always replaced whole (``table[k] = new``),
so the changelog sees every change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

from eatcloud.domain.payment import Payment
from eatcloud.domain.points import Hold, PointsAccount
from eatcloud.domain.saga import SagaState
from eatcloud.domain.stock import Reservation, StoreStock
from eatcloud.streams.codec import encode

V = TypeVar("V", bound=BaseModel)


class RecordTable(Generic[V]):
    """A Faust table holding one pydantic model per key."""

    def __init__(self, table: Any, model: type[V]) -> None:
        self.table = table
        self.model = model

    def get(self, key: str) -> V | None:
        raw = self.table.get(key)
        return None if raw is None else self.model.model_validate_json(raw)

    def put(self, key: str, value: V) -> None:
        self.table[key] = encode(value)

    def items(self) -> list[tuple[str, V]]:
        """Every (key, value) of this worker's active partitions."""
        return [
            (k.decode() if isinstance(k, bytes) else k, self.model.model_validate_json(v))
            for k, v in self.table.items()
        ]


@dataclass(frozen=True)
class Tables:
    sagas: RecordTable[SagaState]
    stock: RecordTable[StoreStock]
    reservations: RecordTable[Reservation]
    points: RecordTable[PointsAccount]
    holds: RecordTable[Hold]
    payments: RecordTable[Payment]


def declare(app: Any, partitions: int) -> Tables:
    def table(name: str, model: type[V]) -> RecordTable[V]:
        # bytes values: Faust stores and logs them as they are (serializer "raw").
        raw = app.Table(name, partitions=partitions, key_type=str, value_type=bytes)
        return RecordTable(raw, model)

    return Tables(
        sagas=table("sagas", SagaState),
        stock=table("stock", StoreStock),
        reservations=table("reservations", Reservation),
        points=table("points", PointsAccount),
        holds=table("holds", Hold),
        payments=table("payments", Payment),
    )


def scoped(owner: str, order_id: str) -> str:
    """The key of an order's record inside its owner's (store's, customer's) partition."""
    return f"{owner}/{order_id}"
