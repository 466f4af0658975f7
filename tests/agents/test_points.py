"""The points agent: points commands in, the customer's account and holds and replies out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from eatcloud.domain.points import HoldStatus, PointsAccount
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from tests.agents.harness import Harness

RESERVE = r.ReservePoints(order_id="o1", store_id="s1", customer_id="c1", amount=30)


@pytest.fixture
async def points(harness: Harness) -> AsyncIterator[Any]:
    async with harness.agent("points").test_context() as agent:
        yield agent


async def grant(harness: Harness, agent: Any, amount: int) -> None:
    """Give customer c1 ``amount`` points, and forget what that sent."""
    await harness.deliver(agent, r.AdjustPoints(customer_id="c1", delta=amount))
    harness.outbox.clear()


async def spend(harness: Harness, agent: Any) -> None:
    """Give customer c1 100 points and spend 30 of them on order o1 (reserve, then deduct)."""
    await grant(harness, agent, 100)
    await harness.deliver(agent, RESERVE)
    await harness.deliver(agent, r.DeductPoints(order_id="o1", store_id="s1", customer_id="c1"))


def reply_to(command: Any, harness: Harness) -> Any:
    """The one message sent, checked to be the saga reply keyed and named for ``command``."""
    (reply,) = harness.outbox.take()
    assert (reply.topic, reply.key) == (t.SAGA_REPLIES, command.store_id.encode())
    assert reply.record.event_id == r.derived_id(command.event_id, "reply")
    return reply


async def test_an_adjustment_grants_points_and_answers_nobody(
    harness: Harness, points: Any
) -> None:
    await harness.deliver(points, r.AdjustPoints(customer_id="c1", delta=100))

    assert harness.account("c1") == PointsAccount(balance=100, held=0)
    assert harness.outbox.take() == []


async def test_the_same_adjustment_delivered_twice_is_applied_once(
    harness: Harness, points: Any
) -> None:
    bonus = r.AdjustPoints(customer_id="c1", delta=100)
    await harness.deliver(points, bonus)
    harness.outbox.clear()

    await harness.deliver(points, bonus)

    assert harness.account("c1").balance == 100
    assert harness.outbox.writes == []


async def test_refuses_an_adjustment_that_would_leave_less_than_is_held(
    harness: Harness, points: Any
) -> None:
    await grant(harness, points, 100)
    await harness.deliver(
        points, r.ReservePoints(order_id="o1", store_id="s1", customer_id="c1", amount=80)
    )

    await harness.deliver(points, r.AdjustPoints(customer_id="c1", delta=-50))

    assert harness.account("c1") == PointsAccount(balance=100, held=80)


async def test_holds_the_points_of_an_order_and_answers_points_reserved(
    harness: Harness, points: Any
) -> None:
    await grant(harness, points, 100)

    await harness.deliver(points, RESERVE)

    assert harness.account("c1") == PointsAccount(balance=100, held=30)
    hold = harness.hold("c1", "o1")
    assert hold is not None and (hold.status, hold.amount) == (HoldStatus.RESERVED, 30)
    assert reply_to(RESERVE, harness).type == "PointsReserved"


async def test_a_redelivered_reserve_answers_the_same_and_holds_nothing_more(
    harness: Harness, points: Any
) -> None:
    await grant(harness, points, 100)
    await harness.deliver(points, RESERVE)
    first, hold = reply_to(RESERVE, harness), harness.hold("c1", "o1")
    harness.outbox.clear()

    await harness.deliver(points, RESERVE)

    again = reply_to(RESERVE, harness)
    assert (again.type, again.record.event_id) == (first.type, first.record.event_id)
    assert harness.account("c1") == PointsAccount(balance=100, held=30)
    assert harness.hold("c1", "o1") == hold
    assert harness.outbox.writes == []


async def test_rejects_a_reserve_beyond_the_available_points(harness: Harness, points: Any) -> None:
    await grant(harness, points, 20)

    await harness.deliver(points, RESERVE)

    assert harness.account("c1") == PointsAccount(balance=20, held=0)
    hold = harness.hold("c1", "o1")
    assert hold is not None and hold.status is HoldStatus.REJECTED
    reply = reply_to(RESERVE, harness)
    assert (reply.type, reply.record.reason) == ("PointsRejected", "insufficient_points")


async def test_deducts_the_held_points_once(harness: Harness, points: Any) -> None:
    deduct = r.DeductPoints(order_id="o1", store_id="s1", customer_id="c1")
    await grant(harness, points, 100)
    await harness.deliver(points, RESERVE)
    harness.outbox.clear()

    await harness.deliver(points, deduct)
    await harness.deliver(points, deduct)

    assert harness.account("c1") == PointsAccount(balance=70, held=0)
    hold = harness.hold("c1", "o1")
    assert hold is not None and hold.status is HoldStatus.DEDUCTED
    replies = harness.outbox.take()
    assert [s.type for s in replies] == ["PointsDeducted", "PointsDeducted"]
    assert replies[0].record.event_id == replies[1].record.event_id


async def test_a_release_frees_only_that_orders_hold(harness: Harness, points: Any) -> None:
    release = r.ReleasePoints(order_id="o1", store_id="s1", customer_id="c1")
    await grant(harness, points, 100)
    await harness.deliver(points, RESERVE)
    await harness.deliver(
        points, r.ReservePoints(order_id="o2", store_id="s1", customer_id="c1", amount=20)
    )
    harness.outbox.clear()

    await harness.deliver(points, release)

    assert harness.account("c1") == PointsAccount(balance=100, held=20)
    released, other = harness.hold("c1", "o1"), harness.hold("c1", "o2")
    assert released is not None and released.status is HoldStatus.RELEASED
    assert other is not None and other.status is HoldStatus.RESERVED
    assert reply_to(release, harness).type == "PointsReleased"


async def test_a_release_after_the_deduction_gives_the_points_back(
    harness: Harness, points: Any
) -> None:
    await spend(harness, points)

    await harness.deliver(points, r.ReleasePoints(order_id="o1", store_id="s1", customer_id="c1"))

    assert harness.account("c1") == PointsAccount(balance=100, held=0)
    hold = harness.hold("c1", "o1")
    assert hold is not None and hold.status is HoldStatus.RETURNED


async def test_a_release_before_the_reserve_leaves_a_tombstone_the_late_reserve_respects(
    harness: Harness, points: Any
) -> None:
    await grant(harness, points, 100)

    await harness.deliver(points, r.ReleasePoints(order_id="o1", store_id="s1", customer_id="c1"))
    await harness.deliver(points, RESERVE)

    assert harness.account("c1") == PointsAccount(balance=100, held=0)
    hold = harness.hold("c1", "o1")
    assert hold is not None and hold.status is HoldStatus.RELEASED


async def test_a_forget_deletes_the_orders_hold_and_leaves_the_account_alone(
    harness: Harness, points: Any
) -> None:
    await spend(harness, points)
    harness.outbox.clear()

    forget = r.ForgetPoints(order_id="o1", store_id="s1", customer_id="c1")
    await harness.deliver(points, forget)
    await harness.deliver(points, forget)  # redelivered: nothing left to delete

    assert harness.hold("c1", "o1") is None
    assert harness.account("c1") == PointsAccount(balance=70, held=0)
    entry = harness.tables.points.entries.get("c1")
    assert entry is not None and "o1" not in entry.last  # no later load writes it back
    assert harness.outbox.take() == []
