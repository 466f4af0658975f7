"""The read models stay right through a worker's kill -9 and a rebuild under load.

Through HTTP and a real worker (relay, saga, projections) on the real broker: orders are
completed while the worker is killed with SIGKILL and restarted, so the projections see
redelivered batches; the live read models must then equal a rebuild from the log, with each
sale counted once. And a rebuild that runs while orders are being placed must leave no order
behind (the live projection's writes against tables the rebuild replaces).
"""

from __future__ import annotations

import asyncio
from typing import Any

from eatcloud.bootstrap import build
from eatcloud.postgres.rebuild import rebuild
from tests.e2e.platform import (
    Platform,
    eventually,
    menu_with_stock,
    place,
    worker_settings,
)
from tests.integration.api_harness import bearer

PRICE = 10_000
SNAPSHOTS = {
    "order_view": "SELECT * FROM order_view ORDER BY order_id",
    # without ``seq``: a rebuild numbers its timeline after the live one (live updates resume)
    "order_timeline": "SELECT order_id, event_id, type, status, reason, occurred_at"
    " FROM order_timeline ORDER BY order_id, event_id",
    "stock_view": "SELECT * FROM stock_view ORDER BY store_id, menu_id",
    "store_sales": "SELECT * FROM store_sales ORDER BY store_id, day",
}


async def snapshot(p: Platform) -> dict[str, list[dict[str, Any]]]:
    return {
        name: [dict(row) for row in await p.api.pool.fetch(sql)] for name, sql in SNAPSHOTS.items()
    }


async def statuses(p: Platform, order_ids: list[str]) -> dict[str, str]:
    rows = await p.api.pool.fetch(
        "SELECT order_id, status FROM order_view WHERE order_id = ANY($1::text[]) AND placed",
        order_ids,
    )
    return {row["order_id"]: row["status"] for row in rows}


async def all_reach(p: Platform, order_ids: list[str], status: str, within: float) -> None:
    got = await eventually(
        lambda: statuses(p, order_ids),
        lambda seen: len(seen) == len(order_ids) and set(seen.values()) == {status},
        within,
    )
    late = {o: s for o, s in got.items() if s != status}
    missing = set(order_ids) - set(got)
    assert not late and not missing, f"not {status}: {late}, not in the view: {missing}\n" + (
        p.worker.tail(60)
    )


async def place_orders(p: Platform, store: str, menu: str, count: int) -> list[str]:
    customers = [await p.api.account() for _ in range(4)]

    async def orders_of(customer: dict[str, str], n: int) -> list[str]:
        ids = []
        for _ in range(n):
            placed = await place(p, customer, store, menu)
            assert placed.status_code == 202, placed.text
            ids.append(placed.json()["order_id"])
        return ids

    share = [count // 4 + (1 if n < count % 4 else 0) for n in range(4)]
    placed = await asyncio.gather(*(orders_of(c, n) for c, n in zip(customers, share, strict=True)))
    return [order_id for ids in placed for order_id in ids]


async def rebuild_now(p: Platform) -> None:
    async with build(worker_settings(p), pool_size=2) as services:
        await rebuild(services)


async def test_after_a_kill9_mid_completion_the_live_views_equal_a_rebuild(
    platform: Platform,
) -> None:
    p = platform
    store, menu = await menu_with_stock(p, price=PRICE, stock=1_000)
    order_ids = await place_orders(p, store, menu, 40)
    await all_reach(p, order_ids, "PAID", 120)
    manager = bearer(p.manager["access_token"])
    for n, order_id in enumerate(order_ids):
        base = f"/api/v1/stores/{store}/orders/{order_id}"
        accepted = await p.api.client.post(f"{base}/accept", headers=manager)
        completed = await p.api.client.post(f"{base}/complete", headers=manager)
        assert (accepted.status_code, completed.status_code) == (202, 202), completed.text
        if n == len(order_ids) // 2:
            p.worker.kill9()  # mid-completion: the projections' batches come again
            p.worker.start()
    await all_reach(p, order_ids, "COMPLETED", 180)
    await asyncio.sleep(2.0)  # the stock events of the last orders land too
    live = await snapshot(p)
    await rebuild_now(p)
    rebuilt = await snapshot(p)

    sales = [row for row in live["store_sales"] if row["store_id"] == store]
    assert [(row["orders"], row["revenue"]) for row in sales] == [(40, 40 * PRICE)]
    mine = [row for row in live["order_view"] if row["order_id"] in set(order_ids)]
    assert {row["events"] for row in mine} == {4}, "an event was applied twice or lost"
    assert rebuilt == live


async def test_a_rebuild_under_load_leaves_no_order_behind(platform: Platform) -> None:
    p = platform
    store, menu = await menu_with_stock(p, price=PRICE, stock=1_000)
    placing = asyncio.create_task(place_orders(p, store, menu, 40))
    await asyncio.sleep(0.5)  # orders are on their way through the relay and the saga
    await rebuild_now(p)
    order_ids = await placing
    await all_reach(p, order_ids, "PAID", 120)
    await asyncio.sleep(2.0)
    live = await snapshot(p)
    await rebuild_now(p)
    assert await snapshot(p) == live
