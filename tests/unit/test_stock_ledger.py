"""The stock ledger of one store: reserve all-or-nothing, commit, release, adjust, expiry."""

from __future__ import annotations

import pytest

from eatcloud.domain import stock
from eatcloud.domain.stock import ItemStock, Reservation, ReservationStatus, StoreStock
from eatcloud.streams.records import StockChange, StockLine

TTL_END = 500.0


def shelf(**quantities: int) -> StoreStock:
    """A store stocked by deliveries: ``shelf(burger=3)``; a negative quantity means unlimited."""
    store = StoreStock()
    for menu_id, quantity in quantities.items():
        unlimited = True if quantity < 0 else None
        store = stock.adjust(store, menu_id, max(quantity, 0), unlimited).store
    return store


def lines(**quantities: int) -> tuple[StockLine, ...]:
    return tuple(StockLine(menu_id=m, quantity=q) for m, q in quantities.items())


def reserved(
    store: StoreStock, order_id: str = "order-1", **quantities: int
) -> tuple[StoreStock, Reservation]:
    outcome = stock.reserve(store, None, order_id, lines(**quantities), TTL_END)
    assert outcome.reservation is not None
    assert outcome.reservation.status is ReservationStatus.RESERVED
    return outcome.store, outcome.reservation


def counts(store: StoreStock, menu_id: str) -> tuple[int, int, int]:
    item = store.items[menu_id]
    return item.on_hand, item.reserved, item.sold


def assert_balanced(store: StoreStock) -> None:
    for item in store.items.values():
        assert item.on_hand + item.sold == item.baseline
        assert 0 <= item.reserved <= item.on_hand


# --- reserve ------------------------------------------------------------------------------


def test_reserves_every_line_when_all_are_available() -> None:
    outcome = stock.reserve(shelf(burger=3, fries=5), None, "order-1", lines(burger=2, fries=5), 9)
    assert outcome.rejected == ""
    assert outcome.reservation == Reservation(
        status=ReservationStatus.RESERVED, lines=lines(burger=2, fries=5), expires_at=9
    )
    assert counts(outcome.store, "burger") == (3, 2, 0)
    assert counts(outcome.store, "fries") == (5, 5, 0)
    assert outcome.store.items["fries"].available == 0
    assert outcome.reservation is not None and outcome.reservation.expires_at == 9
    assert [(c.menu_id, c.change, c.quantity) for c in outcome.changes] == [
        ("burger", StockChange.RESERVED, 2),
        ("fries", StockChange.RESERVED, 5),
    ]


def test_reserves_nothing_when_one_line_is_short() -> None:
    store = shelf(burger=3, fries=1)
    outcome = stock.reserve(store, None, "order-1", lines(burger=2, fries=2), TTL_END)
    assert outcome.store is store
    assert outcome.rejected == "out_of_stock"
    assert outcome.reservation == Reservation(
        status=ReservationStatus.REJECTED, reason="out_of_stock", short=("fries",)
    )
    assert [(c.menu_id, c.change, c.quantity) for c in outcome.changes] == [
        ("fries", StockChange.INSUFFICIENT, 2)
    ]


def test_reserved_units_are_not_available_to_the_next_order() -> None:
    store, _ = reserved(shelf(burger=3), burger=2)
    outcome = stock.reserve(store, None, "order-2", lines(burger=2), TTL_END)
    assert outcome.rejected == "out_of_stock"
    assert counts(outcome.store, "burger") == (3, 2, 0)


def test_refuses_a_menu_the_store_does_not_stock() -> None:
    outcome = stock.reserve(shelf(burger=3), None, "order-1", lines(burger=1, pizza=1), TTL_END)
    assert outcome.rejected == "not_stocked"
    assert outcome.reservation is not None
    assert outcome.reservation.short == ("pizza",)
    assert outcome.changes == ()  # no ledger line exists for the missing menu


def test_unlimited_items_always_reserve_and_keep_no_counts() -> None:
    store = shelf(soda=-1)
    outcome = stock.reserve(store, None, "order-1", lines(soda=10_000), TTL_END)
    assert outcome.rejected == ""
    assert counts(outcome.store, "soda") == (0, 0, 0)
    committed = stock.commit(outcome.store, outcome.reservation, "order-1")
    assert counts(committed.store, "soda") == (0, 0, 0)


@pytest.mark.parametrize("quantity", [1, 9])
def test_a_repeated_reserve_returns_the_first_outcome_unchanged(quantity: int) -> None:
    store = shelf(burger=3)
    first = stock.reserve(store, None, "order-1", lines(burger=quantity), TTL_END)
    again = stock.reserve(first.store, first.reservation, "order-1", lines(burger=1), TTL_END)
    assert again.store is first.store
    assert again.reservation is None  # the record stays as the first reserve left it
    assert again.changes == ()
    assert again.rejected == ""


# --- commit -------------------------------------------------------------------------------


def test_commit_moves_reserved_units_to_sold() -> None:
    store, reservation = reserved(shelf(burger=3), burger=2)
    outcome = stock.commit(store, reservation, "order-1")
    assert counts(outcome.store, "burger") == (1, 0, 2)
    assert outcome.reservation is not None
    assert outcome.reservation.status is ReservationStatus.COMMITTED
    assert [c.change for c in outcome.changes] == [StockChange.COMMITTED]
    assert_balanced(outcome.store)


def test_a_repeated_commit_changes_nothing() -> None:
    store, reservation = reserved(shelf(burger=3), burger=2)
    first = stock.commit(store, reservation, "order-1")
    again = stock.commit(first.store, first.reservation, "order-1")
    assert again.store is first.store
    assert (again.reservation, again.changes, again.rejected) == (None, (), "")


def test_commit_without_a_reservation_is_refused() -> None:
    store = shelf(burger=3)
    outcome = stock.commit(store, None, "order-1")
    assert (outcome.store, outcome.reservation, outcome.rejected) == (store, None, "no_reservation")


def test_commit_of_a_rejected_reservation_is_refused() -> None:
    store = shelf(burger=1)
    rejected = stock.reserve(store, None, "order-1", lines(burger=2), TTL_END).reservation
    outcome = stock.commit(store, rejected, "order-1")
    assert outcome.rejected == "no_reservation"
    assert outcome.store is store


def test_commit_after_the_reservation_expired_is_refused() -> None:
    store, reservation = reserved(shelf(burger=3), burger=2)
    expired = stock.release(store, reservation, "order-1", "expired")
    outcome = stock.commit(expired.store, expired.reservation, "order-1")
    assert outcome.rejected == "reservation_expired"
    assert counts(outcome.store, "burger") == (3, 0, 0)


# --- release ------------------------------------------------------------------------------


def test_release_gives_back_reserved_units() -> None:
    store, reservation = reserved(shelf(burger=3), burger=2)
    outcome = stock.release(store, reservation, "order-1", "cancelled")
    assert counts(outcome.store, "burger") == (3, 0, 0)
    assert outcome.reservation is not None
    assert (outcome.reservation.status, outcome.reservation.reason) == (
        ReservationStatus.RELEASED,
        "cancelled",
    )
    assert [c.change for c in outcome.changes] == [StockChange.RELEASED]


def test_release_for_expiry_is_recorded_as_expired() -> None:
    store, reservation = reserved(shelf(burger=3), burger=2)
    outcome = stock.release(store, reservation, "order-1", "expired")
    assert [c.change for c in outcome.changes] == [StockChange.EXPIRED]


def test_release_after_commit_returns_sold_units_to_the_shelf() -> None:
    store, reservation = reserved(shelf(burger=3), burger=2)
    committed = stock.commit(store, reservation, "order-1")
    outcome = stock.release(committed.store, committed.reservation, "order-1", "refund")
    assert counts(outcome.store, "burger") == (3, 0, 0)
    assert [c.change for c in outcome.changes] == [StockChange.RETURNED]
    assert_balanced(outcome.store)


def test_a_repeated_release_changes_nothing() -> None:
    store, reservation = reserved(shelf(burger=3), burger=2)
    first = stock.release(store, reservation, "order-1", "cancelled")
    again = stock.release(first.store, first.reservation, "order-1", "cancelled")
    assert again.store is first.store
    assert (again.reservation, again.changes) == (None, ())


def test_release_of_a_never_reserved_order_leaves_a_tombstone_that_refuses_a_later_reserve() -> (
    None
):
    store = shelf(burger=3)
    released = stock.release(store, None, "order-1", "cancelled")
    assert released.store is store
    assert released.changes == ()
    assert released.reservation == Reservation(
        status=ReservationStatus.RELEASED, reason="cancelled"
    )
    late = stock.reserve(store, released.reservation, "order-1", lines(burger=2), TTL_END)
    assert late.store is store
    assert late.reservation is None
    assert counts(late.store, "burger") == (3, 0, 0)


def test_release_of_a_rejected_reservation_changes_nothing() -> None:
    store = shelf(burger=1)
    rejected = stock.reserve(store, None, "order-1", lines(burger=2), TTL_END).reservation
    outcome = stock.release(store, rejected, "order-1", "cancelled")
    assert (outcome.store, outcome.reservation, outcome.changes) == (store, None, ())


def test_release_touches_only_its_own_order() -> None:
    store, first = reserved(shelf(burger=5), "order-1", burger=2)
    store, _ = reserved(store, "order-2", burger=3)
    outcome = stock.release(store, first, "order-1", "cancelled")
    assert counts(outcome.store, "burger") == (5, 3, 0)
    assert outcome.reservation is not None and outcome.reservation.expires_at == TTL_END


# --- adjust and expiry --------------------------------------------------------------------


def test_adjust_adds_delivered_units_to_on_hand_and_baseline() -> None:
    outcome = stock.adjust(shelf(burger=3), "burger", 4, None)
    assert outcome.store.items["burger"] == ItemStock(on_hand=7, baseline=7, version=2)
    assert [(c.change, c.quantity) for c in outcome.changes] == [(StockChange.ADJUSTED, 4)]


def test_adjust_creates_the_ledger_line_of_a_new_menu() -> None:
    outcome = stock.adjust(StoreStock(), "pizza", 2, None)
    assert outcome.store.items == {"pizza": ItemStock(on_hand=2, baseline=2, version=1)}


def test_adjust_writes_off_units_that_are_not_reserved() -> None:
    store, _ = reserved(shelf(burger=5), burger=2)
    outcome = stock.adjust(store, "burger", -3, None)
    assert counts(outcome.store, "burger") == (2, 2, 0)
    assert_balanced(outcome.store)


def test_adjust_refuses_to_take_away_reserved_units() -> None:
    store, _ = reserved(shelf(burger=5), burger=2)
    outcome = stock.adjust(store, "burger", -4, None)
    assert outcome.store is store
    assert outcome.rejected == "would_remove_reserved_stock"
    assert outcome.changes == ()


def test_adjust_refuses_a_write_off_below_zero() -> None:
    outcome = stock.adjust(StoreStock(), "pizza", -1, None)
    assert outcome.rejected == "would_remove_reserved_stock"
    assert outcome.store.items == {}


def test_adjust_switches_an_item_to_unlimited_and_back() -> None:
    unlimited = stock.adjust(shelf(burger=1), "burger", 0, True).store
    assert unlimited.items["burger"].unlimited
    big = stock.reserve(unlimited, None, "order-1", lines(burger=50), TTL_END)
    assert big.rejected == ""
    limited = stock.adjust(big.store, "burger", 0, False).store
    small = stock.reserve(limited, None, "order-2", lines(burger=2), TTL_END)
    assert small.rejected == "out_of_stock"


def test_a_held_reservation_is_expired_once_its_ttl_has_passed() -> None:
    _, held = reserved(shelf(burger=10), "order-1", burger=1)
    assert stock.is_expired(held, TTL_END)
    assert not stock.is_expired(held, TTL_END - 1)
    assert not stock.is_expired(None, TTL_END)


def test_committed_and_released_reservations_never_expire() -> None:
    store, one = reserved(shelf(burger=10), "order-1", burger=1)
    store, two = reserved(store, "order-2", burger=1)
    committed = stock.commit(store, one, "order-1").reservation
    released = stock.release(store, two, "order-2", "cancelled").reservation
    assert not stock.is_expired(committed, TTL_END + 100)
    assert not stock.is_expired(released, TTL_END + 100)


# --- edge cases that once broke the invariants --------------------------------------------


@pytest.mark.parametrize("order_id", ["store", "items"])
def test_an_order_id_is_only_data_whatever_its_text(order_id: str) -> None:
    store, reservation = reserved(shelf(burger=3), order_id, burger=1)
    assert reservation.expires_at == TTL_END
    committed = stock.commit(store, reservation, order_id)
    assert counts(committed.store, "burger") == (2, 0, 1)
    released = stock.release(committed.store, committed.reservation, order_id, "refund")
    assert counts(released.store, "burger") == (3, 0, 0)


def test_switching_an_item_to_unlimited_keeps_the_counts_of_reservations_made_before() -> None:
    store, reservation = reserved(shelf(burger=3), burger=2)
    store = stock.adjust(store, "burger", 0, True).store
    committed = stock.commit(store, reservation, "order-1")
    assert counts(committed.store, "burger") == (1, 0, 2)
    assert_balanced(committed.store)


def test_switching_an_item_to_limited_keeps_reservations_made_while_unlimited_uncounted() -> None:
    store, reservation = reserved(shelf(burger=-1), burger=2)
    store = stock.adjust(store, "burger", 1, False).store
    for outcome in (
        stock.commit(store, reservation, "order-1"),
        stock.release(store, reservation, "order-1", "cancelled"),
    ):
        assert counts(outcome.store, "burger") == (1, 0, 0)
        assert_balanced(outcome.store)


def test_lines_for_the_same_menu_are_reserved_together() -> None:
    store = shelf(burger=3)
    twice = (StockLine(menu_id="burger", quantity=2), StockLine(menu_id="burger", quantity=2))
    refused = stock.reserve(store, None, "order-1", twice, TTL_END)
    assert refused.rejected == "out_of_stock"
    fits = (StockLine(menu_id="burger", quantity=2), StockLine(menu_id="burger", quantity=1))
    outcome = stock.reserve(store, None, "order-1", fits, TTL_END)
    assert counts(outcome.store, "burger") == (3, 3, 0)
    committed = stock.commit(outcome.store, outcome.reservation, "order-1")
    assert counts(committed.store, "burger") == (0, 0, 3)
    released = stock.release(committed.store, committed.reservation, "order-1", "refund")
    assert counts(released.store, "burger") == (3, 0, 0)
