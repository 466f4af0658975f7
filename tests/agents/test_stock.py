"""Stock commands on ``stock-commands``, applied by the orchestrator's agent (stock is a local
step of the saga): the store's ledger and reservations, stock events and the saga's replies
out. The saga's own reserve/commit/release never leave its unit: see test_orchestrator."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eatcloud.domain.stock import ReservationStatus
from eatcloud.observability import context
from eatcloud.runtime import wire
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import encode
from tests.agents.harness import Harness

RESERVE = r.ReserveStock(
    order_id="o1",
    store_id="s1",
    lines=(r.StockLine(menu_id="m1", quantity=2), r.StockLine(menu_id="m2", quantity=1)),
)


@pytest.fixture
async def stock(harness: Harness) -> AsyncIterator[Any]:
    async with harness.agent("orchestrator").test_context() as agent:
        yield agent


async def shelve(harness: Harness, agent: Any, **quantities: int) -> None:
    """Stock store s1 with these quantities per menu item, and forget what that sent."""
    for menu_id, quantity in quantities.items():
        await harness.deliver(agent, r.AdjustStock(store_id="s1", menu_id=menu_id, delta=quantity))
    harness.outbox.clear()


def reply_to(command: Any, harness: Harness) -> Any:
    """The one saga reply among what was sent, checked to be keyed and named for ``command``."""
    (reply,) = [s for s in harness.outbox.take() if s.topic == t.SAGA_REPLIES]
    assert reply.key == command.store_id.encode()  # the saga's partition: its store
    assert reply.record.event_id == r.derived_id(command.event_id, "reply")
    return reply


async def test_an_adjustment_stocks_the_shelf_and_reports_the_new_level(
    harness: Harness, stock: Any
) -> None:
    await harness.deliver(stock, r.AdjustStock(store_id="s1", menu_id="m1", delta=10))

    item = harness.ledger("s1").items["m1"]
    assert (item.on_hand, item.reserved, item.baseline) == (10, 0, 10)
    (level,) = harness.outbox.take()
    assert (level.topic, level.key, level.type) == (t.STOCK_EVENTS, b"s1", "StockLevelsChanged")
    (change,) = level.record.lines
    assert (change.change, change.quantity, change.on_hand) == ("adjusted", 10, 10)


async def test_the_same_adjustment_delivered_twice_is_applied_once(
    harness: Harness, stock: Any
) -> None:
    delivery = r.AdjustStock(store_id="s1", menu_id="m1", delta=10)
    await harness.deliver(stock, delivery)
    harness.outbox.clear()

    await harness.deliver(stock, delivery)

    assert harness.ledger("s1").items["m1"].on_hand == 10
    assert harness.outbox.take() == []
    assert harness.outbox.writes == []


async def test_refuses_an_adjustment_that_would_take_away_reserved_units(
    harness: Harness, stock: Any
) -> None:
    await shelve(harness, stock, m1=3, m2=1)
    await harness.deliver(stock, RESERVE)
    before = harness.ledger("s1")
    harness.outbox.clear()

    await harness.deliver(stock, r.AdjustStock(store_id="s1", menu_id="m1", delta=-2))

    assert harness.ledger("s1").items == before.items
    assert harness.outbox.take() == []


async def test_reserves_every_line_and_answers_stock_reserved(harness: Harness, stock: Any) -> None:
    await shelve(harness, stock, m1=10, m2=5)

    await harness.deliver(stock, RESERVE)

    ledger = harness.ledger("s1")
    assert (ledger.items["m1"].reserved, ledger.items["m2"].reserved) == (2, 1)
    reservation = harness.reservation("s1", "o1")
    assert reservation is not None
    assert (reservation.status, reservation.lines) == (ReservationStatus.RESERVED, RESERVE.lines)
    ttl = harness.settings.saga.reservation_ttl_seconds
    assert reservation.expires_at == RESERVE.occurred_at + ttl
    assert reservation.expires_at > 0
    (moved,) = [s for s in harness.outbox.sent if s.topic == t.STOCK_EVENTS]  # one per command
    assert [(x.menu_id, x.change) for x in moved.record.lines] == [
        ("m1", "reserved"),
        ("m2", "reserved"),
    ]
    assert reply_to(RESERVE, harness).type == "StockReserved"


async def test_a_redelivered_reserve_answers_the_same_and_reserves_nothing_more(
    harness: Harness, stock: Any
) -> None:
    await shelve(harness, stock, m1=10, m2=5)
    await harness.deliver(stock, RESERVE)
    first = reply_to(RESERVE, harness)
    ledger, reservation = harness.ledger("s1"), harness.reservation("s1", "o1")
    harness.outbox.clear()

    await harness.deliver(stock, RESERVE)

    again = reply_to(RESERVE, harness)  # the only message: no stock event this time
    assert (again.type, again.record.event_id) == (first.type, first.record.event_id)
    assert harness.ledger("s1") == ledger
    assert harness.reservation("s1", "o1") == reservation
    assert harness.outbox.writes == []


async def test_rejects_a_reservation_it_cannot_fill_in_full_and_holds_nothing(
    harness: Harness, stock: Any
) -> None:
    await shelve(harness, stock, m1=1, m2=5)

    await harness.deliver(stock, RESERVE)

    ledger = harness.ledger("s1")
    assert (ledger.items["m1"].reserved, ledger.items["m2"].reserved) == (0, 0)
    reservation = harness.reservation("s1", "o1")
    assert reservation is not None and reservation.status is ReservationStatus.REJECTED
    (short,) = [s for s in harness.outbox.sent if s.topic == t.STOCK_EVENTS]
    assert [(x.menu_id, x.change) for x in short.record.lines] == [("m1", "insufficient")]
    reply = reply_to(RESERVE, harness)
    assert (reply.type, reply.record.reason, reply.record.short) == (
        "StockRejected",
        "out_of_stock",
        ("m1",),
    )


async def test_rejects_a_reservation_of_an_item_the_store_does_not_stock(
    harness: Harness, stock: Any
) -> None:
    await shelve(harness, stock, m1=10)

    await harness.deliver(stock, RESERVE)

    reply = reply_to(RESERVE, harness)
    assert (reply.type, reply.record.reason, reply.record.short) == (
        "StockRejected",
        "not_stocked",
        ("m2",),
    )


async def test_commits_a_reservation_as_sold_once(harness: Harness, stock: Any) -> None:
    commit = r.CommitStock(order_id="o1", store_id="s1")
    await shelve(harness, stock, m1=10, m2=5)
    await harness.deliver(stock, RESERVE)
    harness.outbox.clear()

    await harness.deliver(stock, commit)

    item = harness.ledger("s1").items["m1"]
    assert (item.on_hand, item.reserved, item.sold) == (8, 0, 2)
    reservation = harness.reservation("s1", "o1")
    assert reservation is not None and reservation.status is ReservationStatus.COMMITTED
    first = reply_to(commit, harness)
    assert first.type == "StockCommitted"

    harness.outbox.clear()
    await harness.deliver(stock, commit)
    assert reply_to(commit, harness).record.event_id == first.record.event_id
    assert harness.ledger("s1").items["m1"].sold == 2
    assert harness.outbox.writes == []


async def test_refuses_to_commit_an_order_that_reserved_nothing(
    harness: Harness, stock: Any
) -> None:
    commit = r.CommitStock(order_id="o1", store_id="s1")

    await harness.deliver(stock, commit)

    reply = reply_to(commit, harness)
    assert (reply.type, reply.record.reason) == ("StockCommitRejected", "no_reservation")


async def test_a_release_gives_the_reserved_units_back(harness: Harness, stock: Any) -> None:
    release = r.ReleaseStock(order_id="o1", store_id="s1", reason="card_declined")
    await shelve(harness, stock, m1=10, m2=5)
    await harness.deliver(stock, RESERVE)
    harness.outbox.clear()

    await harness.deliver(stock, release)

    ledger = harness.ledger("s1")
    assert (ledger.items["m1"].reserved, ledger.items["m1"].on_hand) == (0, 10)
    reservation = harness.reservation("s1", "o1")
    assert reservation is not None
    assert (reservation.status, reservation.reason) == (ReservationStatus.RELEASED, "card_declined")
    (moved,) = [s.record for s in harness.outbox.sent if s.topic == t.STOCK_EVENTS]
    assert [x.change for x in moved.lines] == ["released", "released"]
    assert reply_to(release, harness).type == "StockReleased"


async def test_a_release_before_the_reserve_leaves_a_tombstone_the_late_reserve_respects(
    harness: Harness, stock: Any
) -> None:
    release = r.ReleaseStock(order_id="o1", store_id="s1", reason="cancelled")
    await shelve(harness, stock, m1=10, m2=5)

    await harness.deliver(stock, release)
    assert reply_to(release, harness).type == "StockReleased"
    await harness.deliver(stock, RESERVE)

    ledger = harness.ledger("s1")
    assert (ledger.items["m1"].reserved, ledger.items["m2"].reserved) == (0, 0)
    reservation = harness.reservation("s1", "o1")
    assert reservation is not None and reservation.status is ReservationStatus.RELEASED
    assert [s for s in harness.outbox.sent if s.topic == t.STOCK_EVENTS] == []


async def test_expires_reservations_past_their_ttl_and_then_refuses_to_commit_them(
    harness: Harness, stock: Any
) -> None:
    await shelve(harness, stock, m1=10, m2=5)
    await harness.deliver(stock, RESERVE)
    reservation = harness.reservation("s1", "o1")
    assert reservation is not None
    harness.outbox.clear()

    sweep = r.ExpireReservations(
        store_id="s1", now=reservation.expires_at + 1, order_ids=("o1", "o-unknown")
    )
    await harness.deliver(stock, sweep)

    expired = harness.reservation("s1", "o1")
    assert expired is not None
    assert (expired.status, expired.reason) == (ReservationStatus.RELEASED, "expired")
    assert harness.ledger("s1").items["m1"].reserved == 0
    sent = harness.outbox.take()
    assert [s.topic for s in sent] == [t.STOCK_EVENTS]  # the one order that was still held
    assert [x.change for x in sent[0].record.lines] == ["expired"] * 2

    commit = r.CommitStock(order_id="o1", store_id="s1")
    await harness.deliver(stock, commit)
    reply = reply_to(commit, harness)
    assert (reply.type, reply.record.reason) == ("StockCommitRejected", "reservation_expired")


async def test_a_handlers_log_lines_carry_the_trace_of_its_message(
    harness: Harness, stock: Any
) -> None:
    adjust = r.AdjustStock(store_id="s1", menu_id="m1", delta=1)
    await harness.deliver(stock, adjust)
    seen: list[tuple[str, str | None]] = []

    class Grab(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append((record.getMessage(), context.trace_id()))

    logger, grab = logging.getLogger("eatcloud.agents.stock"), Grab()
    level = logger.level
    logger.addHandler(grab)
    logger.setLevel(logging.INFO)
    try:
        trace = f"00-{'ab' * 16}-{'cd' * 8}-01"
        await harness.deliver(stock, adjust, headers=[("traceparent", trace.encode())])
    finally:
        logger.removeHandler(grab)
        logger.setLevel(level)

    assert [t for m, t in seen if "already applied" in m] == ["ab" * 16]


async def test_a_batch_larger_than_a_unit_is_applied_in_several_units(
    harness: Harness, stock: Any
) -> None:
    """An owner carries what its unit changed, so big batches are cut into units."""
    harness.wiring.runtime.unit_messages = 2
    adjustments = [r.AdjustStock(store_id="s1", menu_id=f"m{n}", delta=n + 1) for n in range(5)]
    envelope = wire.pack((encode(a), {}) for a in adjustments)

    await harness.deliver(stock, envelope, topic=t.STOCK_COMMANDS, key="s1")

    items = harness.ledger("s1").items
    assert {m: i.on_hand for m, i in items.items()} == {f"m{n}": n + 1 for n in range(5)}
    ledger_writes = [w for w in harness.outbox.writes if w.key == "ledger/s1"]
    assert len(ledger_writes) == 3  # units of 2, 2 and 1 messages: each writes the store once
