"""Admins suspend and reactivate accounts and stores, and find accounts, on the real services."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from eatcloud.api.security import AccountSuspended, Authenticator, Role
from eatcloud.settings import Settings
from tests.integration.api_harness import PASSWORD, Api, approved_store, bearer, running_api

SUSPENDED = "https://eatcloud.dev/problems/account-suspended"


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


def problem_type(response: httpx.Response) -> str:
    assert response.headers["content-type"] == "application/problem+json", response.text
    kind: str = response.json()["type"]
    return kind


async def login(api: Api, email: str, password: str = PASSWORD) -> httpx.Response:
    return await api.client.post("/api/v1/auth/login", json={"email": email, "password": password})


async def refresh(api: Api, token: str) -> httpx.Response:
    return await api.client.post("/api/v1/auth/refresh", json={"refresh_token": token})


async def me(api: Api, token: str) -> httpx.Response:
    return await api.client.get("/api/v1/auth/me", headers=bearer(token))


async def test_a_suspended_customer_is_shut_out_at_once_and_let_back_in_when_reactivated(
    api: Api,
) -> None:
    customer, admin = await api.account(), await api.account("ADMIN")
    boss = bearer(admin["access_token"])
    other_session = (await login(api, customer["email"])).json()
    assert (await me(api, customer["access_token"])).status_code == 200

    suspended = await api.client.post(
        f"/api/v1/admin/users/{customer['id']}/suspend",
        json={"reason": "chargebacks"},
        headers=boss,
    )
    assert suspended.status_code == 200, suspended.text
    assert suspended.json()["status"] == "SUSPENDED"
    assert suspended.json()["suspension_reason"] == "chargebacks"

    # Every session's tokens stop at the next request; refresh and login are refused.
    for session in (customer, other_session):
        mine = await me(api, session["access_token"])
        assert mine.status_code == 403 and problem_type(mine) == SUSPENDED, mine.text
        for _ in range(2):  # refused without rotating: the same token gets the same answer
            refused = await refresh(api, session["refresh_token"])
            assert refused.status_code == 403 and problem_type(refused) == SUSPENDED
    refused = await login(api, customer["email"])
    assert refused.status_code == 403 and problem_type(refused) == SUSPENDED, refused.text
    # Only the password's holder learns of the suspension.
    assert (await login(api, customer["email"], "not the password")).status_code == 401

    again = await api.client.post(
        f"/api/v1/admin/users/{customer['id']}/suspend", json={"reason": "other"}, headers=boss
    )
    assert again.status_code == 200 and again.json() == suspended.json()

    back = await api.client.post(f"/api/v1/admin/users/{customer['id']}/reactivate", headers=boss)
    assert back.status_code == 200, back.text
    assert back.json()["status"] == "ACTIVE" and back.json()["suspended_at"] is None
    # The sessions from before stay revoked; a new login works.
    assert (await me(api, customer["access_token"])).status_code == 401
    assert (await refresh(api, other_session["refresh_token"])).status_code == 401
    fresh = await login(api, customer["email"])
    assert fresh.status_code == 200, fresh.text
    assert (await me(api, fresh.json()["access_token"])).status_code == 200
    assert (await refresh(api, fresh.json()["refresh_token"])).status_code == 200


async def test_a_login_that_checked_the_database_before_a_suspension_opens_no_session(
    api: Api,
) -> None:
    # A login reads the account, verifies the password (tens of milliseconds), then opens its
    # session: a suspension in between must not leave it a session.
    customer, admin = await api.account(), await api.account("ADMIN")
    auth = Authenticator(api.settings.auth, api.redis, api.settings.signing_key())
    racing = await auth.open_session(customer["id"], Role.CUSTOMER)  # just before
    await api.client.post(
        f"/api/v1/admin/users/{customer['id']}/suspend", headers=bearer(admin["access_token"])
    )
    with pytest.raises(AccountSuspended):
        await auth.open_session(customer["id"], Role.CUSTOMER)  # just after
    await api.client.post(
        f"/api/v1/admin/users/{customer['id']}/reactivate", headers=bearer(admin["access_token"])
    )
    assert (await me(api, racing.access_token)).status_code == 401


async def test_admins_cannot_be_suspended_and_unknown_users_are_not_found(api: Api) -> None:
    admin, other = await api.account("ADMIN"), await api.account("ADMIN")
    boss = bearer(admin["access_token"])
    for target, why in ((admin, "themselves"), (other, "only customers and managers")):
        refused = await api.client.post(f"/api/v1/admin/users/{target['id']}/suspend", headers=boss)
        assert refused.status_code == 422 and why in refused.json()["detail"], refused.text
    assert (await me(api, admin["access_token"])).status_code == 200
    assert (await me(api, other["access_token"])).status_code == 200
    for nobody in (str(uuid.uuid4()), "not-a-uuid"):
        for action in ("suspend", "reactivate"):
            missing = await api.client.post(f"/api/v1/admin/users/{nobody}/{action}", headers=boss)
            assert missing.status_code == 404, missing.text


async def test_a_suspended_manager_cannot_use_the_api(api: Api) -> None:
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    await api.client.post(
        f"/api/v1/admin/users/{manager['id']}/suspend", headers=bearer(admin["access_token"])
    )
    mine = await api.client.get("/api/v1/stores/mine", headers=bearer(manager["access_token"]))
    assert mine.status_code == 403 and problem_type(mine) == SUSPENDED


async def test_a_suspended_store_is_hidden_takes_no_orders_and_changes_no_menus_until_reactivated(
    api: Api,
) -> None:
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    customer = await api.account()
    mine, boss, buyer = (bearer(a["access_token"]) for a in (manager, admin, customer))
    name = f"Tteok {uuid.uuid4().hex[:8]}"
    store = await approved_store(api, manager, admin, name=name, lat=35.1, lon=129.0)
    menus = f"/api/v1/stores/{store['id']}/menus"
    made = await api.client.post(menus, json={"name": "Tteokbokki", "price": 6_000}, headers=mine)
    assert made.status_code == 201, made.text
    menu_id = made.json()["id"]
    order = {
        "store_id": store["id"],
        "lines": [{"menu_id": menu_id, "quantity": 1}],
        "fulfilment": "PICKUP",
    }

    async def shown_to_customers() -> dict[str, Any]:
        near = await api.client.get(
            "/api/v1/stores/nearby", params={"lat": 35.1, "lon": 129.0}, headers=buyer
        )
        found = await api.client.get("/api/v1/stores/search", params={"q": name}, headers=buyer)
        return {
            "nearby": store["id"] in [s["id"] for s in near.json()],
            "search": store["id"] in [s["id"] for s in found.json()["items"]],
            "get": (
                await api.client.get(f"/api/v1/stores/{store['id']}", headers=buyer)
            ).status_code,
            "menus": (await api.client.get(menus, headers=buyer)).status_code,
        }

    assert await shown_to_customers() == {"nearby": True, "search": True, "get": 200, "menus": 200}

    suspended = await api.client.post(f"/api/v1/admin/stores/{store['id']}/suspend", headers=boss)
    assert suspended.status_code == 200 and suspended.json()["status"] == "SUSPENDED"
    again = await api.client.post(f"/api/v1/admin/stores/{store['id']}/suspend", headers=boss)
    assert again.status_code == 200 and again.json() == suspended.json()

    assert await shown_to_customers() == {
        "nearby": False,
        "search": False,
        "get": 404,
        "menus": 404,
    }
    for who in (mine, boss):  # its manager and admins still see it, with its status
        seen = await api.client.get(f"/api/v1/stores/{store['id']}", headers=who)
        assert seen.status_code == 200 and seen.json()["status"] == "SUSPENDED"
    checkout = await api.client.post("/api/v1/orders", json=order, headers=buyer)
    assert checkout.status_code == 409, checkout.text
    assert problem_type(checkout) == "https://eatcloud.dev/problems/store-suspended"
    cart = await api.client.put(
        f"/api/v1/cart/items/{menu_id}",
        json={"store_id": store["id"], "quantity": 1},
        headers=buyer,
    )
    assert cart.status_code == 409 and problem_type(cart).endswith("/store-suspended")
    changes = [
        await api.client.patch(f"{menus}/{menu_id}", json={"price": 1}, headers=mine),
        await api.client.post(f"{menus}/{menu_id}/stock", json={"delta": 5}, headers=mine),
        await api.client.post(menus, json={"name": "Sundae", "price": 4_000}, headers=mine),
    ]
    assert [c.status_code for c in changes] == [409] * 3, [c.text for c in changes]

    back = await api.client.post(f"/api/v1/admin/stores/{store['id']}/reactivate", headers=boss)
    assert back.status_code == 200 and back.json()["status"] == "APPROVED", back.text
    assert await shown_to_customers() == {"nearby": True, "search": True, "get": 200, "menus": 200}
    placed = await api.client.post("/api/v1/orders", json=order, headers=buyer)
    assert placed.status_code == 202, placed.text
    changed = await api.client.patch(f"{menus}/{menu_id}", json={"price": 6_500}, headers=mine)
    assert changed.status_code == 200, changed.text


async def test_only_an_approved_store_is_suspended_and_only_a_suspended_one_reactivated(
    api: Api,
) -> None:
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    boss = bearer(admin["access_token"])
    category = {"code": "NOODLES", "name": "Noodles"}
    await api.client.post("/api/v1/admin/categories", json=category, headers=boss)
    pending = await api.client.post(
        "/api/v1/stores",
        json={"name": "Not yet", "category_code": "NOODLES", "lat": 35.0, "lon": 128.0},
        headers=bearer(manager["access_token"]),
    )
    assert pending.status_code == 201, pending.text
    # Reactivation is no way around approval, so neither applies to a PENDING store.
    for action in ("suspend", "reactivate"):
        path = f"/api/v1/admin/stores/{pending.json()['id']}/{action}"
        refused = await api.client.post(path, headers=boss)
        assert refused.status_code == 409 and "PENDING" in refused.json()["detail"], refused.text
    for nobody in (str(uuid.uuid4()), "not-a-uuid"):
        missing = await api.client.post(f"/api/v1/admin/stores/{nobody}/suspend", headers=boss)
        assert missing.status_code == 404, missing.text


async def test_admins_find_accounts_by_text_role_and_status_newest_first(api: Api) -> None:
    admin = await api.account("ADMIN")
    boss = bearer(admin["access_token"])
    tag = uuid.uuid4().hex[:8]
    people = [  # oldest first
        (f"ann-{tag}@example.test", "Ann", "CUSTOMER"),
        (f"bo-{uuid.uuid4().hex[:8]}@example.test", f"Bo {tag.upper()}", "MANAGER"),
        (f"cy-{uuid.uuid4().hex[:8]}@example.test", f"Cy {tag}", "CUSTOMER"),
        (f"di-{tag}@example.test", "Di", "CUSTOMER"),
    ]
    for email, name, role in people:
        made = await api.client.post(
            "/api/v1/auth/signup",
            json={"email": email, "password": PASSWORD, "name": name, "role": role},
        )
        assert made.status_code == 201, made.text

    async def emails(**params: Any) -> list[str]:
        found = await api.client.get("/api/v1/admin/users", params=params, headers=boss)
        assert found.status_code == 200, found.text
        return [item["email"] for item in found.json()["items"]]

    newest_first = [email for email, _, _ in reversed(people)]
    assert await emails(q=tag.upper()) == newest_first
    found = await api.client.get("/api/v1/admin/users", params={"q": people[3][0]}, headers=boss)
    await api.client.post(
        f"/api/v1/admin/users/{found.json()['items'][0]['id']}/suspend", headers=boss
    )

    assert await emails(q=tag, role="MANAGER") == [people[1][0]]
    assert await emails(q=tag, status="SUSPENDED") == [people[3][0]]
    assert await emails(q=tag, status="ACTIVE") == newest_first[1:]
    assert await emails(q=tag, status="ACTIVE", role="CUSTOMER") == [people[2][0], people[0][0]]
    second = await api.client.get(
        "/api/v1/admin/users", params={"q": tag, "page": 2, "size": 3}, headers=boss
    )
    assert second.json()["total"] == 4
    assert [item["email"] for item in second.json()["items"]] == [people[0][0]]
    listed = await api.client.get("/api/v1/admin/users", params={"q": people[3][0]}, headers=boss)
    di = listed.json()["items"][0]
    assert di["status"] == "SUSPENDED" and di["suspended_at"] is not None
    assert "password_hash" not in di
    assert await emails(q=f"{tag}%") == []  # wildcards in the text are matched as typed
    deep = await api.client.get(
        "/api/v1/admin/users", params={"page": 10_000, "size": 100}, headers=boss
    )
    assert deep.status_code == 422
