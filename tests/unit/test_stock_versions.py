"""Item versions: every change of an item's ledger line raises its version by one, a line
that changes nothing repeats it, and the stock events carry it; ledgers and events written
before versions existed still read."""

from __future__ import annotations

import json
from typing import Any

from eatcloud.domain import stock
from eatcloud.domain.stock import ItemStock, StoreStock
from eatcloud.streams import records as r
from eatcloud.streams.codec import Decoder, encode
from eatcloud.streams.records import StockChange, StockLine
from tests.unit.test_stock_ledger import TTL_END, lines, shelf


def versions(store: StoreStock) -> dict[str, int]:
    return {menu_id: item.version for menu_id, item in store.items.items()}


def state(item: ItemStock) -> tuple[int, int, int, int, bool]:
    return item.on_hand, item.reserved, item.sold, item.baseline, item.unlimited


def step(store: StoreStock, outcome: stock.Outcome) -> StoreStock:
    """Check that each line raised its item's version by one if it changed the item and kept
    it otherwise, in order, and that the items without a line kept theirs; the ledger after."""
    items = dict(store.items)
    for change in outcome.changes:
        before = items.get(change.menu_id)
        if before is None:
            assert change.item.version == 1, change  # the item's first line
        else:
            moved = state(change.item) != state(before)
            assert change.item.version == before.version + moved, change
        items[change.menu_id] = change.item
    assert outcome.store.items == items
    return outcome.store


def test_every_change_that_emits_a_line_raises_its_items_version_by_one() -> None:
    store = step(StoreStock(), stock.adjust(StoreStock(), "burger", 5, None))
    assert versions(store) == {"burger": 1}
    first = stock.reserve(store, None, "order-1", lines(burger=2), TTL_END)
    store = step(store, first)
    committed = stock.commit(store, first.reservation, "order-1")
    store = step(store, committed)
    returned = stock.release(store, committed.reservation, "order-1", "refund")
    assert [c.change for c in returned.changes] == [StockChange.RETURNED]
    store = step(store, returned)
    second = stock.reserve(store, None, "order-2", lines(burger=1), TTL_END)
    store = step(store, second)
    released = stock.release(store, second.reservation, "order-2", "cancelled")
    store = step(store, released)
    third = stock.reserve(store, None, "order-3", lines(burger=1), TTL_END)
    store = step(store, third)
    expired = stock.release(store, third.reservation, "order-3", "expired")
    assert [c.change for c in expired.changes] == [StockChange.EXPIRED]
    store = step(store, expired)
    store = step(store, stock.adjust(store, "burger", -1, None))
    assert versions(store) == {"burger": 9}


def test_a_line_that_leaves_its_item_as_it_was_repeats_the_version() -> None:
    store = step(StoreStock(), stock.adjust(StoreStock(), "soda", 0, None))  # a new item
    store = step(store, stock.adjust(store, "soda", 0, None))  # a probe
    assert versions(store) == {"soda": 1}
    store = step(store, stock.adjust(store, "soda", 0, True))  # unlimited now
    store = step(store, stock.adjust(store, "soda", 0, True))
    assert versions(store) == {"soda": 2}
    reserved = stock.reserve(store, None, "order-1", lines(soda=5), TTL_END)
    store = step(store, reserved)  # an unlimited item keeps no counts
    assert [c.item.version for c in reserved.changes] == [2]
    store = step(store, stock.adjust(store, "soda", 3, False))  # limited again
    released = stock.release(store, reserved.reservation, "order-1", "cancelled")
    store = step(store, released)  # the order's units were never counted
    assert [c.item.version for c in released.changes] == [3]
    assert versions(store) == {"soda": 3}


def test_lines_of_one_menu_in_one_command_get_consecutive_versions() -> None:
    store = shelf(burger=5)
    twice = (StockLine(menu_id="burger", quantity=2), StockLine(menu_id="burger", quantity=1))
    outcome = stock.reserve(store, None, "order-1", twice, TTL_END)
    assert [c.item.version for c in outcome.changes] == [2, 3]
    step(store, outcome)


def test_a_refusal_changes_no_version_and_its_line_tells_the_current_one() -> None:
    store = shelf(burger=3, fries=1)
    store = step(store, stock.adjust(store, "fries", 1, None))
    assert versions(store) == {"burger": 1, "fries": 2}
    refused = stock.reserve(store, None, "order-1", lines(burger=1, fries=3), TTL_END)
    assert refused.store is store
    assert [(c.change, c.item.version) for c in refused.changes] == [(StockChange.INSUFFICIENT, 2)]
    assert stock.adjust(store, "burger", -4, None).store is store  # refused: no line


def test_repeated_commands_change_no_version() -> None:
    store = shelf(burger=3)
    first = stock.reserve(store, None, "order-1", lines(burger=1), TTL_END)
    again = stock.reserve(first.store, first.reservation, "order-1", lines(burger=1), TTL_END)
    assert again.store is first.store and again.changes == ()
    released = stock.release(first.store, first.reservation, "order-1", "cancelled")
    twice = stock.release(released.store, released.reservation, "order-1", "cancelled")
    assert twice.store is released.store and twice.changes == ()


def test_a_ledger_stored_before_versions_reads_as_version_zero() -> None:
    old = b'{"items": {"burger": {"on_hand": 3, "reserved": 1, "sold": 2, "baseline": 5}}}'
    store = StoreStock.model_validate_json(old)
    assert store.items["burger"] == ItemStock(on_hand=3, reserved=1, sold=2, baseline=5)
    assert versions(store) == {"burger": 0}
    assert versions(stock.adjust(store, "burger", 1, None).store) == {"burger": 1}


def test_stock_lines_carry_the_version_and_old_events_read_without_one() -> None:
    decode: Decoder[r.StockLevelChanged | r.StockLevelsChanged] = Decoder(r.StockEventRecord)
    level: dict[str, Any] = {
        "change": "reserved",
        "quantity": 1,
        "on_hand": 3,
        "reserved": 1,
        "sold": 0,
    }
    new = r.StockLevelsChanged(
        store_id="s1",
        order_id="o1",
        lines=(
            r.StockLevel(menu_id="burger", **level, version=7),
            r.StockLevel(menu_id="fries", **level, version=2),
        ),
    )
    assert [line.version for line in r.stock_lines([decode(encode(new))])] == [7, 2]
    old_levels = {  # as written before items had versions: no such field
        "type": "StockLevelsChanged",
        "store_id": "s1",
        "lines": [{"menu_id": "burger", **level}, {"menu_id": "fries", **level}],
    }
    old_line = {"type": "StockLevelChanged", "store_id": "s1", "menu_id": "soda", **level}
    old = [decode(json.dumps(event).encode()) for event in (old_levels, old_line)]
    lines_of_old = r.stock_lines(old)
    assert [(line.menu_id, line.version) for line in lines_of_old] == [
        ("burger", None),
        ("fries", None),
        ("soda", None),
    ]
