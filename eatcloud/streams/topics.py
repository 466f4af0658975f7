"""Every topic of the platform, declared once, and which topic and key each record goes to.

| topic            | key         | carries                                                   |
|------------------|-------------|-----------------------------------------------------------|
| order-commands   | store_id    | PlaceOrder, CancelOrder, AcceptOrder, CompleteOrder, Timeout |
| saga-replies     | store_id    | payment and points replies (PaymentDeclined, ...)          |
| order-events     | order_id    | the order's history: OrderPlaced ... OrderCancelled        |
| stock-commands   | store_id    | AdjustStock, ExpireReservations                            |
| stock-events     | store_id    | StockLevelsChanged, one per stock command (its lines)      |
| payment-commands | order_id    | AuthorizePayment, VoidPayment, RefundPayment, ForgetPayment |
| points-commands  | customer_id | ReservePoints, DeductPoints, ReleasePoints, AdjustPoints,  |
|                  |             | EarnPoints, ForgetPoints                                   |
| points-events    | customer_id | PointsChanged, one per change of a customer's points       |
| <input>-dlq      | as input    | poison messages, with error headers and coordinates        |

``order-events``, ``stock-events`` and ``points-events`` keep every event (retention.ms=-1,
retention.bytes=-1, cleanup.policy=delete): they are the source of truth that rebuilds replay
from offset 0.

``order-commands``, ``saga-replies`` and ``stock-commands`` share key (the store) and
partition count, so one agent reads all three: a store's sagas and its stock ledger live in
the same partition, and reserving, committing and releasing stock are local steps of the
saga (see docs/saga.md). Values are JSON bytes (see ``codec``); keys are UTF-8 text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiokafka.partitioner import murmur2

from eatcloud.streams import records as r

ORDER_COMMANDS = "order-commands"
SAGA_REPLIES = "saga-replies"
ORDER_EVENTS = "order-events"
STOCK_COMMANDS = "stock-commands"
STOCK_EVENTS = "stock-events"
PAYMENT_COMMANDS = "payment-commands"
POINTS_COMMANDS = "points-commands"
POINTS_EVENTS = "points-events"
INPUTS = (ORDER_COMMANDS, SAGA_REPLIES, STOCK_COMMANDS, PAYMENT_COMMANDS, POINTS_COMMANDS)
ALL = (*INPUTS, ORDER_EVENTS, STOCK_EVENTS, POINTS_EVENTS)
# The event log, the source of truth: it keeps every event (``streams.retention``).
EVENT_LOG = (ORDER_EVENTS, STOCK_EVENTS, POINTS_EVENTS)
KEEP_FOREVER = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}


def configs(topic: str) -> dict[str, str]:
    """The topic-level settings a platform topic (unprefixed name) is created with."""
    return dict(KEEP_FOREVER) if topic in EVENT_LOG else {}


def dlq(topic: str) -> str:
    return f"{topic}-dlq"


_ROUTES: dict[type[r.Record], tuple[str, str]] = {
    **{k: (ORDER_COMMANDS, "store_id") for k in (r.PlaceOrder, r.CancelOrder, r.AcceptOrder)},
    **{k: (ORDER_COMMANDS, "store_id") for k in (r.CompleteOrder, r.Timeout)},
    **{k: (POINTS_COMMANDS, "customer_id") for k in (r.ReservePoints, r.DeductPoints)},
    **{k: (POINTS_COMMANDS, "customer_id") for k in (r.ReleasePoints, r.AdjustPoints)},
    **{k: (POINTS_COMMANDS, "customer_id") for k in (r.EarnPoints, r.ForgetPoints)},
    r.PointsChanged: (POINTS_EVENTS, "customer_id"),
    **{k: (STOCK_COMMANDS, "store_id") for k in (r.ReserveStock, r.CommitStock)},
    **{k: (STOCK_COMMANDS, "store_id") for k in (r.ReleaseStock, r.AdjustStock)},
    r.ExpireReservations: (STOCK_COMMANDS, "store_id"),
    **{k: (PAYMENT_COMMANDS, "order_id") for k in (r.AuthorizePayment, r.VoidPayment)},
    **{k: (PAYMENT_COMMANDS, "order_id") for k in (r.RefundPayment, r.ForgetPayment)},
    r.StockLevelChanged: (STOCK_EVENTS, "store_id"),
    r.StockLevelsChanged: (STOCK_EVENTS, "store_id"),
}


def route(record: r.Record) -> tuple[str, str]:
    """The (topic, key) a record is sent to, without prefix."""
    kind = type(record)
    if kind in _ROUTES:
        topic, key_field = _ROUTES[kind]
    elif isinstance(record, r.Reply):
        topic, key_field = SAGA_REPLIES, "store_id"
    elif isinstance(record, r.OrderEvent):
        topic, key_field = ORDER_EVENTS, "order_id"
    else:
        raise TypeError(f"no topic for {kind.__name__}")
    key = str(getattr(record, key_field))
    if not key:
        raise ValueError(f"{kind.__name__} {record.event_id} has no {key_field}: no partition")
    return topic, key


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (aiokafka's, Faust's) gives ``key``."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


@dataclass(frozen=True)
class TopicNames:
    """The real names, with the deployment's prefix (empty in production)."""

    prefix: str = ""

    def __call__(self, topic: str) -> str:
        return f"{self.prefix}{topic}"

    def all(self) -> list[str]:
        return [self(t) for t in ALL] + [self(dlq(t)) for t in INPUTS]


def declare(app: Any, names: TopicNames, partitions: int) -> dict[str, Any]:
    """Faust topics for every name (raw bytes in and out), keyed by unprefixed name; the
    event log's are created to keep every event."""
    return {
        topic: app.topic(
            names(topic),
            partitions=partitions,
            key_type=str,
            key_serializer="raw",
            value_serializer="raw",
            internal=True,
            config=configs(topic),
        )
        for topic in [*ALL, *(dlq(t) for t in INPUTS)]
    }
