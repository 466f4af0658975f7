"""The stock ledger of one store: pure functions from (ledger, reservation, command) to outcome.

Per menu item: ``on_hand`` (physically there, reserved units included), ``reserved`` (held
for orders not yet paid) and ``sold``. Invariants, checked by the property tests:
``on_hand + sold == baseline`` (initial stock plus adjustments), ``0 <= reserved <= on_hand``.
Unlimited items keep no counts and always reserve.

Each item has a ``version``: every change to the item's ledger line raises it by exactly one,
line by line (reserve, commit, release, expiry, return, adjustment), so the version counts
the states the line has been in, and consecutive stock lines of an item carry consecutive
versions in the order of the log. A consumer keeps one number per item to skip the lines it
has seen (the checkout's stock gate). A line that leaves the item as it was repeats the
item's current version: an ``insufficient`` refusal, an adjustment by 0 that keeps the
unlimited flag (a probe), and the lines of an order whose units were not counted (the item
was unlimited when reserved). Ledgers stored before versions existed read as version 0.

A reservation covers all lines of one order and is all-or-nothing. Its record (one per order)
is the idempotency key: a repeated command finds the record and changes nothing; releasing an
order that never reserved leaves a RELEASED tombstone so a late reserve cannot resurrect it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict

from eatcloud.streams import records as r
from eatcloud.streams.records import StockChange, StockLine


class _Value(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ItemStock(_Value):
    on_hand: int = 0
    reserved: int = 0
    sold: int = 0
    baseline: int = 0
    unlimited: bool = False
    version: int = 0  # one up on every change of the line above; see the module docstring

    @property
    def available(self) -> int:
        return self.on_hand - self.reserved


class StoreStock(_Value):
    """A store's ledger: the counts of each menu item.

    Open reservations are not listed here: each has its own record (with its expiry), so the
    ledger stays the same size however many orders are in flight.
    """

    items: dict[str, ItemStock] = {}


class ReservationStatus(StrEnum):
    RESERVED = "RESERVED"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"
    REJECTED = "REJECTED"


class Reservation(_Value):
    status: ReservationStatus
    lines: tuple[StockLine, ...] = ()
    expires_at: float = 0.0
    reason: str = ""
    short: tuple[str, ...] = ()
    # Menus that were unlimited when reserved took no units from the counts, so commit and
    # release must leave their counts alone even if the item has been limited since.
    uncounted: tuple[str, ...] = ()


@dataclass(frozen=True)
class LineChange:
    menu_id: str
    change: StockChange
    quantity: int
    item: ItemStock


@dataclass(frozen=True)
class Outcome:
    """What a command did: the new ledger and reservation (None = unchanged) and line changes."""

    store: StoreStock
    reservation: Reservation | None
    changes: tuple[LineChange, ...] = ()
    rejected: str = ""


def _changed(item: ItemStock, **update: int) -> ItemStock:
    """The item with ``update`` applied, its version one up if that changed it."""
    after = item.model_copy(update=update)
    return item if after == item else after.model_copy(update={"version": item.version + 1})


def _with_items(store: StoreStock, items: dict[str, ItemStock]) -> StoreStock:
    """The ledger with ``items`` replaced."""
    return StoreStock(items={**store.items, **items})


def reserve(
    store: StoreStock,
    current: Reservation | None,
    order_id: str,
    lines: tuple[StockLine, ...],
    expires_at: float,
) -> Outcome:
    """Reserve every line or none; a repeated reserve returns the first outcome unchanged."""
    if current is not None:
        return Outcome(store, None)
    need: dict[str, int] = {}  # per menu: two lines of one menu draw on the same units
    for line in lines:
        need[line.menu_id] = need.get(line.menu_id, 0) + line.quantity
    short = tuple(
        menu_id
        for menu_id, quantity in need.items()
        if (item := store.items.get(menu_id)) is None
        or (not item.unlimited and item.available < quantity)
    )
    if short:
        reason = "not_stocked" if any(m not in store.items for m in short) else "out_of_stock"
        changes = tuple(
            LineChange(m.menu_id, StockChange.INSUFFICIENT, m.quantity, store.items[m.menu_id])
            for m in lines
            if m.menu_id in short and m.menu_id in store.items
        )
        rejected = Reservation(status=ReservationStatus.REJECTED, reason=reason, short=short)
        return Outcome(store, rejected, changes, rejected=reason)
    items: dict[str, ItemStock] = {}
    changes_list = []
    for line in lines:
        item = items.get(line.menu_id, store.items[line.menu_id])
        if not item.unlimited:
            item = _changed(item, reserved=item.reserved + line.quantity)
        items[line.menu_id] = item
        changes_list.append(LineChange(line.menu_id, StockChange.RESERVED, line.quantity, item))
    uncounted = tuple(menu_id for menu_id in need if store.items[menu_id].unlimited)
    reservation = Reservation(
        status=ReservationStatus.RESERVED, lines=lines, expires_at=expires_at, uncounted=uncounted
    )
    return Outcome(_with_items(store, items), reservation, tuple(changes_list))


def commit(store: StoreStock, current: Reservation | None, order_id: str) -> Outcome:
    """Turn a held reservation into sold stock; anything else is refused (or a repeat)."""
    if current is None or current.status is not ReservationStatus.RESERVED:
        if current is not None and current.status is ReservationStatus.COMMITTED:
            return Outcome(store, None)
        reason = (
            "reservation_expired" if current and current.reason == "expired" else ("no_reservation")
        )
        return Outcome(store, None, rejected=reason)
    items: dict[str, ItemStock] = {}
    changes = []
    for line in current.lines:
        item = items.get(line.menu_id, store.items[line.menu_id])
        if line.menu_id not in current.uncounted:
            item = _changed(
                item,
                reserved=item.reserved - line.quantity,
                on_hand=item.on_hand - line.quantity,
                sold=item.sold + line.quantity,
            )
        items[line.menu_id] = item
        changes.append(LineChange(line.menu_id, StockChange.COMMITTED, line.quantity, item))
    committed = current.model_copy(update={"status": ReservationStatus.COMMITTED})
    return Outcome(_with_items(store, items), committed, tuple(changes))


def release(store: StoreStock, current: Reservation | None, order_id: str, reason: str) -> Outcome:
    """Give back what an order holds: reserved units, or sold units returned to the shelf.

    Releasing nothing (never reserved, rejected, already released) changes no count; it only
    leaves a tombstone so that a late reserve for this order is refused.
    """
    if current is None or current.status in (ReservationStatus.REJECTED,):
        tombstone = Reservation(status=ReservationStatus.RELEASED, reason=reason)
        return Outcome(store, tombstone if current is None else None)
    if current.status is ReservationStatus.RELEASED:
        return Outcome(store, None)
    was_sold = current.status is ReservationStatus.COMMITTED
    change = (
        StockChange.RETURNED
        if was_sold
        else (StockChange.EXPIRED if reason == "expired" else StockChange.RELEASED)
    )
    items: dict[str, ItemStock] = {}
    changes = []
    for line in current.lines:
        item = items.get(line.menu_id, store.items[line.menu_id])
        if line.menu_id not in current.uncounted:
            q = line.quantity
            update = (
                {"sold": item.sold - q, "on_hand": item.on_hand + q}
                if was_sold
                else {"reserved": item.reserved - q}
            )
            item = _changed(item, **update)
        items[line.menu_id] = item
        changes.append(LineChange(line.menu_id, change, line.quantity, item))
    released = current.model_copy(update={"status": ReservationStatus.RELEASED, "reason": reason})
    return Outcome(_with_items(store, items), released, tuple(changes))


def adjust(store: StoreStock, menu_id: str, delta: int, unlimited: bool | None) -> Outcome:
    """A delivery or write-off; refused if it would take away reserved units."""
    before = store.items.get(menu_id)
    item = ItemStock() if before is None else before
    if unlimited is not None:
        item = item.model_copy(update={"unlimited": unlimited})
    if item.on_hand + delta < item.reserved:
        return Outcome(store, None, rejected="would_remove_reserved_stock")
    item = item.model_copy(
        update={"on_hand": item.on_hand + delta, "baseline": item.baseline + delta}
    )
    if item != before:  # a new item, new counts or a new flag (not a probe)
        item = item.model_copy(update={"version": item.version + 1})
    change = LineChange(menu_id, StockChange.ADJUSTED, delta, item)
    return Outcome(_with_items(store, {menu_id: item}), None, (change,))


def is_expired(reservation: Reservation | None, now: float) -> bool:
    """True for a reservation still held after its TTL: the expiry sweep releases it."""
    return (
        reservation is not None
        and reservation.status is ReservationStatus.RESERVED
        and reservation.expires_at <= now
    )


StockCommand = r.ReserveStock | r.CommitStock | r.ReleaseStock | r.AdjustStock


def apply(
    store: StoreStock, current: Reservation | None, command: StockCommand, ttl: float
) -> Outcome:
    """The ledger function a stock command calls for (reservations expire ``ttl`` s after)."""
    if isinstance(command, r.ReserveStock):
        expires = command.occurred_at + ttl
        return reserve(store, current, command.order_id, command.lines, expires)
    if isinstance(command, r.CommitStock):
        return commit(store, current, command.order_id)
    if isinstance(command, r.ReleaseStock):
        return release(store, current, command.order_id, command.reason or "released")
    return adjust(store, command.menu_id, command.delta, command.unlimited)


def reply_for(
    command: StockCommand, reservation: Reservation | None, rejected: str
) -> r.Reply | None:
    """The saga's answer to a command, from the order's record after it (None: no answer)."""
    if isinstance(command, r.AdjustStock):
        return None
    ids = r.reply_ids(command)
    if isinstance(command, r.ReserveStock):
        assert reservation is not None
        if reservation.status is ReservationStatus.REJECTED:
            return r.StockRejected(**ids, reason=reservation.reason, short=reservation.short)
        if reservation.status is ReservationStatus.RELEASED and not reservation.lines:
            return r.StockRejected(**ids, reason="cancelled_before_reserved")  # a tombstone
        return r.StockReserved(**ids)
    if isinstance(command, r.CommitStock):
        if rejected:
            return r.StockCommitRejected(**ids, reason=rejected)
        return r.StockCommitted(**ids)
    return r.StockReleased(**ids)
