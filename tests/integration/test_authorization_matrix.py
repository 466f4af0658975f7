"""Every endpoint against every role: who gets in, who gets 401, who gets 403.

The table below is the API's access policy. The test fails when an endpoint is missing from it,
so a new route cannot ship without saying who may call it. Ownership (a manager's own stores,
a customer's own orders) is tested where those routes are (catalogue, checkout, e2e).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eatcloud.settings import Settings
from tests.integration.api_harness import Api, approved_store, bearer, running_api

PUBLIC = "public"
ANY = {"CUSTOMER", "MANAGER", "ADMIN"}
C, M, A = {"CUSTOMER"}, {"MANAGER"}, {"ADMIN"}

POLICY: dict[str, Any] = {
    "GET /health/live": PUBLIC,
    "GET /health/ready": PUBLIC,
    "GET /api/v1/admin/health": A,
    "POST /api/v1/auth/signup": PUBLIC,
    "POST /api/v1/auth/login": PUBLIC,
    "POST /api/v1/auth/refresh": PUBLIC,
    "POST /api/v1/auth/logout": ANY,
    "GET /api/v1/auth/me": ANY,
    "GET /api/v1/categories": ANY,
    "POST /api/v1/admin/categories": A,
    "DELETE /api/v1/admin/categories/{code}": A,
    "POST /api/v1/stores": M,
    "GET /api/v1/stores/mine": M,
    "GET /api/v1/stores/nearby": ANY,
    "GET /api/v1/stores/search": ANY,
    "GET /api/v1/stores/{store_id}": ANY,
    "PATCH /api/v1/stores/{store_id}": M,
    "GET /api/v1/admin/stores": A,
    "POST /api/v1/admin/stores/{store_id}/suspend": A,
    "POST /api/v1/admin/stores/{store_id}/reactivate": A,
    "POST /api/v1/admin/stores/{store_id}/{decision}": A,
    "GET /api/v1/stores/{store_id}/menus": ANY,
    "GET /api/v1/stores/{store_id}/menus/{menu_id}": ANY,
    "POST /api/v1/stores/{store_id}/menus": M,
    "PATCH /api/v1/stores/{store_id}/menus/{menu_id}": M,
    "DELETE /api/v1/stores/{store_id}/menus/{menu_id}": M,
    "POST /api/v1/stores/{store_id}/menus/{menu_id}/stock": M,
    "POST /api/v1/orders": C,
    "GET /api/v1/orders": C,
    "GET /api/v1/cart": C,
    "DELETE /api/v1/cart": C,
    "PUT /api/v1/cart/items/{menu_id}": C,
    "GET /api/v1/orders/{order_id}": ANY,
    "GET /api/v1/orders/{order_id}/timeline": ANY,
    "GET /api/v1/stores/{store_id}/orders": M,
    "GET /api/v1/admin/orders": A,
    "POST /api/v1/orders/{order_id}/cancel": C,
    "POST /api/v1/stores/{store_id}/orders/{order_id}/{action}": M,
    "POST /api/v1/admin/orders/{order_id}/cancel": A,
    "POST /api/v1/orders/{order_id}/review": C,
    "GET /api/v1/stores/{store_id}/reviews": ANY,
    "GET /api/v1/stores/{store_id}/ratings": ANY,
    "GET /api/v1/me/points": C,
    "POST /api/v1/admin/users/{user_id}/points": A,
    "GET /api/v1/stores/{store_id}/stock": M | A,
    "GET /api/v1/stores/{store_id}/sales": M | A,
    "GET /api/v1/orders/{order_id}/events": ANY,
    "GET /api/v1/stores/{store_id}/orders/events": M,
    "GET /api/v1/admin/users": A,
    "POST /api/v1/admin/users/{user_id}/suspend": A,
    "POST /api/v1/admin/users/{user_id}/reactivate": A,
    "GET /api/v1/me": ANY,
    "PATCH /api/v1/me": ANY,
    "DELETE /api/v1/me": ANY,  # admins get 422 from the route itself
    "POST /api/v1/me/password": ANY,
    "GET /api/v1/me/addresses": C,
    "POST /api/v1/me/addresses": C,
    "PATCH /api/v1/me/addresses/{address_id}": C,
    "DELETE /api/v1/me/addresses/{address_id}": C,
    "POST /api/v1/me/addresses/{address_id}/default": C,
}


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    # Live update streams end after a moment: httpx's in-process transport waits for a whole
    # answer.
    brief = settings.model_copy(
        update={"api": settings.api.model_copy(update={"sse_max_seconds": 0.3})}
    )
    async with running_api(brief) as running:
        yield running


def operations(api: Api) -> set[str]:
    app = api.client._transport.app  # type: ignore[attr-defined]
    return {f"{m.upper()} {p}" for p, item in app.openapi()["paths"].items() for m in item}


async def test_every_endpoint_has_a_policy(api: Api) -> None:
    assert operations(api) == set(POLICY)


async def test_every_endpoint_admits_exactly_the_roles_of_its_policy(api: Api) -> None:
    accounts = {role: await api.account(role) for role in ("CUSTOMER", "MANAGER", "ADMIN")}
    # The user the admin routes act on: not a caller, whose suspension would end the session
    # the rest of the matrix uses.
    bystander = await api.account("CUSTOMER")
    store = await approved_store(api, accounts["MANAGER"], accounts["ADMIN"], name="Matrix")
    menu = await api.client.post(
        f"/api/v1/stores/{store['id']}/menus",
        json={"name": "Kimbap", "price": 3_000},
        headers=bearer(accounts["MANAGER"]["access_token"]),
    )
    order = await api.client.post(
        "/api/v1/orders",
        json={
            "store_id": store["id"],
            "lines": [{"menu_id": menu.json()["id"], "quantity": 1}],
            "fulfilment": "PICKUP",
        },
        headers=bearer(accounts["CUSTOMER"]["access_token"]),
    )
    values = {
        "store_id": store["id"],
        "menu_id": menu.json()["id"],
        "order_id": order.json()["order_id"],
        "code": "NOPE",
        "decision": "approve",
        "action": "accept",
        "user_id": bystander["id"],
        "address_id": str(uuid.uuid4()),
    }
    wrong: list[str] = []
    for operation, policy in POLICY.items():
        method, template = operation.split(" ", 1)
        if operation == "POST /api/v1/auth/logout":
            continue  # it would end the session the rest of the matrix uses; see test_auth
        path = template.format(**values)
        callers: dict[str, dict[str, str] | None] = {"anonymous": None, **accounts}
        for role, account in callers.items():
            headers = bearer(account["access_token"]) if account else {}
            body = {} if method in ("POST", "PUT", "PATCH") else None
            response = await api.client.request(method, path, json=body, headers=headers)
            status = response.status_code
            if policy == PUBLIC:
                expected = "in"
            elif account is None:
                expected = 401
            else:
                expected = "in" if role in policy else 403
            ok = (
                status not in (401, 403) and status < 500
                if expected == "in"
                else status == expected
            )
            if not ok:
                wrong.append(f"{role:9} {operation} -> {status} (expected {expected})")
    assert not wrong, "\n".join(wrong)
