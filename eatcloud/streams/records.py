"""The records that travel on our topics: commands, replies and events (JSON, versioned).

Every record carries the envelope ``event_id`` / ``occurred_at`` / ``schema_version`` and a
``type`` that names it. Commands are imperative (``ReserveStock``), replies are named for their
outcome (``StockRejected``), events are in the past tense (``OrderPaid``). Records are
immutable; a change of meaning gets a new record, never a renamed one. Amounts are integers in
the currency's minor unit (won, cents), so no float ever touches money.

This module is pure data (pydantic only, no Faust): the domain imports it.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Iterable
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

# Ids are keys and parts of keys ("store/order"), so they hold no "/" and no whitespace.
Id = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[^/\s]+$")]
# An id that may be left empty where a record is also used outside the saga (tests, tools);
# ``topics.route`` refuses to send a saga input without its partition key.
OptionalId = Annotated[str, Field(max_length=64, pattern=r"^[^/\s]*$")]
Quantity = Annotated[int, Field(ge=1, le=10_000)]
Amount = Annotated[int, Field(ge=0, le=100_000_000_000)]


def new_id() -> str:
    return uuid.uuid4().hex


def derived_id(parent: str, tag: str) -> str:
    """A deterministic id from a parent id: replaying the same input yields the same output ids,
    so consumers that dedupe by ``event_id`` see a re-sent output as the duplicate it is.

    A 128-bit BLAKE2b of ``parent/tag`` as 32 hex digits, the shape of ``new_id``: about 1 µs
    here against 8 µs for ``uuid5``, and the saga derives about fifteen ids per order. (Ids
    derived before this change were uuid5s: drain the saga topics before upgrading, as
    docs/saga.md says for every change of the saga's records.)
    """
    return hashlib.blake2b(f"{parent}/{tag}".encode(), digest_size=16).hexdigest()


def reply_id(command: Any) -> str:
    """The id of the reply to ``command``: the saga knows it in advance, and takes no other."""
    return derived_id(command.event_id, "reply")


def reply_ids(command: Any) -> dict[str, Any]:
    """The envelope of a participant's reply: the same command always gets the same id, and
    the reply goes to the partition of the saga that sent the command (its store)."""
    return {
        "event_id": reply_id(command),
        "order_id": command.order_id,
        "store_id": command.store_id,
    }


class Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")

    event_id: Id = Field(default_factory=new_id)
    occurred_at: float = Field(default_factory=time.time)
    schema_version: int = 1


class OrderType(StrEnum):
    DELIVERY = "DELIVERY"
    PICKUP = "PICKUP"


class Actor(StrEnum):
    CUSTOMER = "CUSTOMER"
    STORE = "STORE"
    ADMIN = "ADMIN"


class OrderLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    menu_id: Id
    quantity: Quantity
    unit_price: Amount  # the menu's price plus the chosen options' deltas
    # The names of the chosen options (eatcloud.domain.options), for display. Left out of the
    # JSON when empty, so a line without options is the record it was before options existed.
    options: tuple[Annotated[str, Field(min_length=1, max_length=50)], ...] = Field(
        default=(), max_length=200, exclude_if=lambda names: not names
    )


class StockLine(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    menu_id: Id
    quantity: Quantity


# --- order-commands (key: store_id) -------------------------------------------------------


class PlaceOrder(Record):
    type: Literal["PlaceOrder"] = "PlaceOrder"
    order_id: Id
    customer_id: Id
    store_id: Id
    lines: tuple[OrderLine, ...] = Field(min_length=1, max_length=100)
    points: Amount = 0
    order_type: OrderType = OrderType.DELIVERY

    @model_validator(mode="after")
    def _check(self) -> PlaceOrder:
        # One menu may be on several lines with different options (one large, one small).
        kinds = [(line.menu_id, line.options, line.unit_price) for line in self.lines]
        if len(set(kinds)) != len(kinds):
            raise ValueError("each menu_id, options and unit_price may appear on one line only")
        if self.points > self.total_amount:
            raise ValueError("points may not exceed the order total")
        return self

    @property
    def total_amount(self) -> int:
        return sum(line.unit_price * line.quantity for line in self.lines)

    @property
    def final_amount(self) -> int:
        return self.total_amount - self.points

    @property
    def stock_lines(self) -> tuple[StockLine, ...]:
        """One line per menu, its lines' quantities summed: stock is counted per menu whatever
        the options, and the stock ledger takes each menu once per reservation."""
        quantities: dict[str, int] = {}
        for ln in self.lines:
            quantities[ln.menu_id] = quantities.get(ln.menu_id, 0) + ln.quantity
        return tuple(StockLine(menu_id=m, quantity=q) for m, q in quantities.items())


class CancelOrder(Record):
    type: Literal["CancelOrder"] = "CancelOrder"
    order_id: Id
    store_id: Id  # the saga's partition key
    by: Actor
    reason: str = Field(default="", max_length=500)


class AcceptOrder(Record):
    type: Literal["AcceptOrder"] = "AcceptOrder"
    order_id: Id
    store_id: Id


class CompleteOrder(Record):
    type: Literal["CompleteOrder"] = "CompleteOrder"
    order_id: Id
    store_id: Id


class Timeout(Record):
    """Sent by the saga timer when a step's deadline passed; stale ones are ignored."""

    type: Literal["Timeout"] = "Timeout"
    order_id: Id
    store_id: Id  # the saga's partition key
    step: str
    deadline: float


OrderCommand = Annotated[
    PlaceOrder | CancelOrder | AcceptOrder | CompleteOrder | Timeout, Field(discriminator="type")
]

# --- participant commands -----------------------------------------------------------------


class ReservePoints(Record):
    type: Literal["ReservePoints"] = "ReservePoints"
    order_id: Id
    store_id: OptionalId = ""  # copied into the reply, which goes to the saga's partition
    customer_id: Id
    amount: Amount


class DeductPoints(Record):
    type: Literal["DeductPoints"] = "DeductPoints"
    order_id: Id
    store_id: OptionalId = ""  # copied into the reply, which goes to the saga's partition
    customer_id: Id


class ReleasePoints(Record):
    type: Literal["ReleasePoints"] = "ReleasePoints"
    order_id: Id
    store_id: OptionalId = ""  # copied into the reply, which goes to the saga's partition
    customer_id: Id


class AdjustPoints(Record):
    """Grant (positive) or take away (negative) points outside any order."""

    type: Literal["AdjustPoints"] = "AdjustPoints"
    customer_id: Id
    delta: int
    reason: str = Field(default="", max_length=200)


class EarnPoints(Record):
    """The order completed: its customer earns ``amount`` points, once per order (the order's
    hold record says so). No reply: the saga has ended."""

    type: Literal["EarnPoints"] = "EarnPoints"
    order_id: Id
    store_id: OptionalId = ""
    customer_id: Id
    amount: Amount


class ForgetPoints(Record):
    """The order's saga has finished and left its table: its points hold may go too."""

    type: Literal["ForgetPoints"] = "ForgetPoints"
    order_id: Id
    store_id: OptionalId = ""
    customer_id: Id


PointsCommand = Annotated[
    ReservePoints | DeductPoints | ReleasePoints | AdjustPoints | EarnPoints | ForgetPoints,
    Field(discriminator="type"),
]


class ReserveStock(Record):
    type: Literal["ReserveStock"] = "ReserveStock"
    order_id: Id
    store_id: Id
    lines: tuple[StockLine, ...] = Field(min_length=1, max_length=100)


class CommitStock(Record):
    type: Literal["CommitStock"] = "CommitStock"
    order_id: Id
    store_id: Id


class ReleaseStock(Record):
    type: Literal["ReleaseStock"] = "ReleaseStock"
    order_id: Id
    store_id: Id
    reason: str = ""


class AdjustStock(Record):
    """The store's own stock change: a delivery (+), a write-off (-), or a switch to unlimited."""

    type: Literal["AdjustStock"] = "AdjustStock"
    store_id: Id
    menu_id: Id
    delta: int = Field(default=0, ge=-1_000_000, le=1_000_000)
    unlimited: bool | None = None
    reason: str = Field(default="", max_length=200)


class ExpireReservations(Record):
    """Sent by the stock timer: release these reservations if their TTL passed by ``now``."""

    type: Literal["ExpireReservations"] = "ExpireReservations"
    store_id: Id
    now: float
    order_ids: tuple[Id, ...] = Field(max_length=1000)


StockCommand = Annotated[
    ReserveStock | CommitStock | ReleaseStock | AdjustStock | ExpireReservations,
    Field(discriminator="type"),
]


class AuthorizePayment(Record):
    type: Literal["AuthorizePayment"] = "AuthorizePayment"
    order_id: Id
    store_id: OptionalId = ""  # copied into the reply, which goes to the saga's partition
    customer_id: Id
    amount: Amount


class VoidPayment(Record):
    type: Literal["VoidPayment"] = "VoidPayment"
    order_id: Id
    store_id: OptionalId = ""  # copied into the reply, which goes to the saga's partition


class RefundPayment(Record):
    type: Literal["RefundPayment"] = "RefundPayment"
    order_id: Id
    store_id: OptionalId = ""  # copied into the reply, which goes to the saga's partition


class ForgetPayment(Record):
    """The order's saga has finished and left its table: its payment record may go too."""

    type: Literal["ForgetPayment"] = "ForgetPayment"
    order_id: Id
    store_id: OptionalId = ""


PaymentCommand = Annotated[
    AuthorizePayment | VoidPayment | RefundPayment | ForgetPayment, Field(discriminator="type")
]

SagaCommand = Annotated[
    ReservePoints
    | DeductPoints
    | ReleasePoints
    | ReserveStock
    | CommitStock
    | ReleaseStock
    | AuthorizePayment
    | VoidPayment
    | RefundPayment
    | EarnPoints,
    Field(discriminator="type"),
]
"""Every command the saga sends to a participant."""

# --- saga-replies (key: store_id) ---------------------------------------------------------


class Reply(Record):
    order_id: Id
    store_id: OptionalId = ""  # the saga's partition key (from the command it answers)


class PointsReserved(Reply):
    type: Literal["PointsReserved"] = "PointsReserved"


class PointsRejected(Reply):
    type: Literal["PointsRejected"] = "PointsRejected"
    reason: str


class PointsDeducted(Reply):
    type: Literal["PointsDeducted"] = "PointsDeducted"


class PointsReleased(Reply):
    type: Literal["PointsReleased"] = "PointsReleased"


class StockReserved(Reply):
    type: Literal["StockReserved"] = "StockReserved"


class StockRejected(Reply):
    type: Literal["StockRejected"] = "StockRejected"
    reason: str
    short: tuple[str, ...] = ()


class StockCommitted(Reply):
    type: Literal["StockCommitted"] = "StockCommitted"


class StockCommitRejected(Reply):
    type: Literal["StockCommitRejected"] = "StockCommitRejected"
    reason: str


class StockReleased(Reply):
    type: Literal["StockReleased"] = "StockReleased"


class PaymentAuthorized(Reply):
    type: Literal["PaymentAuthorized"] = "PaymentAuthorized"
    amount: Amount
    authorization_id: Id


class PaymentDeclined(Reply):
    type: Literal["PaymentDeclined"] = "PaymentDeclined"
    reason: str


class PaymentVoided(Reply):
    type: Literal["PaymentVoided"] = "PaymentVoided"


class PaymentRefunded(Reply):
    type: Literal["PaymentRefunded"] = "PaymentRefunded"


SagaReply = Annotated[
    PointsReserved
    | PointsRejected
    | PointsDeducted
    | PointsReleased
    | StockReserved
    | StockRejected
    | StockCommitted
    | StockCommitRejected
    | StockReleased
    | PaymentAuthorized
    | PaymentDeclined
    | PaymentVoided
    | PaymentRefunded,
    Field(discriminator="type"),
]

# --- order-events (key: order_id): the order's event-sourced history ----------------------


class OrderEvent(Record):
    order_id: Id
    customer_id: Id
    store_id: Id


class OrderPlaced(OrderEvent):
    type: Literal["OrderPlaced"] = "OrderPlaced"
    lines: tuple[OrderLine, ...]
    points: Amount
    total_amount: Amount
    final_amount: Amount
    order_type: OrderType


class OrderPaid(OrderEvent):
    type: Literal["OrderPaid"] = "OrderPaid"
    amount: Amount
    authorization_id: str | None


class OrderAccepted(OrderEvent):
    type: Literal["OrderAccepted"] = "OrderAccepted"


class OrderCompleted(OrderEvent):
    type: Literal["OrderCompleted"] = "OrderCompleted"


class OrderCancelled(OrderEvent):
    type: Literal["OrderCancelled"] = "OrderCancelled"
    reason: str
    by: Actor | None = None
    refunded: bool = False


class OrderRejected(OrderEvent):
    type: Literal["OrderRejected"] = "OrderRejected"
    reason: str


OrderEventRecord = Annotated[
    OrderPlaced | OrderPaid | OrderAccepted | OrderCompleted | OrderCancelled | OrderRejected,
    Field(discriminator="type"),
]

# --- stock-events (key: store_id): one event per stock command ------------------------------


class StockChange(StrEnum):
    RESERVED = "reserved"
    COMMITTED = "committed"
    RELEASED = "released"
    RETURNED = "returned"
    EXPIRED = "expired"
    ADJUSTED = "adjusted"
    INSUFFICIENT = "insufficient"


class StockLevelChanged(Record):
    """One ledger line after a change; ``quantity`` is signed for adjustments.

    Written one per line until issue 11; still read (``stock_lines``), never written now: a
    command's lines travel together in one ``StockLevelsChanged``, and ``stock_lines`` gives
    its lines in this shape, with their ``version`` (see ``StockLevel``; None on the events
    written one per line: they had none).
    """

    type: Literal["StockLevelChanged"] = "StockLevelChanged"
    store_id: Id
    menu_id: Id
    change: StockChange
    quantity: int
    order_id: str | None = None
    unlimited: bool = False
    on_hand: int
    reserved: int
    sold: int
    version: int | None = None


class StockLevel(BaseModel):
    """One ledger line of a ``StockLevelsChanged``, after the command.

    ``version`` is the item's version after the line (``domain.stock``): one more than the
    item's line before it when the line changed the item, so an item's lines count 1, 2, 3,
    ... in the order of the log; a line that changed nothing repeats it (``insufficient``, a
    probe: an adjustment by 0 that changes no flag, the lines of an order reserved while the
    item was unlimited). None on events written before items had versions (readers take both).
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    menu_id: Id
    change: StockChange
    quantity: int
    unlimited: bool = False
    on_hand: int
    reserved: int
    sold: int
    version: int | None = None


class StockLevelsChanged(Record):
    """What one stock command did to a store's ledger: every line it touched, after it.

    One event per command (a reservation of three lines is one record, not three), so the
    saga sends and the projections read a record per command. ``stock_lines`` gives its lines
    as ``StockLevelChanged`` views with the ids the per-line events had.
    """

    type: Literal["StockLevelsChanged"] = "StockLevelsChanged"
    store_id: Id
    order_id: str | None = None
    lines: tuple[StockLevel, ...] = Field(min_length=1)


StockEventRecord = Annotated[StockLevelChanged | StockLevelsChanged, Field(discriminator="type")]


# --- points-events (key: customer_id): one event per change of a customer's points ----------


class PointsChange(StrEnum):
    RESERVED = "RESERVED"  # held for an order (balance unchanged, held up)
    DEDUCTED = "DEDUCTED"  # an order was paid with held points
    RELEASED = "RELEASED"  # an order's hold dropped (cancelled or rejected before payment)
    RETURNED = "RETURNED"  # spent points given back (an order cancelled after payment)
    EARNED = "EARNED"  # an order completed
    GRANTED = "GRANTED"  # an admin gave points
    TAKEN = "TAKEN"  # an admin took points back
    REFUSED = "REFUSED"  # an admin's take-back that would leave less than is held: no change


class PointsChanged(Record):
    """A customer's points after one points command: what changed (``delta`` to the balance,
    ``held_delta`` to the points held for orders) and the whole account after it, with the
    account's ``version`` (each change adds one), so a read model applies only what is newer.
    The id is derived from the command's: a redelivered command's event is a duplicate."""

    type: Literal["PointsChanged"] = "PointsChanged"
    customer_id: Id
    change: PointsChange
    delta: int = 0
    held_delta: int = 0
    balance: int
    held: int
    version: int
    order_id: OptionalId = ""
    reason: str = Field(default="", max_length=200)


PointsEventRecord = Annotated[PointsChanged, Field(discriminator="type")]


def line_id(event_id: str, n: int) -> str:
    """The id of the ``n``-th line of a ``StockLevelsChanged`` (``stock_lines``)."""
    return derived_id(event_id, f"line/{n}")


def stock_lines(
    events: Iterable[StockLevelChanged | StockLevelsChanged],
) -> list[StockLevelChanged]:
    """Every ledger line of these events, in order, as one ``StockLevelChanged`` each (with the
    deterministic id ``derived_id(event_id, "line/<n>")``, so a redelivered event's lines are
    recognised as the duplicates they are)."""
    out: list[StockLevelChanged] = []
    for event in events:
        if isinstance(event, StockLevelChanged):
            out.append(event)
            continue
        for n, line in enumerate(event.lines):
            out.append(
                StockLevelChanged(
                    event_id=line_id(event.event_id, n),
                    occurred_at=event.occurred_at,
                    store_id=event.store_id,
                    order_id=event.order_id,
                    menu_id=line.menu_id,
                    change=line.change,
                    quantity=line.quantity,
                    unlimited=line.unlimited,
                    on_hand=line.on_hand,
                    reserved=line.reserved,
                    sold=line.sold,
                    version=line.version,
                )
            )
    return out
