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


def told(harness: Harness) -> list[r.PointsChanged]:
    """The points-events sent since the last ``take``, keyed by customer; leaves the rest."""
    sent = harness.outbox.take()
    events = [s for s in sent if s.topic == t.POINTS_EVENTS]
    harness.outbox.sent = [s for s in sent if s.topic != t.POINTS_EVENTS]
    assert all(s.key == s.record.customer_id.encode() for s in events)
    return [s.record for s in events]


def reply_to(command: Any, harness: Harness) -> Any:
    """The one message sent besides points-events, checked to be the saga reply keyed and
    named for ``command``."""
    told(harness)
    (reply,) = harness.outbox.take()
    assert (reply.topic, reply.key) == (t.SAGA_REPLIES, command.store_id.encode())
    assert reply.record.event_id == r.derived_id(command.event_id, "reply")
    return reply


async def test_an_adjustment_grants_points_and_answers_nobody(
    harness: Harness, points: Any
) -> None:
    bonus = r.AdjustPoints(customer_id="c1", delta=100, reason="welcome")
    await harness.deliver(points, bonus)

    assert harness.account("c1") == PointsAccount(balance=100, held=0)
    (event,) = told(harness)
    assert (event.change, event.delta, event.balance, event.version, event.reason) == (
        r.PointsChange.GRANTED,
        100,
        100,
        1,
        "welcome",
    )
    assert event.event_id == r.derived_id(bonus.event_id, "points")
    assert harness.outbox.take() == []  # no reply: nobody asked


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

    harness.outbox.clear()
    await harness.deliver(points, r.AdjustPoints(customer_id="c1", delta=-50, reason="oops"))

    assert harness.account("c1") == PointsAccount(balance=100, held=80)
    (event,) = told(harness)  # the admin sees that it was refused, and why
    assert (event.change, event.delta, event.balance, event.held) == (
        r.PointsChange.REFUSED,
        0,
        100,
        80,
    )
    assert event.reason.startswith("oops (refused: -50")


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
    (event,) = told(harness)  # one change, told once
    assert (event.change, event.delta, event.held_delta, event.balance, event.held) == (
        r.PointsChange.DEDUCTED,
        -30,
        -30,
        70,
        0,
    )
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


async def test_a_completed_order_earns_points_once_and_answers_nobody(
    harness: Harness, points: Any
) -> None:
    await spend(harness, points)
    harness.outbox.clear()
    earn = r.EarnPoints(order_id="o1", store_id="s1", customer_id="c1", amount=12)

    await harness.deliver(points, earn)
    await harness.deliver(points, earn)  # redelivered
    await harness.deliver(  # an order that held no points earns too
        points, r.EarnPoints(order_id="o2", store_id="s1", customer_id="c1", amount=5)
    )

    assert harness.account("c1") == PointsAccount(balance=70 + 12 + 5, held=0)
    hold = harness.hold("c1", "o1")
    assert hold is not None and (hold.status, hold.earned) == (HoldStatus.DEDUCTED, 12)
    events = told(harness)
    assert [(e.change, e.delta, e.order_id, e.version) for e in events] == [
        (r.PointsChange.EARNED, 12, "o1", 4),  # after the grant, the reserve, the deduction
        (r.PointsChange.EARNED, 5, "o2", 5),
    ]
    assert harness.outbox.take() == []


async def test_every_change_is_told_with_the_account_after_it(
    harness: Harness, points: Any
) -> None:
    await spend(harness, points)
    await harness.deliver(points, r.ReleasePoints(order_id="o1", store_id="s1", customer_id="c1"))

    events = told(harness)
    assert [(e.change, e.delta, e.held_delta, e.balance, e.held, e.version) for e in events] == [
        (r.PointsChange.RESERVED, 0, 30, 100, 30, 2),
        (r.PointsChange.DEDUCTED, -30, -30, 70, 0, 3),
        (r.PointsChange.RETURNED, 30, 0, 100, 0, 4),
    ]
