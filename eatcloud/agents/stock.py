"""The stock step: one store's ledger per key, so a multi-line reservation needs no lock.

``step`` applies one stock command with the pure ledger functions, writes the store's ledger
and the order's reservation record, sends one ``StockLevelsChanged`` (every touched line) to
``stock-events`` (each line with its item's version, see ``domain.stock``) and returns the
saga's answer. It runs inside the orchestrator's agent (``orchestrator.handle``), which
reads ``stock-commands`` too: the saga's own reserve, commit and release are local steps of
its unit (their answer goes straight back into ``decide``), and adjustments and expiries
arriving on ``stock-commands`` are applied in the same partition by the same agent, so no
two units ever write one store's ledger at once. A repeated command finds the reservation
record unchanged and answers again with the same reply; a repeated adjustment is recognised
by its event_id and skipped.

A timer keeps the expiry of the reservations this worker holds and sends
``ExpireReservations`` with the orders whose TTL passed; the handler releases those still held.
"""

from __future__ import annotations

import logging
import typing
from dataclasses import dataclass
from typing import Any

from eatcloud.agents.schedule import Schedule, timers_may_run
from eatcloud.domain import stock
from eatcloud.domain.stock import Reservation, ReservationStatus
from eatcloud.resources import Clock
from eatcloud.runtime.adapter import Context, Runtime
from eatcloud.streams import records as r
from eatcloud.tables import OwnedRecords, StockEntry

log = logging.getLogger("eatcloud.agents.stock")


class HeldReservations(Schedule[tuple[str, str], None]):
    """When the reservations held in this worker's partitions expire: (store, order) -> at.

    Fed by the handler on every reservation change and rebuilt from the records after each
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


@dataclass(frozen=True)
class Stock:
    stores: OwnedRecords[StockEntry, Reservation]
    ttl: float
    held: HeldReservations


# Every stock command (the members of the ``stock-commands`` union), for ``isinstance``.
COMMAND_TYPES: tuple[type[r.Record], ...] = typing.get_args(typing.get_args(r.StockCommand)[0])


def step(shop: Stock, ctx: Context, command: Any) -> r.Reply | None:
    """Apply one stock command; the saga's answer (None for adjustments and expiries)."""
    store_id = command.store_id
    entry = shop.stores.load(ctx, store_id)
    if isinstance(command, r.ExpireReservations):
        _expire(shop, ctx, command, entry)
        return None
    if isinstance(command, r.AdjustStock):
        if shop.stores.adjusted(ctx, store_id, entry, command.event_id):
            log.info("store %s: adjustment %s already applied", store_id, command.event_id)
            return None
        outcome = stock.apply(entry.ledger, None, command, shop.ttl)
        if outcome.rejected:
            log.warning("store %s: adjust refused: %s", store_id, outcome.rejected)
        entry = entry.model_copy(update={"ledger": outcome.store})
        shop.stores.save_adjusted(ctx, store_id, entry, command.event_id)
        _record(shop, ctx, command, entry, outcome, saved=True)
        return None
    record = shop.stores.record(ctx, store_id, command.order_id)
    outcome = stock.apply(entry.ledger, record, command, shop.ttl)
    _record(shop, ctx, command, entry, outcome)
    return stock.reply_for(command, outcome.reservation or record, outcome.rejected)


def _record(
    shop: Stock,
    ctx: Context,
    command: Any,
    entry: StockEntry,
    outcome: stock.Outcome,
    saved: bool = False,
) -> StockEntry:
    """Save what a stock command changed (unless ``saved`` already) and send its event."""
    order_id = getattr(command, "order_id", None)
    if not saved and (outcome.store is not entry.ledger or outcome.reservation is not None):
        entry = entry.model_copy(update={"ledger": outcome.store})
        entry = shop.stores.save(ctx, command.store_id, entry, order_id, outcome.reservation)
        if order_id is not None and outcome.reservation is not None:
            shop.held.track(command.store_id, order_id, outcome.reservation)
    if outcome.changes:
        ctx.send(
            r.StockLevelsChanged(
                event_id=levels_id(command.event_id),
                store_id=command.store_id,
                order_id=order_id,
                lines=tuple(
                    r.StockLevel(
                        menu_id=change.menu_id,
                        change=change.change,
                        quantity=change.quantity,
                        unlimited=change.item.unlimited,
                        on_hand=change.item.on_hand,
                        reserved=change.item.reserved,
                        sold=change.item.sold,
                        version=change.item.version,
                    )
                    for change in outcome.changes
                ),
            )
        )
    return entry


def levels_id(command_id: str) -> str:
    """The id of the ``StockLevelsChanged`` a stock command causes (the same on a replay)."""
    return r.derived_id(command_id, "levels")


def _expire(shop: Stock, ctx: Context, command: r.ExpireReservations, entry: StockEntry) -> None:
    for order_id in command.order_ids:
        record = shop.stores.record(ctx, command.store_id, order_id)
        if not stock.is_expired(record, command.now):
            continue  # committed or released since the timer looked
        release = r.ReleaseStock(
            event_id=r.derived_id(command.event_id, order_id),
            order_id=order_id,
            store_id=command.store_id,
            reason="expired",
        )
        outcome = stock.release(entry.ledger, record, order_id, "expired")
        entry = _record(shop, ctx, release, entry, outcome)
        log.info("store %s: reservation of order %s expired", command.store_id, order_id)


def start_timer(app: Any, runtime: Runtime, shop: Stock, every: float, clock: Clock) -> None:
    shop.held.watch(app)

    async def reservation_expiry() -> None:
        if not timers_may_run(app):
            return
        if shop.held.stale:
            shop.held.rebuild(shop.stores.records.items())
        now = clock.now()
        sweeps = [
            r.ExpireReservations(store_id=store_id, now=now, order_ids=tuple(ids[n : n + 1000]))
            for store_id, ids in shop.held.due(now).items()
            for n in range(0, len(ids), 1000)
        ]
        if sweeps:
            await runtime.emit(sweeps)

    runtime.timer(every, "reservation_expiry", reservation_expiry)
