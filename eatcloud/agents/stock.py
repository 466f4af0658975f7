"""The stock agent: one store's ledger per key, so a multi-line reservation needs no lock.

Reads ``stock-commands`` (keyed by store_id), applies the pure ledger functions, writes the
store's ledger and the order's reservation record, answers the saga on ``saga-replies`` and
appends one ``StockLevelChanged`` per touched line to ``stock-events``. A repeated command
finds the reservation record unchanged and answers again with the same reply.

A timer sends ``ExpireReservations`` for stores holding reservations past their TTL.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from eatcloud.agents.wiring import Wiring, guard_timer
from eatcloud.domain import stock
from eatcloud.domain.stock import Reservation, ReservationStatus, StoreStock
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder
from eatcloud.tables import scoped

log = logging.getLogger("eatcloud.agents.stock")

COMMANDS: Decoder[Any] = Decoder(r.StockCommand)


def _reply(command: Any, reservation: Reservation | None, rejected: str) -> r.Reply | None:
    """The saga's answer to a command, from the outcome or the (unchanged) record."""
    if not isinstance(command, r.ReserveStock | r.CommitStock | r.ReleaseStock):
        return None
    ids = {"event_id": r.derived_id(command.event_id, "reply"), "order_id": command.order_id}
    if isinstance(command, r.ReserveStock):
        assert reservation is not None
        if reservation.status is ReservationStatus.REJECTED:
            return r.StockRejected(**ids, reason=reservation.reason, short=reservation.short)
        return r.StockReserved(**ids)
    if isinstance(command, r.CommitStock):
        return (
            r.StockCommitRejected(**ids, reason=rejected) if rejected else r.StockCommitted(**ids)
        )
    return r.StockReleased(**ids)


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
    app, tables = wiring.app, wiring.tables
    ttl = wiring.settings.saga.reservation_ttl_seconds

    async def handle(event: Any, command: Any) -> None:
        store = tables.stock.get(command.store_id) or StoreStock()
        if isinstance(command, r.ExpireReservations):
            await _expire(event, command, store)
            return
        key = scoped(command.store_id, command.order_id) if hasattr(command, "order_id") else ""
        record = tables.reservations.get(key) if key else None
        outcome = apply(store, record, command, ttl)
        await _record(event, command, store, outcome)
        if outcome.rejected and isinstance(command, r.AdjustStock):
            log.warning("store %s: adjust refused: %s", command.store_id, outcome.rejected)
        reply = _reply(command, outcome.reservation or record, outcome.rejected)
        if reply is not None:
            await wiring.send(reply, event)

    async def _record(event: Any, command: Any, before: StoreStock, outcome: stock.Outcome) -> None:
        if outcome.store is not before:
            tables.stock.put(command.store_id, outcome.store)
        if outcome.reservation is not None:
            tables.reservations.put(scoped(command.store_id, command.order_id), outcome.reservation)
        order_id = getattr(command, "order_id", None)
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

    async def _expire(event: Any, command: r.ExpireReservations, store: StoreStock) -> None:
        for order_id in stock.expired(store, command.now):
            key = scoped(command.store_id, order_id)
            release = r.ReleaseStock(
                event_id=r.derived_id(command.event_id, order_id),
                order_id=order_id,
                store_id=command.store_id,
                reason="expired",
            )
            outcome = stock.release(store, tables.reservations.get(key), order_id, "expired")
            await _record(event, release, store, outcome)
            store = outcome.store
            log.info("store %s: reservation of order %s expired", command.store_id, order_id)

    @app.agent(wiring.topics[t.STOCK_COMMANDS], name="stock")  # type: ignore[untyped-decorator]
    async def stock_agent(stream: Any) -> None:
        async for event in stream.events():
            command = await wiring.decode(event, COMMANDS)
            if command is not None:
                await wiring.guarded(handle, event, command)

    last_sent: dict[str, float] = {}

    async def reservation_expiry() -> None:
        if app.rebalancing or not app.tables.recovery.completed.is_set():
            return
        now = time.time()
        for store_id, store in tables.stock.items():
            if stock.expired(store, now) and now - last_sent.get(store_id, 0.0) > ttl / 10:
                last_sent[store_id] = now
                await wiring.send(r.ExpireReservations(store_id=store_id, now=now))

    app.timer(wiring.settings.saga.timer_interval_seconds)(
        guard_timer("reservation_expiry", reservation_expiry)
    )
