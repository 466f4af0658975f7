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

import logging
import time
from typing import Any

from eatcloud.agents.schedule import Schedule, timers_may_run
from eatcloud.agents.wiring import Wiring, guard_timer
from eatcloud.domain import stock
from eatcloud.domain.stock import Reservation, ReservationStatus
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import Decoder
from eatcloud.tables import StockEntry

log = logging.getLogger("eatcloud.agents.stock")

COMMANDS: Decoder[Any] = Decoder(r.StockCommand)


class HeldReservations(Schedule[tuple[str, str], None]):
    """When the reservations held in this worker's partitions expire: (store, order) -> at.

    Fed by the agent on every reservation change and rebuilt from the records after each
    rebalance, so the stores' ledgers need not list their open reservations.
    """

    def track(self, store_id: str, order_id: str, reservation: Reservation) -> None:
        if reservation.status is ReservationStatus.RESERVED:
            self.set((store_id, order_id), reservation.expires_at, None)
        else:
            self.cancel((store_id, order_id))

    def rebuild(self, records: list[tuple[str, Reservation]]) -> None:
        self.clear()
        for key, reservation in records:
            store_id, _, order_id = key.partition("/")
            self.track(store_id, order_id, reservation)

    def due(self, now: float) -> dict[str, list[str]]:
        """The expired reservations per store, each handed out once (a lost Expire command
        is found again by the rebuild after a restart)."""
        found: dict[str, list[str]] = {}
        for (store_id, order_id), _, _ in self.pop_passed(now):
            found.setdefault(store_id, []).append(order_id)
        return found


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
        outcome = stock.apply(entry.ledger, record, command, ttl)
        await _record(event, command, entry, outcome)
        reply = stock.reply_for(command, outcome.reservation or record, outcome.rejected)
        if reply is not None:
            await wiring.send(reply, event)

    async def _adjust(event: Any, command: r.AdjustStock, entry: StockEntry) -> None:
        if entry.seen(command.event_id):
            log.info("store %s: adjustment %s already applied", command.store_id, command.event_id)
            return
        outcome = stock.apply(entry.ledger, None, command, ttl)
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
        """Keeps each store's stock ledger: reservations, commits, releases, adjustments."""
        async for event in stream.events():
            command = await wiring.decode(event, COMMANDS)
            if command is not None:
                await wiring.guarded(handle, event, command)

    held.watch(app)

    async def reservation_expiry() -> None:
        if not timers_may_run(app):
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
