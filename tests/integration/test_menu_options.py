"""Menu option groups (size, spice): set by a manager, chosen at checkout, priced on the server.

Real PostgreSQL and Redis, the API in process (as test_checkout.py); the outbox is the output.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest

from eatcloud.locks import gate
from eatcloud.settings import Settings
from eatcloud.streams import records as r
from tests.integration.api_harness import Api, add_menu, approved_store, bearer, running_api

SIZE = {
    "name": "Size",
    "required": True,
    "choices": [
        {"name": "Small", "price_delta": -1_000},
        {"name": "Large", "price_delta": 2_000},
    ],
}
SPICE = {
    "name": "Spice",
    "max_choices": 2,
    "choices": [
        {"name": "Extra spicy", "price_delta": 500},
        {"name": "Cheese", "price_delta": 700},
        {"name": "Egg", "price_delta": 300},
    ],
}


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


@pytest.fixture(scope="module")
async def shop(api: Api) -> dict[str, Any]:
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    store = await approved_store(api, manager, admin, name=f"Options {uuid.uuid4().hex[:4]}")
    return {"store": store, "manager": manager}


async def _menu(api: Api, shop: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return await add_menu(api, shop["store"]["id"], shop["manager"], **{"price": 8_000, **fields})


def _choice(menu: dict[str, Any], name: str) -> str:
    return next(
        str(c["id"]) for g in menu["option_groups"] for c in g["choices"] if c["name"] == name
    )


def _order(shop: dict[str, Any], *lines: tuple[dict[str, Any], int, list[str]]) -> dict[str, Any]:
    return {
        "store_id": shop["store"]["id"],
        "lines": [
            {"menu_id": m["id"], "quantity": q, "options": [_choice(m, n) for n in names]}
            for m, q, names in lines
        ],
        "delivery_address": "1 Main St",
    }


async def _place(api: Api, body: dict[str, Any]) -> Any:
    customer = await api.account()
    return await api.client.post(
        "/api/v1/orders", json=body, headers=bearer(customer["access_token"])
    )


async def _placed_lines(api: Api, order_id: str) -> list[dict[str, Any]]:
    payload = await api.pool.fetchval(
        "SELECT payload FROM outbox WHERE aggregate_id = $1 AND type = 'PlaceOrder'", order_id
    )
    return list(orjson.loads(bytes(payload))["lines"])


async def test_a_manager_sets_option_groups_and_the_server_gives_their_ids(
    api: Api, shop: dict[str, Any]
) -> None:
    menu = await _menu(api, shop, option_groups=[SIZE, SPICE])
    size, spice = menu["option_groups"]
    assert (size["name"], size["required"], size["max_choices"]) == ("Size", True, 1)
    assert (spice["required"], spice["max_choices"]) == (False, 2)
    ids = [size["id"], spice["id"], *(c["id"] for g in (size, spice) for c in g["choices"])]
    assert len(set(ids)) == len(ids) and all(ids)
    # A change keeps the ids it names, and gives new ones to what it adds.
    url = f"/api/v1/stores/{shop['store']['id']}/menus/{menu['id']}"
    auth = bearer(shop["manager"]["access_token"])
    kept = {**size, "name": "Portion", "choices": [*size["choices"], {"name": "Huge"}]}
    changed = await api.client.patch(url, json={"option_groups": [kept]}, headers=auth)
    assert changed.status_code == 200, changed.text
    [group] = changed.json()["option_groups"]
    assert (group["id"], group["name"]) == (size["id"], "Portion")
    assert [c["id"] for c in group["choices"][:2]] == [c["id"] for c in size["choices"]]
    assert group["choices"][2]["id"] not in ids
    shown = await api.client.get(url, headers=auth)
    assert shown.json()["option_groups"] == [group]
    # A lower price that a choice would take below 0 is refused.
    assert (await api.client.patch(url, json={"price": 999}, headers=auth)).status_code == 422


BAD_GROUPS = {
    "empty name": [{**SIZE, "name": ""}],
    "long name": [{**SIZE, "name": "x" * 51}],
    "11 groups": [SPICE] * 11,
    "21 choices": [{**SIZE, "choices": [{"name": f"c{n}"} for n in range(21)]}],
    "no choices": [{**SIZE, "choices": []}],
    "max_choices over the choices": [{**SIZE, "max_choices": 3}],
    "below -price": [{**SIZE, "choices": [{"name": "Free", "price_delta": -8_001}]}],
    "over 1,000,000": [{**SIZE, "choices": [{"name": "Gold", "price_delta": 1_000_001}]}],
    "two cuts below 0": [{**SPICE, "choices": [{"name": "a", "price_delta": -5_000}] * 2}],
    "an id the menu lacks": [{**SIZE, "id": "abcd1234"}],
    "a price field": [{**SIZE, "choices": [{"name": "a", "price": 1}]}],
}


async def test_bad_option_groups_are_refused_with_422(api: Api, shop: dict[str, Any]) -> None:
    url = f"/api/v1/stores/{shop['store']['id']}/menus"
    auth = bearer(shop["manager"]["access_token"])
    good = await api.client.post(
        url, json={"name": "Good", "price": 8_000, "option_groups": [SIZE]}, headers=auth
    )
    assert good.status_code == 201, good.text
    patch_url = f"{url}/{good.json()['id']}"
    for name, groups in BAD_GROUPS.items():
        made = await api.client.post(
            url, json={"name": "Bad", "price": 8_000, "option_groups": groups}, headers=auth
        )
        assert made.status_code == 422, (name, made.text)
        patched = await api.client.patch(patch_url, json={"option_groups": groups}, headers=auth)
        assert patched.status_code == 422, (name, patched.text)
    shown = await api.client.get(patch_url, headers=auth)
    assert [g["name"] for g in shown.json()["option_groups"]] == ["Size"]


async def test_a_checkout_with_options_is_priced_on_the_server(
    api: Api, shop: dict[str, Any]
) -> None:
    menu = await _menu(api, shop, option_groups=[SIZE, SPICE])
    body = _order(shop, (menu, 2, ["Large", "Extra spicy", "Cheese"]))
    placed = await _place(api, body)
    assert placed.status_code == 202, placed.text
    [line] = placed.json()["lines"]
    assert line["unit_price"] == 8_000 + 2_000 + 500 + 700
    assert line["options"] == ["Large", "Extra spicy", "Cheese"]
    assert placed.json()["total"] == 2 * 11_200
    [sent] = await _placed_lines(api, placed.json()["order_id"])
    assert (sent["unit_price"], sent["options"]) == (11_200, ["Large", "Extra spicy", "Cheese"])
    # The client cannot name a price.
    body["lines"][0]["unit_price"] = 1
    assert (await _place(api, body)).status_code == 422


async def test_options_a_menu_does_not_take_are_refused_with_422_naming_the_menu(
    api: Api, shop: dict[str, Any]
) -> None:
    menu = await _menu(api, shop, option_groups=[SIZE, SPICE])
    cases = {
        "required group missing": _order(shop, (menu, 1, ["Cheese"])),
        "too many choices": _order(shop, (menu, 1, ["Small", "Large"])),
        "too many in an optional group": _order(
            shop, (menu, 1, ["Small", "Cheese", "Egg", "Extra spicy"])
        ),
    }
    unknown = _order(shop, (menu, 1, ["Small"]))
    unknown["lines"][0]["options"].append("00000000")
    cases["unknown choice"] = unknown
    for name, body in cases.items():
        refused = await _place(api, body)
        assert refused.status_code == 422, (name, refused.text)
        assert menu["id"] in refused.json()["detail"], (name, refused.text)


async def test_two_lines_of_one_menu_with_different_options_are_two_lines_counted_by_the_gate(
    api: Api, shop: dict[str, Any]
) -> None:
    menu = await _menu(api, shop, option_groups=[SIZE])
    await gate.apply(
        api.redis,
        r.StockLevelChanged(
            store_id=shop["store"]["id"],
            menu_id=menu["id"],
            change=r.StockChange.ADJUSTED,
            quantity=3,
            on_hand=3,
            reserved=0,
            sold=0,
        ),
    )
    over = await _place(api, _order(shop, (menu, 2, ["Large"]), (menu, 2, ["Small"])))
    assert over.status_code == 409, over.text
    assert over.json()["available"] == 3
    placed = await _place(
        api, _order(shop, (menu, 1, ["Large"]), (menu, 2, ["Small"]), (menu, 0 + 1, ["Small"]))
    )
    assert placed.status_code == 409, placed.text  # 1 + 2 + 1 is 4 of 3
    placed = await _place(api, _order(shop, (menu, 1, ["Large"]), (menu, 2, ["Small"])))
    assert placed.status_code == 202, placed.text
    lines = sorted(
        (ln["options"], ln["quantity"], ln["unit_price"]) for ln in placed.json()["lines"]
    )
    assert lines == [(["Large"], 1, 10_000), (["Small"], 2, 7_000)]
    # The saga reserves per menu: one stock line with both lines' quantities.
    reserve = r.PlaceOrder.model_validate(
        {
            "order_id": placed.json()["order_id"],
            "customer_id": str(uuid.uuid4()),
            "store_id": shop["store"]["id"],
            "lines": await _placed_lines(api, placed.json()["order_id"]),
        }
    ).stock_lines
    assert reserve == (r.StockLine(menu_id=menu["id"], quantity=3),)


async def test_lines_of_one_menu_with_the_same_options_merge(
    api: Api, shop: dict[str, Any]
) -> None:
    menu = await _menu(api, shop, option_groups=[SIZE, SPICE])
    placed = await _place(
        api,
        _order(
            shop, (menu, 1, ["Large", "Egg"]), (menu, 2, ["Egg", "Large"]), (menu, 1, ["Small"])
        ),
    )
    assert placed.status_code == 202, placed.text
    lines = sorted((ln["options"], ln["quantity"]) for ln in placed.json()["lines"])
    assert lines == [(["Large", "Egg"], 3), (["Small"], 1)]


async def test_a_cart_checkout_of_a_menu_with_required_options_is_refused(
    api: Api, shop: dict[str, Any]
) -> None:
    required = await _menu(api, shop, option_groups=[SIZE])
    optional = await _menu(api, shop, name="Kimbap", option_groups=[SPICE])
    customer = await api.account()
    auth = bearer(customer["access_token"])
    sid = shop["store"]["id"]
    for menu in (optional, required):
        put = await api.client.put(
            f"/api/v1/cart/items/{menu['id']}", json={"store_id": sid, "quantity": 1}, headers=auth
        )
        assert put.status_code == 200, put.text
    checkout = {"delivery_address": "1 Main St"}
    refused = await api.client.post("/api/v1/orders", json=checkout, headers=auth)
    assert refused.status_code == 422, refused.text
    assert refused.json()["detail"] == (f"choose options for {required['id']}: order it with lines")
    # Optional groups only: the cart's lines are ordered without options.
    await api.client.put(
        f"/api/v1/cart/items/{required['id']}", json={"store_id": sid, "quantity": 0}, headers=auth
    )
    placed = await api.client.post("/api/v1/orders", json=checkout, headers=auth)
    assert placed.status_code == 202, placed.text
    assert [(ln["unit_price"], ln["options"]) for ln in placed.json()["lines"]] == [(8_000, [])]
