"""Per-caller limits on the reads that cost the most (``eatcloud.api.limits``), on an API of
its own with low limits: long-polls capped at once and over time, searches over time, and no
page that starts too deep."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import pytest

from eatcloud.settings import Settings
from tests.integration.api_harness import Api, api_on, approved_store, bearer
from tests.integration.databases import fresh_database


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with fresh_database(settings) as db:
        low = db.model_copy(
            update={
                "api": db.api.model_copy(update={"max_page_depth": 100}),
                "rate_limit": db.rate_limit.model_copy(
                    update={"waiting_per_caller": 1, "wait_burst": 3, "wait_per_minute": 1,
                            "search_burst": 2, "search_per_minute": 1}
                ),
            }
        )  # fmt: skip
        async with api_on(low) as running:
            yield running


async def test_no_page_starts_deeper_than_the_limit(api: Api) -> None:
    who = bearer((await api.account())["access_token"])
    shallow = await api.client.get("/api/v1/orders", params={"page": 6, "size": 20}, headers=who)
    deep = await api.client.get("/api/v1/orders", params={"page": 7, "size": 20}, headers=who)
    assert shallow.status_code == 200, shallow.text
    assert deep.status_code == 422 and "rows deep" in deep.json()["detail"], deep.text
    search = await api.client.get(
        "/api/v1/stores/search", params={"q": "kimchi", "page": 200, "size": 100}, headers=who
    )
    assert search.status_code == 422, search.text


async def test_searches_are_rate_limited_per_caller(api: Api) -> None:
    one = bearer((await api.account())["access_token"])
    other = bearer((await api.account())["access_token"])
    answers = [
        await api.client.get("/api/v1/stores/search", params={"q": "tteok"}, headers=one)
        for _ in range(3)
    ]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert int(answers[-1].headers["retry-after"]) >= 1
    elsewhere = await api.client.get("/api/v1/stores/search", params={"q": "tteok"}, headers=other)
    assert elsewhere.status_code == 200  # another caller has a bucket of its own


async def test_long_polls_are_capped_at_once_and_over_time(api: Api) -> None:
    manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
    store = await approved_store(api, manager, admin, name=f"Wait {uuid.uuid4().hex[:4]}")
    menu = (
        await api.client.post(
            f"/api/v1/stores/{store['id']}/menus",
            json={"name": "Gimbap", "price": 3_000},
            headers=bearer(manager["access_token"]),
        )
    ).json()["id"]
    who = bearer((await api.account())["access_token"])
    placed = await api.client.post(
        "/api/v1/orders",
        json={"store_id": store["id"], "lines": [{"menu_id": menu, "quantity": 1}],
              "fulfilment": "PICKUP"},
        headers=who,
    )  # fmt: skip
    assert placed.status_code == 202, placed.text
    url = f"/api/v1/orders/{placed.json()['order_id']}"
    # No worker runs here: the order stays PENDING, so a wait for PAID lasts its timeout.
    both = await asyncio.gather(
        *(api.client.get(url, params={"wait": "PAID", "timeout": 1.5}, headers=who)
          for _ in range(2))
    )  # fmt: skip
    assert sorted(a.status_code for a in both) == [200, 429], [a.text for a in both]
    waited = next(a for a in both if a.status_code == 200)
    assert waited.headers["x-wait-timed-out"] == "true"
    third = await api.client.get(url, params={"wait": "PAID", "timeout": 0}, headers=who)
    fourth = await api.client.get(url, params={"wait": "PAID", "timeout": 0}, headers=who)
    assert (third.status_code, fourth.status_code) == (200, 429)  # a burst of 3 in all
    plain = await api.client.get(url, headers=who)
    assert plain.status_code == 200  # a read without ?wait= costs no token
