"""Order actions the saga would ignore are refused at the edge (409 naming the status), from
the read model; where the read model may merely lag the saga, the saga stays the judge (202).

No worker runs here: the read model's row is set as the projections would leave it, and the
outbox shows what was sent on.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from eatcloud.settings import Settings
from tests.integration.api_harness import Api, approved_store, bearer, running_api


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


@pytest.fixture(scope="module")
async def people(api: Api) -> dict[str, Any]:
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    store = await approved_store(api, manager, admin, name=f"Edge {uuid.uuid4().hex[:4]}")
    menu = (
        await api.client.post(
            f"/api/v1/stores/{store['id']}/menus",
            json={"name": "Sundae", "price": 2_000},
            headers=bearer(manager["access_token"]),
        )
    ).json()["id"]
    return {"store": store["id"], "menu": menu, "manager": manager, "admin": admin}


async def order_at(api: Api, people: dict[str, Any], status: str) -> str:
    """A placed order (of a new customer: checkouts are rate-limited per customer) whose
    read-model row says ``status``."""
    people["customer"] = await api.account()
    placed = await api.client.post(
        "/api/v1/orders",
        json={"store_id": people["store"], "lines": [{"menu_id": people["menu"], "quantity": 1}],
              "fulfilment": "PICKUP"},
        headers=bearer(people["customer"]["access_token"]),
    )  # fmt: skip
    assert placed.status_code == 202, placed.text
    order_id: str = placed.json()["order_id"]
    await api.pool.execute(
        """INSERT INTO order_view (order_id, customer_id, store_id, status, reason, total, points,
               lines, placed_at, updated_at, events, version, placed)
           VALUES ($1, $2, $3, $4, '', 2000, 0, '[]'::jsonb, now(), now(), 1, 1, true)""",
        order_id, people["customer"]["id"], people["store"], status,
    )  # fmt: skip
    return order_id


async def act(api: Api, people: dict[str, Any], order_id: str, action: str) -> int:
    store, who = people["store"], people
    calls = {
        "customer cancels": (f"/api/v1/orders/{order_id}/cancel", who["customer"]),
        "store accepts": (f"/api/v1/stores/{store}/orders/{order_id}/accept", who["manager"]),
        "store completes": (f"/api/v1/stores/{store}/orders/{order_id}/complete", who["manager"]),
        "store cancels": (f"/api/v1/stores/{store}/orders/{order_id}/cancel", who["manager"]),
        "admin cancels": (f"/api/v1/admin/orders/{order_id}/cancel", who["admin"]),
    }
    url, caller = calls[action]
    answer = await api.client.post(
        url, json={"reason": "test"}, headers=bearer(caller["access_token"])
    )
    if answer.status_code == 409:
        body = answer.json()
        assert body["type"].endswith("/order-state") and body["order_status"] in body["detail"]
    return answer.status_code


ACTIONS = ["customer cancels", "store accepts", "store completes", "store cancels", "admin cancels"]
EXPECTED = {  # status in the read model -> the answer to each action, in ACTIONS' order
    "PENDING": [202, 202, 202, 202, 202],  # the read model may lag: the saga decides
    "PAID": [202, 202, 202, 202, 202],
    "ACCEPTED": [409, 409, 202, 202, 202],
    "COMPLETED": [409, 409, 409, 409, 409],
    "CANCELLED": [409, 409, 409, 409, 409],
    "REJECTED": [409, 409, 409, 409, 409],
}


@pytest.mark.parametrize("status", list(EXPECTED))
async def test_an_action_the_saga_would_ignore_is_refused_with_the_orders_status(
    api: Api, people: dict[str, Any], status: str
) -> None:
    answers = []
    for action in ACTIONS:
        order_id = await order_at(api, people, status)
        answers.append(await act(api, people, order_id, action))
        sent = await api.pool.fetchval(
            "SELECT count(*) FROM outbox WHERE aggregate_id = $1 AND type <> 'PlaceOrder'",
            order_id,
        )
        assert sent == (answers[-1] == 202), (status, action, sent)
    assert answers == EXPECTED[status], dict(zip(ACTIONS, answers, strict=True))
