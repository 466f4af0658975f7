"""A store's manager reads its stock levels and its sales (per day, per menu), from the read
models the projections keep; another manager cannot, an admin can."""

from __future__ import annotations

import datetime as dt
from typing import Any

from tests.e2e.platform import Platform, eventually, menu_with_stock, place, wait
from tests.integration.api_harness import bearer

PRICE = 7_000


async def report(p: Platform, who: dict[str, str], path: str, **params: str) -> Any:
    return await p.api.client.get(path, params=params, headers=bearer(who["access_token"]))


async def test_stock_levels_and_sales_of_completed_orders(platform: Platform) -> None:
    p = platform
    store, menu = await menu_with_stock(p, price=PRICE, stock=10)
    customer = await p.api.account()
    manager = bearer(p.manager["access_token"])

    async def order(qty: int, *steps: str) -> str:
        placed = await place(p, customer, store, menu, qty=qty)
        assert placed.status_code == 202, placed.text
        order_id: str = placed.json()["order_id"]
        assert (await wait(p, customer, order_id, "PAID"))["status"] == "PAID"
        for step in steps:
            sent = await p.api.client.post(
                f"/api/v1/stores/{store}/orders/{order_id}/{step}", headers=manager
            )
            assert sent.status_code == 202, sent.text
        return order_id

    completed = [await order(2, "accept", "complete"), await order(1, "accept", "complete")]
    cancelled = await order(4, "cancel")
    for order_id in completed:
        assert (await wait(p, customer, order_id, "COMPLETED"))["status"] == "COMPLETED"
    assert (await wait(p, customer, cancelled, "CANCELLED"))["status"] == "CANCELLED"

    stock_url = f"/api/v1/stores/{store}/stock"
    levels = await eventually(
        lambda: report(p, p.manager, stock_url),
        lambda got: got.json()[0]["sold"] == 3 and got.json()[0]["on_hand"] == 7,
    )
    assert levels.status_code == 200, levels.text
    (line,) = levels.json()
    assert (line["menu_id"], line["name"], line["on_hand"], line["reserved"], line["sold"]) == (
        menu, "Galbi", 7, 0, 3
    )  # fmt: skip

    today = dt.datetime.now(dt.UTC).date()
    sales_url = f"/api/v1/stores/{store}/sales"
    got = await eventually(
        lambda: report(p, p.manager, sales_url), lambda got: got.json()["orders"] == 2
    )
    body = got.json()
    assert (body["orders"], body["revenue"]) == (2, 3 * PRICE)
    assert body["days"] == [{"day": today.isoformat(), "orders": 2, "revenue": 3 * PRICE}]
    assert body["menus"] == [{"menu_id": menu, "name": "Galbi", "units": 3, "gross": 3 * PRICE}]
    assert (body["first"], body["last"]) == (
        (today - dt.timedelta(days=29)).isoformat(), today.isoformat()
    )  # fmt: skip
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    earlier = await report(p, p.manager, sales_url, **{"from": yesterday, "to": yesterday})
    assert earlier.json()["orders"] == 0 and earlier.json()["menus"] == []

    # Who may read: the admin yes, another manager no (404: not even its existence).
    assert (await report(p, p.admin, sales_url)).json()["orders"] == 2
    stranger = await p.api.account("MANAGER")
    assert (await report(p, stranger, stock_url)).status_code == 404
    assert (await report(p, stranger, sales_url)).status_code == 404
    # Ranges: backwards, or longer than a year, are refused.
    backwards = await report(
        p, p.manager, sales_url, **{"from": today.isoformat(), "to": yesterday}
    )
    assert backwards.status_code == 422, backwards.text
    too_long = await report(p, p.manager, sales_url, **{"from": "2024-01-01", "to": "2025-06-01"})
    assert too_long.status_code == 422, too_long.text
