"""Checkout against the real PostgreSQL and Redis (no worker: the outbox is the output)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from eatcloud.locks import gate
from eatcloud.settings import Settings
from eatcloud.streams import records as r
from tests.integration.api_harness import Api, add_menu, approved_store, bearer, metric, running_api


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


@pytest.fixture(scope="module")
async def shop(api: Api) -> dict[str, Any]:
    """An approved store with two menus, its manager and an admin."""
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    store = await approved_store(api, manager, admin, name=f"Shop {uuid.uuid4().hex[:4]}")
    menus = [
        await add_menu(api, store["id"], manager, name=name, price=price)
        for name, price in (("Bibimbap", 9_000), ("Mandu", 5_500))
    ]
    return {"store": store, "menus": menus, "manager": manager}


def _order(shop: dict[str, Any], *quantities: int, **extra: Any) -> dict[str, Any]:
    lines = [
        {"menu_id": m["id"], "quantity": q}
        for m, q in zip(shop["menus"], quantities, strict=False)
        if q
    ]
    return {
        "store_id": shop["store"]["id"],
        "lines": lines,
        "delivery_address": "1 Main St",
        **extra,
    }


async def _outbox(api: Api, order_id: str) -> list[dict[str, Any]]:
    rows = await api.pool.fetch(
        "SELECT topic, type, payload, headers FROM outbox WHERE aggregate_id = $1", order_id
    )
    return [{**dict(row), "payload": orjson.loads(bytes(row["payload"]))} for row in rows]


async def test_checkout_prices_on_the_server_and_writes_order_and_outbox_together(
    api: Api, shop: dict[str, Any]
) -> None:
    customer = await api.account()
    placed = await api.client.post(
        "/api/v1/orders",
        json=_order(shop, 2, 1),
        headers={**bearer(customer["access_token"]), "X-Request-ID": "req-checkout-1"},
    )
    assert placed.status_code == 202, placed.text
    body = placed.json()
    assert placed.headers["location"] == f"/api/v1/orders/{body['order_id']}"
    assert (body["status"], body["total"], body["final_amount"]) == ("PENDING", 23_500, 23_500)
    [row] = await _outbox(api, body["order_id"])
    assert (row["topic"], row["type"]) == ("order-commands", "PlaceOrder")
    assert row["payload"]["customer_id"] == customer["id"]
    assert sorted(ln["unit_price"] for ln in row["payload"]["lines"]) == [5_500, 9_000]
    assert row["headers"]["x-request-id"] == "req-checkout-1"
    # The client cannot name a price: the schema has no such field.
    priced = _order(shop, 1)
    priced["lines"][0]["unit_price"] = 1
    refused = await api.client.post(
        "/api/v1/orders", json=priced, headers=bearer(customer["access_token"])
    )
    assert refused.status_code == 422


async def test_bad_orders_get_clear_errors_and_no_outbox_row(
    api: Api, shop: dict[str, Any]
) -> None:
    customer = await api.account()
    auth = bearer(customer["access_token"])
    cases = {
        "no address": ({**_order(shop, 1), "delivery_address": None}, 422),
        "too many points": (_order(shop, 1, points=10**6), 422),
        "unknown menu": (
            {**_order(shop, 1), "lines": [{"menu_id": str(uuid.uuid4()), "quantity": 1}]},
            422,
        ),
        "unknown store": ({**_order(shop, 1), "store_id": str(uuid.uuid4())}, 404),
        "zero quantity": (
            {**_order(shop, 1), "lines": [{"menu_id": shop["menus"][0]["id"], "quantity": 0}]},
            422,
        ),
    }
    for name, (body, status) in cases.items():
        response = await api.client.post("/api/v1/orders", json=body, headers=auth)
        assert response.status_code == status, (name, response.text)
        assert response.headers["content-type"] == "application/problem+json"
    manager = await api.client.post(
        "/api/v1/orders", json=_order(shop, 1), headers=bearer(shop["manager"]["access_token"])
    )
    assert manager.status_code == 403
    assert await _orders_of(api, customer) == 0


async def test_an_idempotency_key_gives_one_order_however_often_it_is_clicked(
    api: Api, shop: dict[str, Any]
) -> None:
    customer = await api.account()
    headers = {**bearer(customer["access_token"]), "Idempotency-Key": "click-1"}
    clicks = await asyncio.gather(
        *(
            api.client.post("/api/v1/orders", json=_order(shop, 1), headers=headers)
            for _ in range(5)
        )
    )
    assert {c.status_code for c in clicks} <= {202, 409}, [c.text for c in clicks]
    order_ids = {c.json()["order_id"] for c in clicks if c.status_code == 202}
    busy = [c for c in clicks if c.status_code == 409]
    assert all("in progress" in c.json()["detail"] for c in busy)
    again = await api.client.post("/api/v1/orders", json=_order(shop, 1), headers=headers)
    assert again.status_code == 202 and again.headers["idempotent-replayed"] == "true"
    assert order_ids | {again.json()["order_id"]} == {again.json()["order_id"]}
    other_body = await api.client.post("/api/v1/orders", json=_order(shop, 2), headers=headers)
    assert other_body.status_code == 422 and "different request body" in other_body.text
    assert await _orders_of(api, customer) == 1


async def test_the_cart_holds_one_store_and_checkout_empties_it(
    api: Api, shop: dict[str, Any]
) -> None:
    customer = await api.account()
    auth = bearer(customer["access_token"])
    bibimbap, mandu = (m["id"] for m in shop["menus"])
    sid = shop["store"]["id"]
    await api.client.put(
        f"/api/v1/cart/items/{bibimbap}", json={"store_id": sid, "quantity": 2}, headers=auth
    )
    cart = await api.client.put(
        f"/api/v1/cart/items/{mandu}", json={"store_id": sid, "quantity": 3}, headers=auth
    )
    assert cart.status_code == 200, cart.text
    assert cart.json()["total"] == 2 * 9_000 + 3 * 5_500
    # A line that is valid in itself (another approved store, one of its own menus): only the
    # cart's store refuses it, as another customer's cart shows.
    other_manager = await api.account("MANAGER")
    elsewhere = await approved_store(
        api, other_manager, await api.account("ADMIN"), name="Elsewhere"
    )
    tteok = await api.client.post(
        f"/api/v1/stores/{elsewhere['id']}/menus",
        json={"name": "Tteokbokki", "price": 4_000},
        headers=bearer(other_manager["access_token"]),
    )
    assert tteok.status_code == 201, tteok.text
    line = {"store_id": elsewhere["id"], "quantity": 1}
    item = f"/api/v1/cart/items/{tteok.json()['id']}"
    someone = bearer((await api.account())["access_token"])
    assert (await api.client.put(item, json=line, headers=someone)).status_code == 200
    clash = await api.client.put(item, json=line, headers=auth)
    assert clash.status_code == 409, clash.text
    assert clash.headers["content-type"] == "application/problem+json"
    assert clash.json()["type"] == "https://eatcloud.dev/problems/conflict"
    assert "another store's menus" in clash.json()["detail"]
    kept = await api.client.get("/api/v1/cart", headers=auth)
    assert kept.json()["store_id"] == sid and kept.json()["total"] == 2 * 9_000 + 3 * 5_500
    placed = await api.client.post(
        "/api/v1/orders", json={"delivery_address": "2 Side St"}, headers=auth
    )
    assert placed.status_code == 202, placed.text
    assert placed.json()["total"] == 2 * 9_000 + 3 * 5_500
    emptied = await api.client.get("/api/v1/cart", headers=auth)
    assert emptied.json() == {"store_id": None, "items": [], "total": 0}
    nothing = await api.client.post(
        "/api/v1/orders", json={"delivery_address": "2 Side St"}, headers=auth
    )
    assert nothing.status_code == 422 and "cart is empty" in nothing.text


async def test_the_stock_gate_refuses_sold_out_lines_with_409_before_the_outbox(
    api: Api, shop: dict[str, Any]
) -> None:
    sid, menu = shop["store"]["id"], shop["menus"][1]["id"]
    redis = api.redis
    await gate.apply(
        redis,
        r.StockLevelChanged(
            store_id=sid,
            menu_id=menu,
            change=r.StockChange.ADJUSTED,
            quantity=3,
            on_hand=3,
            reserved=0,
            sold=0,
        ),
    )
    customer = await api.account()
    auth = bearer(customer["access_token"])
    before = (await api.client.get("/metrics")).text
    first = await api.client.post("/api/v1/orders", json=_order(shop, 0, 2), headers=auth)
    second = await api.client.post("/api/v1/orders", json=_order(shop, 0, 2), headers=auth)
    after = (await api.client.get("/metrics")).text
    rejections, held = (
        "eatcloud_stock_gate_rejections_total",
        "eatcloud_checkout_lock_held_seconds_count",
    )
    assert metric(after, rejections) == metric(before, rejections) + 1
    assert metric(after, held) == metric(before, held) + 2  # both held the customer's lock
    assert first.status_code == 202, first.text
    assert second.status_code == 409, second.text
    assert second.json()["type"].endswith("/sold-out")
    assert second.json()["menu_id"] == menu and second.json()["available"] == 1
    assert await _orders_of(api, customer) == 1


async def test_checkouts_are_rate_limited_per_customer(api: Api, shop: dict[str, Any]) -> None:
    customer = await api.account()
    auth = bearer(customer["access_token"])
    burst = api.settings.rate_limit.checkout_burst
    nowhere = {**_order(shop, 1), "store_id": str(uuid.uuid4())}
    statuses = [
        (await api.client.post("/api/v1/orders", json=nowhere, headers=auth)).status_code
        for _ in range(burst + 1)
    ]
    assert statuses == [404] * burst + [429]


async def _orders_of(api: Api, customer: dict[str, str]) -> int:
    count: int = await api.pool.fetchval(
        "SELECT count(*) FROM orders WHERE customer_id = $1", uuid.UUID(customer["id"])
    )
    return count


async def test_every_spelling_of_an_id_is_one_id_at_the_edge(api: Api) -> None:
    # PostgreSQL reads {UPPER-CASE}, hyphen-less and urn: spellings as the same uuid, but the
    # stock gate's Redis keys and the saga's keys compare text: a second spelling of a store
    # used to be a second, empty gate (and failed the menu check). The edge makes them one.
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    store = await approved_store(api, manager, admin, name=f"Spelt {uuid.uuid4().hex[:4]}")
    sid = str(store["id"])
    menu = (
        await api.client.post(
            f"/api/v1/stores/{sid}/menus",
            json={"name": "Tteokbokki", "price": 7_000},
            headers=bearer(manager["access_token"]),
        )
    ).json()["id"]
    adjusted = await api.client.post(
        f"/api/v1/stores/{sid.upper()}/menus/urn:uuid:{menu}/stock",
        json={"delta": 1},
        headers=bearer(manager["access_token"]),
    )
    assert adjusted.status_code == 202, adjusted.text
    row = await api.pool.fetchrow(
        "SELECT aggregate_id, payload FROM outbox WHERE id = (SELECT max(id) FROM outbox"
        " WHERE type = 'AdjustStock')"
    )
    payload = orjson.loads(bytes(row["payload"]))
    assert (row["aggregate_id"], payload["store_id"], payload["menu_id"]) == (sid, sid, menu)

    await gate.apply(
        api.redis,
        r.StockLevelChanged(
            store_id=sid, menu_id=menu, change=r.StockChange.ADJUSTED, quantity=1, on_hand=1,
            reserved=0, sold=0,
        ),
    )  # fmt: skip
    auth = bearer((await api.account())["access_token"])
    spelt = await api.client.post(
        "/api/v1/orders",
        json={
            "store_id": "{" + sid.upper() + "}",
            "lines": [{"menu_id": menu.replace("-", "").upper(), "quantity": 1}],
            "delivery_address": "1 Main St",
        },
        headers=auth,
    )
    assert spelt.status_code == 202, spelt.text
    assert spelt.json()["store_id"] == sid and spelt.json()["lines"][0]["menu_id"] == menu
    canonical = await api.client.post(
        "/api/v1/orders",
        json={"store_id": sid, "lines": [{"menu_id": menu, "quantity": 1}],
              "delivery_address": "1 Main St"},
        headers=auth,
    )  # fmt: skip
    assert canonical.status_code == 409, canonical.text  # the one on hand is held already


async def test_an_order_over_the_total_limit_is_a_client_error_not_a_500(api: Api) -> None:
    # 99 of a 10,000,000 menu: 990,000,000, past the limit (and 100 such lines past 2^31, where
    # the integer columns used to answer 500).
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    store = await approved_store(api, manager, admin, name=f"Dear {uuid.uuid4().hex[:4]}")
    menus = [
        (
            await api.client.post(
                f"/api/v1/stores/{store['id']}/menus",
                json={"name": f"Caviar {n}", "price": 10_000_000},
                headers=bearer(manager["access_token"]),
            )
        ).json()["id"]
        for n in range(3)
    ]
    auth = bearer((await api.account())["access_token"])
    big = await api.client.post(
        "/api/v1/orders",
        json={
            "store_id": store["id"],
            "lines": [{"menu_id": m, "quantity": 99} for m in menus],
            "delivery_address": "1 Main St",
        },
        headers=auth,
    )
    assert big.status_code == 422, big.text
    assert "over the limit" in big.json()["detail"]
    within = await api.client.post(
        "/api/v1/orders",
        json={"store_id": store["id"], "lines": [{"menu_id": menus[0], "quantity": 10}],
              "delivery_address": "1 Main St"},
        headers=auth,
    )  # fmt: skip
    assert within.status_code == 202, within.text
    row = await api.pool.fetchrow(
        "SELECT total, pg_typeof(total)::text AS kind FROM orders WHERE id = $1::uuid",
        within.json()["order_id"],
    )
    assert (row["total"], row["kind"]) == (100_000_000, "bigint")
