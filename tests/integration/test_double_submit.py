"""Double submits without an Idempotency-Key place one order (real PostgreSQL and Redis).

The rest of the suite runs with the window off (tests/conftest.py); the APIs here turn it on.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from eatcloud.checkout import CheckoutRequest
from eatcloud.locks import double_submit
from eatcloud.settings import Settings
from tests.integration.api_harness import Api, add_menu, api_on, approved_store, bearer, running_api
from tests.integration.databases import fresh_database
from tests.integration.test_dependency_outages import PrivateRedis, assert_unavailable

WINDOW = 10.0
CLICKS = 5
GAP = 0.012  # seconds between two clicks


def windowed(settings: Settings, seconds: float) -> Settings:
    """``settings`` with a double-submit window of ``seconds``."""
    return settings.model_copy(
        update={"api": settings.api.model_copy(update={"double_submit_seconds": seconds})}
    )


@pytest.fixture(scope="module")
async def db(settings: Settings) -> AsyncIterator[Settings]:
    async with fresh_database(settings) as fresh:
        yield fresh


@pytest.fixture(scope="module")
async def api(db: Settings) -> AsyncIterator[Api]:
    async with api_on(windowed(db, WINDOW)) as running:
        yield running


@pytest.fixture(scope="module")
async def shop(api: Api) -> dict[str, Any]:
    """An approved store with two menus."""
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    store = await approved_store(api, manager, admin, name=f"Click {uuid.uuid4().hex[:4]}")
    menus = [
        (await add_menu(api, store["id"], manager, name=name, price=price))["id"]
        for name, price in (("Bibimbap", 9_000), ("Mandu", 5_500))
    ]
    return {"store": str(store["id"]), "menus": menus}


def _order(shop: dict[str, Any], quantity: int = 1, **extra: Any) -> dict[str, Any]:
    return {
        "store_id": shop["store"],
        "lines": [{"menu_id": shop["menus"][0], "quantity": quantity}],
        "delivery_address": "1 Main St",
        **extra,
    }


async def _customer(api: Api) -> dict[str, str]:
    return bearer((await api.account())["access_token"])


async def _orders_of(api: Api, auth: dict[str, str]) -> int:
    me = await api.client.get("/api/v1/auth/me", headers=auth)
    count: int = await api.pool.fetchval(
        "SELECT count(*) FROM orders WHERE customer_id = $1", uuid.UUID(me.json()["id"])
    )
    return count


def _replayed(response: httpx.Response) -> bool:
    return response.headers.get("idempotent-replayed") == "true"


async def _clicks(
    api: Api, auth: dict[str, str], body: dict[str, Any], pacing: str
) -> list[httpx.Response]:
    """``CLICKS`` identical checkouts: each after the previous answer and ``GAP`` (sequential),
    sent ``GAP`` apart whether answered or not (staggered), or all at once (burst)."""

    def click() -> Any:
        return api.client.post("/api/v1/orders", json=body, headers=auth)

    if pacing == "sequential":
        answers = []
        for _ in range(CLICKS):
            answers.append(await click())
            await asyncio.sleep(GAP)
        return answers
    if pacing == "staggered":
        sent = []
        for _ in range(CLICKS):
            sent.append(asyncio.ensure_future(click()))
            await asyncio.sleep(GAP)
        return list(await asyncio.gather(*sent))
    return list(await asyncio.gather(*(click() for _ in range(CLICKS))))


@pytest.mark.parametrize("pacing", ["sequential", "staggered", "burst"])
async def test_five_identical_checkouts_place_one_order_and_every_answer_names_it(
    api: Api, shop: dict[str, Any], pacing: str
) -> None:
    auth = await _customer(api)
    answers = await _clicks(api, auth, _order(shop, 2), pacing)
    assert [a.status_code for a in answers] == [202] * CLICKS, [a.text for a in answers]
    [order_id] = {a.json()["order_id"] for a in answers}
    assert [_replayed(a) for a in answers].count(True) == CLICKS - 1
    [first] = [a for a in answers if not _replayed(a)]
    assert "idempotent-replayed" not in first.headers
    assert all(a.json() == first.json() for a in answers)
    assert {a.headers["location"] for a in answers} == {f"/api/v1/orders/{order_id}"}
    assert await _orders_of(api, auth) == 1
    outbox = await api.pool.fetchval(
        "SELECT count(*) FROM outbox WHERE aggregate_id = $1", order_id
    )
    assert outbox == 1


async def test_another_body_within_the_window_is_another_order(
    api: Api, shop: dict[str, Any]
) -> None:
    auth = await _customer(api)
    one = await api.client.post("/api/v1/orders", json=_order(shop, 1), headers=auth)
    two = await api.client.post("/api/v1/orders", json=_order(shop, 2), headers=auth)
    pickup = _order(shop, 1, fulfilment="PICKUP", delivery_address=None)
    elsewhere = await api.client.post("/api/v1/orders", json=pickup, headers=auth)
    again = await api.client.post("/api/v1/orders", json=_order(shop, 1), headers=auth)
    assert [a.status_code for a in (one, two, elsewhere, again)] == [202] * 4
    assert [_replayed(a) for a in (one, two, elsewhere, again)] == [False, False, False, True]
    ids = [a.json()["order_id"] for a in (one, two, elsewhere, again)]
    assert len(set(ids[:3])) == 3 and ids[3] == ids[0]
    assert two.json()["lines"][0]["quantity"] == 2
    assert await _orders_of(api, auth) == 3


async def test_the_same_body_after_the_window_is_a_new_order(
    db: Settings, api: Api, shop: dict[str, Any]
) -> None:
    auth = await _customer(api)
    async with api_on(windowed(db, 1.0)) as short:
        first = await short.client.post("/api/v1/orders", json=_order(shop), headers=auth)
        within = await short.client.post("/api/v1/orders", json=_order(shop), headers=auth)
        await asyncio.sleep(1.3)
        after = await short.client.post("/api/v1/orders", json=_order(shop), headers=auth)
    assert [a.status_code for a in (first, within, after)] == [202] * 3, after.text
    assert [_replayed(a) for a in (first, within, after)] == [False, True, False]
    assert within.json()["order_id"] == first.json()["order_id"] != after.json()["order_id"]
    assert await _orders_of(api, auth) == 2


async def test_a_refused_checkout_blocks_neither_its_correction_nor_its_retry(
    api: Api, shop: dict[str, Any]
) -> None:
    auth = await _customer(api)
    greedy = await api.client.post("/api/v1/orders", json=_order(shop, points=10**6), headers=auth)
    assert greedy.status_code == 422, greedy.text
    corrected = await api.client.post("/api/v1/orders", json=_order(shop), headers=auth)
    assert corrected.status_code == 202 and not _replayed(corrected), corrected.text
    # The same body refused, then sent again once it can succeed: a new order, not a replay.
    from_cart = {"delivery_address": "2 Side St"}
    empty = await api.client.post("/api/v1/orders", json=from_cart, headers=auth)
    assert empty.status_code == 422 and "cart is empty" in empty.text
    await _fill_cart(api, auth, shop)
    retried = await api.client.post("/api/v1/orders", json=from_cart, headers=auth)
    assert retried.status_code == 202 and not _replayed(retried), retried.text
    assert retried.json()["order_id"] != corrected.json()["order_id"]
    assert await _orders_of(api, auth) == 2


async def _fill_cart(api: Api, auth: dict[str, str], shop: dict[str, Any]) -> None:
    put = await api.client.put(
        f"/api/v1/cart/items/{shop['menus'][1]}",
        json={"store_id": shop["store"], "quantity": 2},
        headers=auth,
    )
    assert put.status_code == 200, put.text


async def test_a_double_click_on_the_cart_replays_but_a_cart_filled_again_is_a_new_order(
    api: Api, shop: dict[str, Any]
) -> None:
    auth = await _customer(api)
    from_cart = {"delivery_address": "2 Side St"}
    await _fill_cart(api, auth, shop)
    first, second = await asyncio.gather(
        *(api.client.post("/api/v1/orders", json=from_cart, headers=auth) for _ in range(2))
    )
    assert (first.status_code, second.status_code) == (202, 202), (first.text, second.text)
    assert first.json()["order_id"] == second.json()["order_id"]
    assert sorted([_replayed(first), _replayed(second)]) == [False, True]
    # The cart emptied by that order: a click after the answer still gets it.
    late = await api.client.post("/api/v1/orders", json=from_cart, headers=auth)
    assert late.status_code == 202 and _replayed(late), late.text
    assert late.json()["order_id"] == first.json()["order_id"]
    await _fill_cart(api, auth, shop)
    again = await api.client.post("/api/v1/orders", json=from_cart, headers=auth)
    assert again.status_code == 202 and not _replayed(again), again.text
    assert again.json()["order_id"] != first.json()["order_id"]
    assert await _orders_of(api, auth) == 2


async def test_with_an_idempotency_key_the_window_changes_nothing(
    api: Api, shop: dict[str, Any]
) -> None:
    auth = await _customer(api)

    async def keyed(key: str, body: dict[str, Any]) -> httpx.Response:
        return await api.client.post(
            "/api/v1/orders", json=body, headers={**auth, "Idempotency-Key": key}
        )

    a = await keyed("key-a", _order(shop))
    b = await keyed("key-b", _order(shop))  # another key: another order, whatever the body
    a_again = await keyed("key-a", _order(shop))
    a_other = await keyed("key-a", _order(shop, 2))
    assert [r.status_code for r in (a, b, a_again, a_other)] == [202, 202, 202, 422]
    assert "different request body" in a_other.text
    assert [_replayed(r) for r in (a, b, a_again)] == [False, False, True]
    assert a_again.json()["order_id"] == a.json()["order_id"] != b.json()["order_id"]
    # A keyed checkout leaves nothing for the window, and takes nothing from it.
    keyless = await api.client.post("/api/v1/orders", json=_order(shop), headers=auth)
    c = await keyed("key-c", _order(shop))
    assert (keyless.status_code, c.status_code) == (202, 202)
    assert not _replayed(keyless) and not _replayed(c)
    assert len({r.json()["order_id"] for r in (a, b, keyless, c)}) == 4
    assert await _orders_of(api, auth) == 4


async def test_a_window_of_zero_turns_the_guard_off(db: Settings, shop: dict[str, Any]) -> None:
    async with api_on(windowed(db, 0)) as off:
        auth = await _customer(off)
        answers = [
            await off.client.post("/api/v1/orders", json=_order(shop), headers=auth)
            for _ in range(2)
        ]
        assert [a.status_code for a in answers] == [202, 202]
        assert not any(_replayed(a) for a in answers)
        assert answers[0].json()["order_id"] != answers[1].json()["order_id"]
        assert await _orders_of(off, auth) == 2


async def test_redis_going_down_while_a_click_waits_for_the_first_is_503_not_500(
    settings: Settings, tmp_path: Path
) -> None:
    private = PrivateRedis(tmp_path)
    private.start()
    try:
        on_private = windowed(
            settings.model_copy(
                update={"redis": settings.redis.model_copy(update={"port": private.port})}
            ),
            WINDOW,
        )
        async with running_api(on_private) as api:
            user = await api.account()
            store, menu = str(uuid.uuid4()), str(uuid.uuid4())
            body = {
                "store_id": store,
                "lines": [{"menu_id": menu, "quantity": 1}],
                "delivery_address": "1 Main St",
            }
            # An identical checkout still running: this click waits for it.
            fingerprint = CheckoutRequest(store, ((menu, 1, ()),), 0, "DELIVERY", "1 Main St")
            pending = double_submit.key(user["id"], fingerprint.fingerprint())
            await api.redis.set(pending, double_submit.PENDING + "first", px=30_000)
            click = asyncio.ensure_future(
                api.client.post("/api/v1/orders", json=body, headers=bearer(user["access_token"]))
            )
            await asyncio.sleep(0.3)
            assert not click.done(), click.result().text
            await asyncio.to_thread(private.stop)
            assert_unavailable(await click)
    finally:
        private.stop()
