"""The caller's profile, password and account deletion, and customers' saved addresses, on the
real PostgreSQL (+ PostGIS) and Redis. No worker: orders are read from order_view rows set as
the projections would leave them."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from eatcloud.postgres import addresses
from eatcloud.settings import Settings
from tests.integration.api_harness import (
    PASSWORD,
    Api,
    add_menu,
    approved_store,
    bearer,
    running_api,
)

NEW_PASSWORD = "a brand new passphrase"


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


@pytest.fixture(scope="module")
async def shop(api: Api) -> dict[str, Any]:
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    store = await approved_store(api, manager, admin, name=f"Profile {uuid.uuid4().hex[:4]}")
    menu = await add_menu(api, store["id"], manager)
    return {"store": store["id"], "menu": menu["id"], "manager": manager, "admin": admin}


async def login(api: Api, email: str, password: str = PASSWORD) -> httpx.Response:
    return await api.client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def me(api: Api, token: str) -> httpx.Response:
    return await api.client.get("/api/v1/me", headers=bearer(token))


async def save(api: Api, who: dict[str, str], label: str, **extra: Any) -> dict[str, Any]:
    made = await api.client.post(
        "/api/v1/me/addresses",
        json={"label": label, "line": f"{label} street 1", "lat": 37.5, "lon": 127.0, **extra},
        headers=bearer(who["access_token"]),
    )
    assert made.status_code == 201, made.text
    body: dict[str, Any] = made.json()
    return body


async def book(api: Api, who: dict[str, str]) -> list[dict[str, Any]]:
    listed = await api.client.get("/api/v1/me/addresses", headers=bearer(who["access_token"]))
    assert listed.status_code == 200, listed.text
    found: list[dict[str, Any]] = listed.json()
    return found


async def test_any_role_sees_and_edits_its_profile_and_a_taken_email_is_a_conflict(
    api: Api,
) -> None:
    for role in ("CUSTOMER", "MANAGER", "ADMIN"):
        account = await api.account(role)
        mine = await me(api, account["access_token"])
        assert mine.status_code == 200, mine.text
        assert mine.json()["email"] == account["email"] and mine.json()["role"] == role
        new_email = f"New-{uuid.uuid4().hex[:8]}@Example.test"
        changed = await api.client.patch(
            "/api/v1/me",
            json={"name": "Renamed", "email": new_email},
            headers=bearer(account["access_token"]),
        )
        assert changed.status_code == 200, changed.text
        assert changed.json()["name"] == "Renamed"
        assert changed.json()["email"] == new_email.lower()
        old_me = await api.client.get("/api/v1/auth/me", headers=bearer(account["access_token"]))
        assert old_me.json()["email"] == new_email.lower()  # the old route says the same
        assert (await login(api, new_email)).status_code == 200
        assert (await login(api, account["email"])).status_code == 401

    first, second = await api.account(), await api.account()
    taken = await api.client.patch(
        "/api/v1/me", json={"email": second["email"]}, headers=bearer(first["access_token"])
    )
    assert taken.status_code == 409, taken.text
    assert (await me(api, first["access_token"])).json()["email"] == first["email"]


async def test_a_password_change_ends_every_other_session_at_once_and_keeps_the_callers(
    api: Api,
) -> None:
    caller = await api.account()
    other = (await login(api, caller["email"])).json()
    mine = bearer(caller["access_token"])

    wrong = await api.client.post(
        "/api/v1/me/password",
        json={"current_password": "not it at all", "new_password": NEW_PASSWORD},
        headers=mine,
    )
    assert wrong.status_code == 403 and wrong.json()["type"].endswith("/wrong-password")
    short = await api.client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": "short"},
        headers=mine,
    )
    assert short.status_code == 422, short.text
    assert (await me(api, other["access_token"])).status_code == 200  # nothing changed yet

    changed = await api.client.post(
        "/api/v1/me/password",
        json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
        headers=mine,
    )
    assert changed.status_code == 204, changed.text
    assert (await me(api, other["access_token"])).status_code == 401
    assert (
        await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": other["refresh_token"]}
        )
    ).status_code == 401
    assert (await me(api, caller["access_token"])).status_code == 200
    rotated = await api.client.post(
        "/api/v1/auth/refresh", json={"refresh_token": caller["refresh_token"]}
    )
    assert rotated.status_code == 200, rotated.text
    assert (await me(api, rotated.json()["access_token"])).status_code == 200
    assert (await login(api, caller["email"])).status_code == 401
    assert (await login(api, caller["email"], NEW_PASSWORD)).status_code == 200


async def test_a_login_that_checked_the_old_password_during_a_change_keeps_no_session(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    caller = await api.account()
    hashing = api.client._transport.app.state.hashing  # type: ignore[attr-defined]
    real_verify = hashing.verify

    async def verify_then_change(password_hash: str | None, password: str) -> Any:
        # The login has checked the old password; the change commits before it opens its
        # session.
        verified = await real_verify(password_hash, password)
        monkeypatch.setattr(hashing, "verify", real_verify)
        changed = await api.client.post(
            "/api/v1/me/password",
            json={"current_password": PASSWORD, "new_password": NEW_PASSWORD},
            headers=bearer(caller["access_token"]),
        )
        assert changed.status_code == 204, changed.text
        return verified

    monkeypatch.setattr(hashing, "verify", verify_then_change)
    late = await login(api, caller["email"])
    assert late.status_code == 401, late.text
    assert (await me(api, caller["access_token"])).status_code == 200
    assert (await login(api, caller["email"], NEW_PASSWORD)).status_code == 200


async def test_the_first_address_is_the_default_and_the_newest_takes_over_when_it_goes(
    api: Api,
) -> None:
    customer = await api.account()
    home = await save(api, customer, "Home")
    assert home["is_default"] and (home["lat"], home["lon"]) == (37.5, 127.0)
    work = await save(api, customer, "Work")
    gym = await save(api, customer, "Gym")
    assert not work["is_default"] and not gym["is_default"]
    assert [a["id"] for a in await book(api, customer)] == [home["id"], gym["id"], work["id"]]

    picked = await api.client.post(
        f"/api/v1/me/addresses/{work['id']}/default", headers=bearer(customer["access_token"])
    )
    assert picked.status_code == 200 and picked.json()["is_default"], picked.text
    assert [a["id"] for a in await book(api, customer) if a["is_default"]] == [work["id"]]

    edited = await api.client.patch(
        f"/api/v1/me/addresses/{home['id']}",
        json={"line": "2 New Road", "lat": 35.1},
        headers=bearer(customer["access_token"]),
    )
    assert edited.status_code == 200, edited.text
    assert (edited.json()["line"], edited.json()["lat"], edited.json()["lon"]) == (
        "2 New Road", 35.1, 127.0,
    )  # fmt: skip

    gone = await api.client.delete(
        f"/api/v1/me/addresses/{work['id']}", headers=bearer(customer["access_token"])
    )
    assert gone.status_code == 204, gone.text
    left = await book(api, customer)
    assert [(a["id"], a["is_default"]) for a in left] == [(gym["id"], True), (home["id"], False)]
    first_again = await save(api, customer, "Office", is_default=True)
    assert [a["id"] for a in await book(api, customer) if a["is_default"]] == [first_again["id"]]

    stranger = await api.account()
    for method, url in (
        ("PATCH", f"/api/v1/me/addresses/{home['id']}"),
        ("DELETE", f"/api/v1/me/addresses/{home['id']}"),
        ("POST", f"/api/v1/me/addresses/{home['id']}/default"),
        ("DELETE", "/api/v1/me/addresses/not-a-uuid"),
    ):
        body = {"label": "Mine now"} if method == "PATCH" else None
        refused = await api.client.request(
            method, url, json=body, headers=bearer(stranger["access_token"])
        )
        assert refused.status_code == 404, (method, url, refused.text)
    assert len(await book(api, customer)) == 3


async def test_an_address_book_holds_at_most_twenty(api: Api) -> None:
    customer = await api.account()
    for n in range(addresses.MAX_ADDRESSES):
        await save(api, customer, f"Place {n}")
    full = await api.client.post(
        "/api/v1/me/addresses",
        json={"label": "One more", "line": "x", "lat": 0, "lon": 0},
        headers=bearer(customer["access_token"]),
    )
    assert full.status_code == 409 and full.json()["type"].endswith("/address-book-full")
    assert len(await book(api, customer)) == addresses.MAX_ADDRESSES


async def test_checkout_delivers_to_a_saved_address_of_the_callers_own_only(
    api: Api, shop: dict[str, Any]
) -> None:
    customer, stranger = await api.account(), await api.account()
    home = await save(api, customer, "Home", lat=37.567, lon=126.978)  # by the shop (radius)
    order = {"store_id": shop["store"], "lines": [{"menu_id": shop["menu"], "quantity": 1}]}

    placed = await api.client.post(
        "/api/v1/orders",
        json={**order, "address_id": home["id"]},
        headers=bearer(customer["access_token"]),
    )
    assert placed.status_code == 202, placed.text
    stored = await api.pool.fetchval(
        "SELECT delivery_address FROM orders WHERE id = $1", uuid.UUID(placed.json()["order_id"])
    )
    assert stored == "Home street 1"

    for address_id in (home["id"], str(uuid.uuid4()), "not-a-uuid"):
        refused = await api.client.post(
            "/api/v1/orders",
            json={**order, "address_id": address_id},
            headers=bearer(stranger["access_token"]),
        )
        assert refused.status_code == 422, refused.text
        assert refused.headers["content-type"] == "application/problem+json"
    both = await api.client.post(
        "/api/v1/orders",
        json={**order, "address_id": home["id"], "delivery_address": "1 Main St"},
        headers=bearer(customer["access_token"]),
    )
    assert both.status_code == 422, both.text

    point = await addresses.delivery_point(api.pool, customer["id"], home["id"])
    assert point == addresses.DeliveryPoint("Home street 1", 37.567, 126.978)
    assert await addresses.delivery_point(api.pool, stranger["id"], home["id"]) is None


async def test_a_deleted_account_is_erased_and_shut_out_and_its_orders_stay_with_the_store(
    api: Api, shop: dict[str, Any]
) -> None:
    customer = await api.account()
    other = (await login(api, customer["email"])).json()
    await save(api, customer, "Home")
    placed = await api.client.post(
        "/api/v1/orders",
        json={"store_id": shop["store"], "lines": [{"menu_id": shop["menu"], "quantity": 1}],
              "fulfilment": "PICKUP"},
        headers=bearer(customer["access_token"]),
    )  # fmt: skip
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["order_id"]
    await api.pool.execute(
        """INSERT INTO order_view (order_id, customer_id, store_id, status, reason, total, points,
               lines, placed_at, updated_at, events, version, placed)
           VALUES ($1, $2, $3, 'COMPLETED', '', 4000, 0, '[]'::jsonb, now(), now(), 1, 1, true)""",
        order_id, customer["id"], shop["store"],
    )  # fmt: skip

    mine = bearer(customer["access_token"])
    wrong = await api.client.request(
        "DELETE", "/api/v1/me", json={"password": "not the password"}, headers=mine
    )
    assert wrong.status_code == 403, wrong.text
    admin = await api.client.request(
        "DELETE",
        "/api/v1/me",
        json={"password": PASSWORD},
        headers=bearer(shop["admin"]["access_token"]),
    )
    assert admin.status_code == 422, admin.text

    deleted = await api.client.request(
        "DELETE", "/api/v1/me", json={"password": PASSWORD}, headers=mine
    )
    assert deleted.status_code == 204, deleted.text
    for session in (customer, other):
        assert (await me(api, session["access_token"])).status_code == 401
        refreshed = await api.client.post(
            "/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}
        )
        assert refreshed.status_code == 401
    assert (await login(api, customer["email"])).status_code == 401
    row = await api.pool.fetchrow(
        "SELECT email, name, password_hash, deleted_at FROM users WHERE id = $1",
        uuid.UUID(customer["id"]),
    )
    assert row["email"] == f"deleted-{customer['id']}@invalid"
    assert row["name"] == "Deleted user" and row["deleted_at"] is not None
    assert PASSWORD not in row["password_hash"] and not row["password_hash"].startswith("$argon2")
    assert await addresses.addresses_of(api.pool, customer["id"]) == []

    # The e-mail is free again, for a new account that is not the old one.
    again = await api.client.post(
        "/api/v1/auth/signup", json={"email": customer["email"], "password": PASSWORD, "name": "N"}
    )
    assert again.status_code == 201
    fresh = await login(api, customer["email"])
    assert fresh.status_code == 200
    new_me = await me(api, fresh.json()["access_token"])
    assert new_me.json()["id"] != customer["id"]

    seen = await api.client.get(
        f"/api/v1/stores/{shop['store']}/orders", headers=bearer(shop["manager"]["access_token"])
    )
    assert seen.status_code == 200, seen.text
    assert [
        (o["order_id"], o["customer_id"]) for o in seen.json() if o["order_id"] == order_id
    ] == [(order_id, customer["id"])]


async def test_a_manager_may_delete_their_account_too(api: Api) -> None:
    manager = await api.account("MANAGER")
    deleted = await api.client.request(
        "DELETE", "/api/v1/me", json={"password": PASSWORD}, headers=bearer(manager["access_token"])
    )
    assert deleted.status_code == 204, deleted.text
    assert (await me(api, manager["access_token"])).status_code == 401
    assert (await login(api, manager["email"])).status_code == 401
