"""The points ledger of one customer: one hold per order; reserve, deduct, release, adjust."""

from __future__ import annotations

import pytest

from eatcloud.domain import points
from eatcloud.domain.points import Hold, HoldStatus, PointsAccount


def held(account: PointsAccount, amount: int) -> tuple[PointsAccount, Hold]:
    outcome = points.reserve(account, None, amount)
    assert outcome.hold is not None
    assert outcome.hold.status is HoldStatus.RESERVED
    return outcome.account, outcome.hold


def test_reserve_holds_points_without_spending_them() -> None:
    account, hold = held(PointsAccount(balance=1_000), 300)
    assert account == PointsAccount(balance=1_000, held=300)
    assert account.available == 700
    assert hold == Hold(status=HoldStatus.RESERVED, amount=300)


def test_reserve_may_hold_every_available_point() -> None:
    account, _ = held(PointsAccount(balance=1_000, held=400), 600)
    assert account.available == 0


def test_reserve_beyond_the_available_points_is_rejected_and_changes_no_count() -> None:
    account = PointsAccount(balance=1_000, held=400)
    outcome = points.reserve(account, None, 601)
    assert outcome.account is account
    assert outcome.hold == Hold(status=HoldStatus.REJECTED, reason="insufficient_points")


@pytest.mark.parametrize("status", list(HoldStatus))
def test_a_repeated_reserve_changes_nothing(status: HoldStatus) -> None:
    account = PointsAccount(balance=1_000, held=300)
    outcome = points.reserve(account, Hold(status=status, amount=300), 300)
    assert outcome.account is account
    assert outcome.hold is None


def test_deduct_spends_the_held_points() -> None:
    account, hold = held(PointsAccount(balance=1_000), 300)
    outcome = points.deduct(account, hold)
    assert outcome.account == PointsAccount(balance=700, held=0)
    assert outcome.hold == Hold(status=HoldStatus.DEDUCTED, amount=300)


@pytest.mark.parametrize(
    "hold",
    [
        None,
        Hold(status=HoldStatus.DEDUCTED, amount=300),
        Hold(status=HoldStatus.RELEASED, amount=300),
        Hold(status=HoldStatus.RETURNED, amount=300),
        Hold(status=HoldStatus.REJECTED, reason="insufficient_points"),
    ],
)
def test_deduct_of_anything_but_a_reserved_hold_changes_nothing(hold: Hold | None) -> None:
    account = PointsAccount(balance=1_000, held=0)
    outcome = points.deduct(account, hold)
    assert outcome.account is account
    assert outcome.hold is None


def test_release_frees_a_reserved_hold() -> None:
    account, hold = held(PointsAccount(balance=1_000), 300)
    outcome = points.release(account, hold)
    assert outcome.account == PointsAccount(balance=1_000, held=0)
    assert outcome.hold == Hold(status=HoldStatus.RELEASED, amount=300)


def test_release_after_deduct_gives_the_points_back() -> None:
    account, hold = held(PointsAccount(balance=1_000), 300)
    spent = points.deduct(account, hold)
    assert spent.hold is not None
    outcome = points.release(spent.account, spent.hold)
    assert outcome.account == PointsAccount(balance=1_000, held=0)
    assert outcome.hold == Hold(status=HoldStatus.RETURNED, amount=300)


@pytest.mark.parametrize("status", [HoldStatus.RELEASED, HoldStatus.RETURNED, HoldStatus.REJECTED])
def test_a_repeated_release_changes_nothing(status: HoldStatus) -> None:
    account = PointsAccount(balance=1_000)
    outcome = points.release(account, Hold(status=status, amount=300))
    assert outcome.account is account
    assert outcome.hold is None


def test_release_of_a_never_held_order_leaves_a_tombstone_that_refuses_a_later_reserve() -> None:
    account = PointsAccount(balance=1_000)
    released = points.release(account, None)
    assert released.account is account
    assert released.hold == Hold(status=HoldStatus.RELEASED, reason="nothing_held")
    late = points.reserve(account, released.hold, 300)
    assert late.account is account
    assert late.hold is None
    assert points.deduct(account, released.hold).account is account


def test_release_touches_only_its_own_orders_hold() -> None:
    account, first = held(PointsAccount(balance=1_000), 300)
    account, _ = held(account, 200)
    outcome = points.release(account, first)
    assert outcome.account == PointsAccount(balance=1_000, held=200)


def test_adjust_grants_and_removes_points() -> None:
    assert points.adjust(PointsAccount(balance=100), 50) == PointsAccount(balance=150)
    assert points.adjust(PointsAccount(balance=100), -100) == PointsAccount(balance=0)


def test_adjust_may_not_remove_points_that_are_held() -> None:
    account = PointsAccount(balance=1_000, held=400)
    assert points.adjust(account, -600) == PointsAccount(balance=400, held=400)
    assert points.adjust(account, -601) is None
