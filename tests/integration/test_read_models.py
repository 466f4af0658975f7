"""Projections into the read models, and reviews on top of them (real PostgreSQL and Redis)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eatcloud.postgres import read_models as rm
from eatcloud.settings import Settings
from eatcloud.streams import records as r
from tests.integration.api_harness import Api, approved_store, bearer, running_api


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


async def _placed_order(api: Api) -> tuple[dict[str, str], dict[str, Any]]:
    manager, admin, customer = (
        await api.account("MANAGER"),
        await api.account("ADMIN"),
        await api.account(),
    )
    store = await approved_store(api, manager, admin, name=f"R {uuid.uuid4().hex[:6]}")
    menu = await api.client.post(
        f"/api/v1/stores/{store['id']}/menus",
        json={"name": "Naengmyeon", "price": 11_000},
        headers=bearer(manager["access_token"]),
    )
    placed = await api.client.post(
        "/api/v1/orders",
        json={
            "store_id": store["id"],
            "lines": [{"menu_id": menu.json()["id"], "quantity": 1}],
            "fulfilment": "PICKUP",
        },
        headers=bearer(customer["access_token"]),
    )
    assert placed.status_code == 202, placed.text
    return customer, placed.json()


def _history(order: dict[str, Any], customer_id: str) -> list[r.OrderEvent]:
    ids = {"order_id": order["order_id"], "customer_id": customer_id, "store_id": order["store_id"]}
    lines = tuple(r.OrderLine(**line) for line in order["lines"])
    return [
        r.OrderPlaced(
            **ids,
            lines=lines,
            points=0,
            total_amount=11_000,
            final_amount=11_000,
            order_type=r.OrderType.PICKUP,
        ),
        r.OrderPaid(**ids, amount=11_000, authorization_id="auth-1"),
        r.OrderAccepted(**ids),
        r.OrderCompleted(**ids),
    ]


async def test_a_projection_applies_each_event_once_however_often_it_is_delivered(
    api: Api,
) -> None:
    customer, order = await _placed_order(api)
    events = _history(order, customer["id"])
    async with api.pool.acquire() as conn:
        first = await rm.apply_order_events(conn, events[:2])
        again = await rm.apply_order_events(conn, events)  # redelivery overlapping the first
        view = await rm.order_view(conn, order["order_id"])
        timeline = await rm.timeline(conn, order["order_id"])
        sales = await conn.fetchrow(
            "SELECT orders, revenue FROM store_sales WHERE store_id = $1", order["store_id"]
        )
    assert [e.type for e in first] == ["OrderPlaced", "OrderPaid"]
    assert [e.type for e in again] == ["OrderAccepted", "OrderCompleted"]
    assert view is not None and (view["status"], view["events"]) == ("COMPLETED", 4)
    assert [t["status"] for t in timeline] == ["PENDING", "PAID", "ACCEPTED", "COMPLETED"]
    assert dict(sales) == {"orders": 1, "revenue": 11_000}


async def test_two_copies_of_an_event_in_one_batch_apply_once(api: Api) -> None:
    """A redelivery can put both copies of an event in one batch: before, both were applied
    (a completed order's revenue counted twice, its ``events`` counter off by one)."""
    customer, order = await _placed_order(api)
    events = _history(order, customer["id"])
    doubled = [e for event in events for e in (event, event)]
    async with api.pool.acquire() as conn:
        fresh = await rm.apply_order_events(conn, doubled)
        view = await rm.order_view(conn, order["order_id"])
        sales = await conn.fetchrow(
            "SELECT orders, revenue FROM store_sales WHERE store_id = $1", order["store_id"]
        )
    assert [e.type for e in fresh] == [e.type for e in events]
    assert view is not None and (view["status"], view["events"]) == ("COMPLETED", 4)
    assert dict(sales) == {"orders": 1, "revenue": 11_000}


@pytest.mark.parametrize(
    "arrival",
    [
        [1, 0, 2, 3],  # OrderPaid before a redelivered OrderPlaced
        [3, 2, 1, 0],  # the whole history backwards
        [0, 3, 1, 2],  # completed early, then the rest
    ],
)
async def test_an_order_ends_right_whatever_order_its_events_come_in(
    api: Api, arrival: list[int]
) -> None:
    customer, order = await _placed_order(api)
    events = _history(order, customer["id"])
    async with api.pool.acquire() as conn:
        for n in arrival:  # one batch each
            await rm.apply_order_events(conn, [events[n]])
        view = await rm.order_view(conn, order["order_id"])
        timeline = await rm.timeline(conn, order["order_id"])
        sales = await conn.fetchrow(
            "SELECT orders, revenue FROM store_sales WHERE store_id = $1", order["store_id"]
        )
    assert view is not None
    assert (view["status"], view["events"], view["total"]) == ("COMPLETED", 4, 11_000)
    assert [line["menu_id"] for line in view["lines"]] == [ln["menu_id"] for ln in order["lines"]]
    assert sorted(t["status"] for t in timeline) == ["ACCEPTED", "COMPLETED", "PAID", "PENDING"]
    assert dict(sales) == {"orders": 1, "revenue": 11_000}


async def test_an_order_whose_placed_event_is_not_applied_yet_is_not_shown(api: Api) -> None:
    customer, order = await _placed_order(api)
    paid = _history(order, customer["id"])[1]
    async with api.pool.acquire() as conn:
        await rm.apply_order_events(conn, [paid])
        view = await rm.order_view(conn, order["order_id"])
        listed = await rm.orders_where(conn, customer_id=customer["id"])
    assert view is None
    assert order["order_id"] not in [row["order_id"] for row in listed]


async def test_a_stock_event_projects_each_of_its_lines_once_however_often_it_is_delivered(
    api: Api,
) -> None:
    store = f"s-{uuid.uuid4().hex[:8]}"

    def levels(on_hand: int, reserved: int, change: r.StockChange) -> r.StockLevel:
        return r.StockLevel(
            menu_id="m1", change=change, quantity=1, on_hand=on_hand, reserved=reserved, sold=0
        )

    def line_two(reserved: int) -> r.StockLevel:
        return r.StockLevel(
            menu_id="m2", change=r.StockChange.RESERVED, quantity=2, on_hand=9,
            reserved=reserved, sold=0,
        )  # fmt: skip

    reserved = r.StockLevelsChanged(
        store_id=store, order_id="o1", lines=(levels(5, 1, r.StockChange.RESERVED), line_two(2))
    )
    released = r.StockLevelsChanged(
        store_id=store, order_id="o1", lines=(levels(5, 0, r.StockChange.RELEASED),)
    )
    async with api.pool.acquire() as conn:
        first = await rm.apply_stock_events(conn, [reserved])
        again = await rm.apply_stock_events(conn, [reserved, released])  # a redelivery, and more
        rows = await conn.fetch(
            "SELECT menu_id, on_hand, reserved FROM stock_view WHERE store_id = $1 ORDER BY 1",
            store,
        )
    assert [(e.menu_id, e.change) for e in first] == [("m1", "reserved"), ("m2", "reserved")]
    assert [(e.menu_id, e.change) for e in again] == [("m1", "released")]
    assert [tuple(row) for row in rows] == [("m1", 5, 0), ("m2", 9, 2)]


async def test_a_stock_line_that_is_not_newer_leaves_the_view_alone(api: Api) -> None:
    """A late copy of an older line (its processed_events record pruned, say) must not set
    the menu's row back: the row follows the ledger's version."""
    store = f"s-{uuid.uuid4().hex[:8]}"

    def at(version: int, reserved: int) -> r.StockLevelsChanged:
        line = r.StockLevel(
            menu_id="m1", change=r.StockChange.RESERVED, quantity=1, on_hand=5,
            reserved=reserved, sold=0, version=version,
        )  # fmt: skip
        return r.StockLevelsChanged(store_id=store, order_id=f"o{version}", lines=(line,))

    async with api.pool.acquire() as conn:
        await rm.apply_stock_events(conn, [at(1, 1), at(3, 3)])
        await rm.apply_stock_events(conn, [at(2, 2)])  # older, and never seen before
        row = await conn.fetchrow(
            "SELECT reserved, version FROM stock_view WHERE store_id = $1", store
        )
    assert dict(row) == {"reserved": 3, "version": 3}


async def test_one_review_per_completed_order_and_the_store_ratings(api: Api) -> None:
    customer, order = await _placed_order(api)
    auth = bearer(customer["access_token"])
    path = f"/api/v1/orders/{order['order_id']}/review"
    too_early = await api.client.post(path, json={"rating": 5}, headers=auth)
    assert too_early.status_code == 409, too_early.text
    async with api.pool.acquire() as conn:
        await rm.apply_order_events(conn, _history(order, customer["id"]))
    stranger = await api.account()
    theirs = await api.client.post(
        path, json={"rating": 1}, headers=bearer(stranger["access_token"])
    )
    six = await api.client.post(path, json={"rating": 6}, headers=auth)
    first = await api.client.post(
        path, json={"rating": 4, "content": "Cold and good"}, headers=auth
    )
    second = await api.client.post(path, json={"rating": 1}, headers=auth)
    assert (theirs.status_code, six.status_code) == (404, 422)
    assert first.status_code == 201 and second.status_code == 409
    ratings = await api.client.get(f"/api/v1/stores/{order['store_id']}/ratings", headers=auth)
    assert ratings.json() == {
        "store_id": order["store_id"],
        "count": 1,
        "average": 4.0,
        "histogram": {"1": 0, "2": 0, "3": 0, "4": 1, "5": 0},
    }
    listed = await api.client.get(f"/api/v1/stores/{order['store_id']}/reviews", headers=auth)
    assert [(x["rating"], x["content"]) for x in listed.json()] == [(4, "Cold and good")]
