"""Stores, menus and categories against the real PostgreSQL + PostGIS."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from eatcloud.settings import Settings
from tests.integration.api_harness import Api, api_on, approved_store, bearer, running_api
from tests.integration.databases import fresh_database


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


async def test_a_store_is_hidden_until_an_admin_approves_it(api: Api) -> None:
    manager, other, customer, admin = (
        await api.account("MANAGER"),
        await api.account("MANAGER"),
        await api.account(),
        await api.account("ADMIN"),
    )
    await api.client.post(
        "/api/v1/admin/categories",
        json={"code": "KOREAN", "name": "Korean"},
        headers=bearer(admin["access_token"]),
    )
    created = await api.client.post(
        "/api/v1/stores",
        json={"name": "Bibim", "category_code": "KOREAN", "lat": 37.5, "lon": 127.0},
        headers=bearer(manager["access_token"]),
    )
    assert created.status_code == 201 and created.json()["status"] == "PENDING"
    path = f"/api/v1/stores/{created.json()['id']}"
    seen_by = {
        who: (await api.client.get(path, headers=bearer(acc["access_token"]))).status_code
        for who, acc in {
            "owner": manager,
            "other": other,
            "customer": customer,
            "admin": admin,
        }.items()
    }
    assert seen_by == {"owner": 200, "other": 404, "customer": 404, "admin": 200}
    approve = await api.client.post(
        f"/api/v1/admin/stores/{created.json()['id']}/approve",
        headers=bearer(manager["access_token"]),
    )
    assert approve.status_code == 403  # managers do not approve their own stores
    await api.client.post(
        f"/api/v1/admin/stores/{created.json()['id']}/approve",
        headers=bearer(admin["access_token"]),
    )
    assert (await api.client.get(path, headers=bearer(customer["access_token"]))).status_code == 200


async def test_nearby_finds_open_approved_stores_in_the_radius_nearest_first(api: Api) -> None:
    manager, customer, admin = (
        await api.account("MANAGER"),
        await api.account(),
        await api.account("ADMIN"),
    )
    # Around (10.0, 10.0): ~1.1 km north, ~0.55 km east, ~5.5 km south (out of a 3 km radius).
    north = await approved_store(api, manager, admin, name="North", lat=10.01, lon=10.0)
    east = await approved_store(api, manager, admin, name="East", lat=10.0, lon=10.005)
    await approved_store(api, manager, admin, name="Far", lat=9.95, lon=10.0)
    closed = await approved_store(api, manager, admin, name="Closed", lat=10.001, lon=10.0)
    await api.client.patch(
        f"/api/v1/stores/{closed['id']}",
        json={"is_open": False},
        headers=bearer(manager["access_token"]),
    )
    found = await api.client.get(
        "/api/v1/stores/nearby",
        params={"lat": 10.0, "lon": 10.0, "radius_km": 3},
        headers=bearer(customer["access_token"]),
    )
    assert found.status_code == 200, found.text
    assert [s["id"] for s in found.json()] == [east["id"], north["id"]]
    assert 500 < found.json()[0]["distance_m"] < 600
    other_category = await api.client.get(
        "/api/v1/stores/nearby",
        params={"lat": 10.0, "lon": 10.0, "category": "PIZZA"},
        headers=bearer(customer["access_token"]),
    )
    assert other_category.json() == []
    bad = await api.client.get(
        "/api/v1/stores/nearby",
        params={"lat": 95, "lon": 0},
        headers=bearer(customer["access_token"]),
    )
    assert bad.status_code == 422


async def test_menus_belong_to_their_manager_and_search_finds_stores_by_menu_name(
    api: Api,
) -> None:
    manager, other, customer, admin = (
        await api.account("MANAGER"),
        await api.account("MANAGER"),
        await api.account(),
        await api.account("ADMIN"),
    )
    store = await approved_store(api, manager, admin, name="Noodle Bar", category="NOODLE")
    menus = f"/api/v1/stores/{store['id']}/menus"
    menu = {"name": "Zzyzx Jjajangmyeon", "price": 8_500, "initial_stock": 30}
    foreign = await api.client.post(menus, json=menu, headers=bearer(other["access_token"]))
    as_customer = await api.client.post(menus, json=menu, headers=bearer(customer["access_token"]))
    assert (foreign.status_code, as_customer.status_code) == (404, 403)
    created = await api.client.post(menus, json=menu, headers=bearer(manager["access_token"]))
    assert created.status_code == 201, created.text
    negative = await api.client.post(
        menus, json={**menu, "price": -1}, headers=bearer(manager["access_token"])
    )
    assert negative.status_code == 422

    found = await api.client.get(
        "/api/v1/stores/search", params={"q": "zzyzx"}, headers=bearer(customer["access_token"])
    )
    assert found.status_code == 200
    assert [s["id"] for s in found.json()["items"]] == [store["id"]]
    assert found.json()["total"] == 1
    listed = await api.client.get(menus, headers=bearer(customer["access_token"]))
    assert [m["price"] for m in listed.json()] == [8_500]
    one = await api.client.get(
        f"{menus}/{created.json()['id']}", headers=bearer(customer["access_token"])
    )
    assert one.status_code == 200 and one.json() == listed.json()[0]
    # Sold out: the manager's toggle, shown on the menu (checkout refuses it, test_checkout).
    toggled = await api.client.patch(
        f"{menus}/{created.json()['id']}",
        json={"available": False},
        headers=bearer(manager["access_token"]),
    )
    assert toggled.status_code == 200 and toggled.json()["available"] is False
    for missing in (f"{menus}/{uuid.uuid4()}", f"{menus}/not-an-id"):
        answer = await api.client.get(missing, headers=bearer(customer["access_token"]))
        assert answer.status_code == 404, answer.text

    gone = await api.client.delete(
        f"{menus}/{created.json()['id']}", headers=bearer(manager["access_token"])
    )
    assert gone.status_code == 204
    assert (await api.client.get(menus, headers=bearer(customer["access_token"]))).json() == []


async def test_initial_stock_goes_to_the_outbox_with_the_request_id(api: Api) -> None:
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    store = await approved_store(api, manager, admin, name="Stocked", category="BUNSIK")
    created = await api.client.post(
        f"/api/v1/stores/{store['id']}/menus",
        json={"name": "Tteokbokki", "price": 4_000, "initial_stock": 12},
        headers={**bearer(manager["access_token"]), "X-Request-ID": "req-stock-1"},
    )
    assert created.status_code == 201
    assert created.headers["x-request-id"] == "req-stock-1"
    row = await api.pool.fetchrow(
        "SELECT topic, key, type, payload, headers FROM outbox WHERE aggregate_id = $1",
        store["id"],
    )
    assert (row["topic"], row["key"], row["type"]) == ("stock-commands", store["id"], "AdjustStock")
    assert b'"delta":12' in bytes(row["payload"])
    assert row["headers"]["x-request-id"] == "req-stock-1"
    assert row["headers"]["traceparent"].startswith("00-")


async def test_only_an_approved_store_changes_its_menus_and_stock(api: Api) -> None:
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    mine, boss = bearer(manager["access_token"]), bearer(admin["access_token"])
    await api.client.post(
        "/api/v1/admin/categories", json={"code": "CAFE", "name": "Cafe"}, headers=boss
    )
    store = (
        await api.client.post(
            "/api/v1/stores",
            json={"name": "Pending Cafe", "category_code": "CAFE", "lat": 37.5, "lon": 127.0},
            headers=mine,
        )
    ).json()
    menus = f"/api/v1/stores/{store['id']}/menus"
    latte = {"name": "Latte", "price": 4_500, "initial_stock": 10}
    early = await api.client.post(menus, json=latte, headers=mine)
    assert early.status_code == 409 and "PENDING" in early.json()["detail"], early.text

    await api.client.post(f"/api/v1/admin/stores/{store['id']}/approve", headers=boss)
    made = await api.client.post(menus, json=latte, headers=mine)
    assert made.status_code == 201, made.text
    menu = f"{menus}/{made.json()['id']}"

    await api.client.post(f"/api/v1/admin/stores/{store['id']}/suspend", headers=boss)
    refused = [
        await api.client.patch(menu, json={"price": 1}, headers=mine),
        await api.client.post(f"{menu}/stock", json={"delta": 1000}, headers=mine),
        await api.client.delete(menu, headers=mine),
        await api.client.post(menus, json=latte, headers=mine),
    ]
    assert [a.status_code for a in refused] == [409] * 4, [a.text for a in refused]
    assert all("SUSPENDED" in a.json()["detail"] for a in refused)


async def test_managers_have_quotas_of_stores_and_menus(settings: Settings) -> None:
    async with fresh_database(settings) as db:
        small = db.model_copy(
            update={
                "api": db.api.model_copy(update={"stores_per_manager": 2, "menus_per_store": 2})
            }
        )
        async with api_on(small) as api:
            manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
            mine = bearer(manager["access_token"])
            stores = [
                await approved_store(api, manager, admin, name=f"Q{n}", category="QUOTA")
                for n in range(2)
            ]
            third = await api.client.post(
                "/api/v1/stores",
                json={"name": "Q3", "category_code": "QUOTA", "lat": 1, "lon": 1},
                headers=mine,
            )
            assert third.status_code == 409 and "at most 2 stores" in third.text, third.text
            menus = f"/api/v1/stores/{stores[0]['id']}/menus"
            answers = [
                await api.client.post(
                    menus,
                    json={"name": f"M{n}", "price": 100},
                    headers=bearer(manager["access_token"]),
                )
                for n in range(3)
            ]
            assert [a.status_code for a in answers] == [201, 201, 409], answers[-1].text
            # A deleted menu frees its place.
            await api.client.delete(f"{menus}/{answers[0].json()['id']}", headers=mine)
            again = await api.client.post(menus, json={"name": "M4", "price": 100}, headers=mine)
            assert again.status_code == 201, again.text
