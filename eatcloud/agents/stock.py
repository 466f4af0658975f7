"""The stock agent: one store's ledger per key, so a multi-line reservation needs no lock.

Reads ``stock-commands`` (keyed by store_id), applies the pure ledger functions, writes the
store's ledger and the order's reservation record, answers the saga on ``saga-replies`` and
appends one ``StockLevelChanged`` per touched line to ``stock-events``. A repeated command
finds the reservation record unchanged and answers again with the same reply; a repeated
adjustment is recognised by its event_id and skipped.

A timer keeps the expiry of the reservations this worker holds and sends
``ExpireReservations`` with the orders whose TTL passed; the agent releases those still held.
"""

from __future__ import annotations

import heapq
import logging
import time
from typing import Any

from eatcloud.agents.wiring import Wiring, guard_timer
from eatcloud.domain import stock
from eatcloud.domain.stock import Reservation, ReservationStatus, StoreStock
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder
from eatcloud.tables import StockEntry

log = logging.getLogger("eatcloud.agents.stock")

COMMANDS: Decoder[Any] = Decoder(r.StockCommand)


def _reply(command: Any, reservation: Reservation | None, rejected: str) -> r.Reply | None:
    """The saga's answer to a command, from the outcome or the (unchanged) record."""
    if not isinstance(command, r.ReserveStock | r.CommitStock | r.ReleaseStock):
        return None
    ids: dict[str, Any] = {
        "event_id": r.derived_id(command.event_id, "reply"),
        "order_id": command.order_id,
    }
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


class HeldReservations:
    """When the reservations held in this worker's partitions expire: a heap, lazily pruned.

    Fed by the agent on every reservation change and rebuilt from the records after each
    rebalance, so the stores' ledgers need not list their open reservations.
    """

    def __init__(self) -> None:
        self.expiry: dict[tuple[str, str], float] = {}
        self.heap: list[tuple[float, str, str]] = []
        self.stale = True

    def track(self, store_id: str, order_id: str, reservation: Reservation) -> None:
        if reservation.status is ReservationStatus.RESERVED:
            self.expiry[(store_id, order_id)] = reservation.expires_at
            heapq.heappush(self.heap, (reservation.expires_at, store_id, order_id))
        else:
            self.expiry.pop((store_id, order_id), None)

    def rebuild(self, records: list[tuple[str, Reservation]]) -> None:
        self.expiry.clear()
        self.heap.clear()
        for key, reservation in records:
            store_id, _, order_id = key.partition("/")
            self.track(store_id, order_id, reservation)
        self.stale = False

    def due(self, now: float) -> dict[str, list[str]]:
        """The expired reservations per store, each handed out once (a lost Expire command
        is found again by the rebuild after a restart)."""
        found: dict[str, list[str]] = {}
        while self.heap and self.heap[0][0] <= now:
            expires_at, store_id, order_id = heapq.heappop(self.heap)
            if self.expiry.get((store_id, order_id)) == expires_at:
                del self.expiry[(store_id, order_id)]
                found.setdefault(store_id, []).append(order_id)
        return found


def apply(store: StoreStock, record: Reservation | None, command: Any, ttl: float) -> stock.Outcome:
    if isinstance(command, r.ReserveStock):
        expires = command.occurred_at + ttl
        return stock.reserve(store, record, command.order_id, command.lines, expires)
    if isinstance(command, r.CommitStock):
        return stock.commit(store, record, command.order_id)
    if isinstance(command, r.ReleaseStock):
        return stock.release(store, record, command.order_id, command.reason or "released")
    assert isinstance(command, r.AdjustStock)
    return stock.adjust(store, command.menu_id, command.delta, command.unlimited)


def register(wiring: Wiring) -> None:
    app, stores = wiring.app, wiring.tables.stock
    ttl = wiring.settings.saga.reservation_ttl_seconds
    held = HeldReservations()

    async def handle(event: Any, command: Any) -> None:
        entry = stores.load(command.store_id)
        if isinstance(command, r.ExpireReservations):
            await _expire(event, command, entry)
            return
        if isinstance(command, r.AdjustStock):
            await _adjust(event, command, entry)
            return
        record = stores.record(command.store_id, entry, command.order_id)
        outcome = apply(entry.ledger, record, command, ttl)
        await _record(event, command, entry, outcome)
        reply = _reply(command, outcome.reservation or record, outcome.rejected)
        if reply is not None:
            await wiring.send(reply, event)

    async def _adjust(event: Any, command: r.AdjustStock, entry: StockEntry) -> None:
        if entry.seen(command.event_id):
            log.info("store %s: adjustment %s already applied", command.store_id, command.event_id)
            return
        outcome = apply(entry.ledger, None, command, ttl)
        if outcome.rejected:
            log.warning("store %s: adjust refused: %s", command.store_id, outcome.rejected)
        entry = entry.model_copy(update={"recent": entry.remembering(command.event_id)})
        await _record(event, command, entry, outcome)

    async def _record(
        event: Any, command: Any, entry: StockEntry, outcome: stock.Outcome
    ) -> StockEntry:
        order_id = getattr(command, "order_id", None)
        if (
            outcome.store is not entry.ledger
            or outcome.reservation is not None
            or (isinstance(command, r.AdjustStock))
        ):
            entry = entry.model_copy(update={"ledger": outcome.store})
            entry = stores.save(command.store_id, entry, order_id, outcome.reservation)
            if order_id is not None and outcome.reservation is not None:
                held.track(command.store_id, order_id, outcome.reservation)
        for n, change in enumerate(outcome.changes):
            await wiring.send(
                r.StockLevelChanged(
                    event_id=r.derived_id(command.event_id, f"line/{n}"),
                    store_id=command.store_id,
                    menu_id=change.menu_id,
                    change=change.change,
                    quantity=change.quantity,
                    order_id=order_id,
                    unlimited=change.item.unlimited,
                    on_hand=change.item.on_hand,
                    reserved=change.item.reserved,
                    sold=change.item.sold,
                ),
                event,
            )
        return entry

    async def _expire(event: Any, command: r.ExpireReservations, entry: StockEntry) -> None:
        for order_id in command.order_ids:
            record = stores.record(command.store_id, entry, order_id)
            if not stock.is_expired(record, command.now):
                continue  # committed or released since the timer looked
            release = r.ReleaseStock(
                event_id=r.derived_id(command.event_id, order_id),
                order_id=order_id,
                store_id=command.store_id,
                reason="expired",
            )
            outcome = stock.release(entry.ledger, record, order_id, "expired")
            entry = await _record(event, release, entry, outcome)
            log.info("store %s: reservation of order %s expired", command.store_id, order_id)

    @app.agent(wiring.topics[t.STOCK_COMMANDS], name="stock")  # type: ignore[untyped-decorator]
    async def stock_agent(stream: Any) -> None:
        async for event in stream.events():
            command = await wiring.decode(event, COMMANDS)
            if command is not None:
                await wiring.guarded(handle, event, command)

    async def _on_assigned(*_: Any, **__: Any) -> None:
        held.stale = True

    app.on_partitions_assigned.connect(_on_assigned)

    async def reservation_expiry() -> None:
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            return
        if held.stale:
            held.rebuild(stores.records.items())
        now = time.time()
        for store_id, order_ids in held.due(now).items():
            for start in range(0, len(order_ids), 1000):
                chunk = tuple(order_ids[start : start + 1000])
                await wiring.send(r.ExpireReservations(store_id=store_id, now=now, order_ids=chunk))

    every = wiring.settings.saga.timer_interval_seconds
    app.timer(every)(guard_timer("reservation_expiry", reservation_expiry))
