"""A store's own terms at checkout and in search: hours, closed dates, minimum, radius."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from eatcloud.settings import Settings
from tests.integration.api_harness import Api, approved_store, bearer, running_api

EVERY_DAY = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


def _week_around_now(zone: str, start_hours: float, end_hours: float) -> dict[str, Any]:
    """The same interval every day, from ``start_hours`` to ``end_hours`` after now, local."""
    now = datetime.now(ZoneInfo(zone))
    start, end = ((now + timedelta(hours=h)).strftime("%H:%M") for h in (start_hours, end_hours))
    return {day: [[start, end]] for day in EVERY_DAY}


async def _store(
    api: Api, lat: float, lon: float, price: int = 9_000, **terms: Any
) -> dict[str, Any]:
    """An approved store with one menu at ``price``, and its ``terms`` set by its manager."""
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    store = await approved_store(
        api, manager, admin, name=f"Terms {uuid.uuid4().hex[:6]}", lat=lat, lon=lon
    )
    auth = bearer(manager["access_token"])
    menu = await api.client.post(
        f"/api/v1/stores/{store['id']}/menus", json={"name": "Gimbap", "price": price}, headers=auth
    )
    assert menu.status_code == 201, menu.text
    if terms:
        changed = await api.client.patch(f"/api/v1/stores/{store['id']}", json=terms, headers=auth)
        assert changed.status_code == 200, changed.text
        store = changed.json()
    return {**store, "menu_id": menu.json()["id"], "auth": auth}


async def _checkout(api: Api, store: dict[str, Any], quantity: int = 1, **extra: Any) -> Any:
    customer = await api.account()
    body = {
        "store_id": store["id"],
        "lines": [{"menu_id": store["menu_id"], "quantity": quantity}],
        "delivery_address": "1 Sejong-daero",
        **extra,
    }
    return await api.client.post(
        "/api/v1/orders", json=body, headers=bearer(customer["access_token"])
    )


async def _nearby(api: Api, lat: float, lon: float) -> list[str]:
    customer = await api.account()
    found = await api.client.get(
        "/api/v1/stores/nearby",
        params={"lat": lat, "lon": lon, "radius_km": 5},
        headers=bearer(customer["access_token"]),
    )
    assert found.status_code == 200, found.text
    return [s["id"] for s in found.json()]


async def test_a_store_outside_its_hours_refuses_checkout_and_is_missing_from_nearby(
    api: Api,
) -> None:
    open_store = await _store(
        api, 20.0, 20.0, time_zone="Asia/Seoul", hours=_week_around_now("Asia/Seoul", -1, 1)
    )
    assert (open_store["open_now"], open_store["time_zone"]) == (True, "Asia/Seoul")
    closed = await _store(
        api, 20.001, 20.0, time_zone="Europe/Paris", hours=_week_around_now("Europe/Paris", 2, 3)
    )
    assert closed["open_now"] is False
    refused = await _checkout(api, closed)
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["type"].endswith("/store-closed")
    assert problem["store_id"] == closed["id"]
    opens_at = datetime.fromisoformat(problem["opens_at"])
    assert timedelta(hours=1) < opens_at - datetime.now(UTC) < timedelta(hours=2, minutes=1)
    assert await _nearby(api, 20.0, 20.0) == [open_store["id"]]
    placed = await _checkout(api, open_store)
    assert placed.status_code == 202, placed.text


async def test_a_store_on_a_closed_date_refuses_checkout_but_keyword_search_shows_it(
    api: Api,
) -> None:
    today = datetime.now(ZoneInfo("Asia/Seoul")).date()
    around_today = [str(today + timedelta(days=d)) for d in (-1, 0, 1)]  # midnight-proof
    holiday = await _store(api, 21.0, 21.0, closed_dates=around_today)
    assert holiday["open_now"] is False
    assert holiday["closed_dates"] == around_today
    refused = await _checkout(api, holiday)
    assert refused.status_code == 409, refused.text
    assert refused.json()["type"].endswith("/store-closed")
    assert await _nearby(api, 21.0, 21.0) == []
    customer = await api.account()
    found = await api.client.get(
        "/api/v1/stores/search",
        params={"q": holiday["name"]},
        headers=bearer(customer["access_token"]),
    )
    assert [(s["id"], s["open_now"]) for s in found.json()["items"]] == [(holiday["id"], False)]
    # Its manager clears the closed dates (hours: null keeps it open around the clock).
    reopened = await api.client.patch(
        f"/api/v1/stores/{holiday['id']}",
        json={"closed_dates": [], "hours": None},
        headers=holiday["auth"],
    )
    assert reopened.status_code == 200, reopened.text
    assert (reopened.json()["open_now"], reopened.json()["hours"]) == (True, None)
    assert await _nearby(api, 21.0, 21.0) == [holiday["id"]]


async def test_an_order_below_the_store_s_minimum_is_refused_naming_it(api: Api) -> None:
    store = await _store(api, 22.0, 22.0, price=9_000, min_order_amount=20_000)
    assert store["min_order_amount"] == 20_000
    refused = await _checkout(api, store, quantity=2)
    assert refused.status_code == 422, refused.text
    problem = refused.json()
    assert problem["type"].endswith("/below-minimum")
    assert (problem["min_order_amount"], problem["total"]) == (20_000, 18_000)
    placed = await _checkout(api, store, quantity=3)
    assert placed.status_code == 202, placed.text


async def test_a_delivery_point_outside_the_radius_is_refused_and_pickup_ignores_it(
    api: Api,
) -> None:
    store = await _store(api, 37.5665, 126.9780, delivery_radius_m=1_000)
    assert store["delivery_radius_m"] == 1_000
    # ~2.2 km east of the store, then ~330 m north of it.
    far = await _checkout(api, store, delivery_lat=37.5665, delivery_lon=127.0030)
    assert far.status_code == 422, far.text
    problem = far.json()
    assert problem["type"].endswith("/outside-delivery-area")
    assert problem["delivery_radius_m"] == 1_000
    assert 2_000 < problem["distance_m"] < 2_400
    near = await _checkout(api, store, delivery_lat=37.5695, delivery_lon=126.9780)
    assert near.status_code == 202, near.text
    busan = {"delivery_lat": 35.1796, "delivery_lon": 129.0756}
    pickup = await _checkout(api, store, fulfilment="PICKUP", delivery_address=None, **busan)
    assert pickup.status_code == 202, pickup.text
    # Without coordinates a DELIVERY keeps the text address only: no radius check.
    text_only = await _checkout(api, store)
    assert text_only.status_code == 202, text_only.text
    half = await _checkout(api, store, delivery_lat=37.5665)
    assert half.status_code == 422


async def test_a_saved_address_outside_the_radius_is_refused_like_typed_coordinates(
    api: Api,
) -> None:
    store = await _store(api, 37.5665, 126.9780, delivery_radius_m=1_000)
    customer = await api.account()
    auth = bearer(customer["access_token"])

    async def saved(label: str, lat: float, lon: float) -> str:
        made = await api.client.post(
            "/api/v1/me/addresses",
            json={"label": label, "line": f"{label} 1", "lat": lat, "lon": lon},
            headers=auth,
        )
        assert made.status_code == 201, made.text
        address_id: str = made.json()["id"]
        return address_id

    async def deliver_to(address_id: str) -> Any:
        body = {"store_id": store["id"], "lines": [{"menu_id": store["menu_id"], "quantity": 1}],
                "address_id": address_id}  # fmt: skip
        return await api.client.post("/api/v1/orders", json=body, headers=auth)

    far = await deliver_to(await saved("office", 37.5665, 127.0030))  # ~2.2 km
    assert far.status_code == 422, far.text
    assert far.json()["type"].endswith("/outside-delivery-area")
    near = await deliver_to(await saved("home", 37.5695, 126.9780))  # ~330 m
    assert near.status_code == 202, near.text
    assert (
        await api.pool.fetchval(
            "SELECT delivery_address FROM orders WHERE id = $1::uuid", near.json()["order_id"]
        )
        == "home 1"
    )


async def test_managers_get_clear_errors_for_bad_hours_and_zones(api: Api) -> None:
    store = await _store(api, 23.0, 23.0)
    assert (store["open_now"], store["hours"], store["closed_dates"]) == (True, None, [])
    assert (store["min_order_amount"], store["delivery_radius_m"]) == (0, 3_000)
    bad_bodies = [
        {"time_zone": "Mars/Olympus"},
        {"hours": {"mon": [["09:00", "09:00"]]}},
        {"hours": {"mon": [["25:00", "26:00"]]}},
        {"hours": {"funday": [["09:00", "10:00"]]}},
        {"closed_dates": ["2026-02-30"]},
        {"min_order_amount": -1},
        {"delivery_radius_m": 0},
    ]
    for body in bad_bodies:
        answer = await api.client.patch(
            f"/api/v1/stores/{store['id']}", json=body, headers=store["auth"]
        )
        assert answer.status_code == 422, (body, answer.text)
