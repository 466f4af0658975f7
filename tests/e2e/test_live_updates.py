"""Live order updates over Server-Sent Events, from a real API process (uvicorn) next to the
platform's worker: a customer's order stream and a store's stream see every change in order,
a client that reconnects with Last-Event-ID misses nothing and gets nothing twice, heartbeats
come between changes, streams are capped per caller and authorized as the REST routes."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.e2e.platform import Platform, menu_with_stock, place, wait
from tests.integration.api_harness import bearer
from tests.integration.workers import ApiProcess

HEARTBEAT = 1.0
STREAMS = 2


@pytest.fixture(scope="module")
def live_api(platform: Platform, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``eatcloud api`` on the platform's database, with short heartbeats and two streams a
    caller; its URL."""
    api = ApiProcess(
        platform.api.settings.postgres.database,
        tmp_path_factory.mktemp("live") / "api.log",
        EATCLOUD_API__SSE_HEARTBEAT_SECONDS=str(HEARTBEAT),
        EATCLOUD_RATE_LIMIT__STREAMS_PER_CALLER=str(STREAMS),
    )
    api.start()
    try:
        yield api.url
    finally:
        api.stop()
        assert not api.errors(), "\n".join(api.errors()[:5])


async def events(response: httpx.Response) -> AsyncIterator[dict[str, Any]]:
    """The stream's messages: {"id", "event", "data"} for events, {"comment"} for comments
    (fields without data, such as ``retry``, are left out)."""
    message: dict[str, Any] = {}
    async for line in response.aiter_lines():
        if not line:
            if "data" in message:
                yield message
            message = {}
        elif line.startswith(":"):
            yield {"comment": line[1:].strip()}
        else:
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            message[field] = orjson.loads(value) if field == "data" else value


@contextlib.asynccontextmanager
async def stream(url: str, who: dict[str, str], **headers: str) -> AsyncIterator[httpx.Response]:
    async with (
        httpx.AsyncClient(timeout=30) as client,
        client.stream("GET", url, headers={**bearer(who["access_token"]), **headers}) as response,
    ):
        yield response


async def statuses_until(
    messages: AsyncIterator[dict[str, Any]], last: str, order_id: str
) -> list[Any]:
    """(id, status) of the order's events until ``last``, and every comment meanwhile."""
    seen: list[Any] = []
    async with asyncio.timeout(60):
        async for message in messages:
            if "comment" in message:
                seen.append(message["comment"])
            elif message["data"]["order_id"] == order_id:
                seen.append((int(message["id"]), message["data"]["status"]))
                if message["data"]["status"] == last:
                    return seen
    raise AssertionError(f"the stream ended before {last}: {seen}")


async def test_every_change_live_and_a_reconnect_misses_nothing(
    platform: Platform, live_api: str
) -> None:
    p = platform
    store, menu = await menu_with_stock(p, price=9_000, stock=5)
    customer = await p.api.account()
    manager = bearer(p.manager["access_token"])

    async with stream(f"{live_api}/api/v1/stores/{store}/orders/events", p.manager) as shop:
        assert shop.status_code == 200
        assert shop.headers["content-type"].startswith("text/event-stream")
        shop_messages = events(shop)
        placed = await place(p, customer, store, menu)
        order_id = placed.json()["order_id"]
        order_url = f"{live_api}/api/v1/orders/{order_id}/events"

        async with stream(order_url, customer) as first:
            seen_first = await statuses_until(events(first), "PAID", order_id)
            before = [s for s in seen_first if s != "connected"]
        assert [status for _, status in before] == ["PENDING", "PAID"]
        last_seen = before[-1][0]

        # While nobody of the customer's watches, the store accepts and completes.
        for step in ("accept", "complete"):
            sent = await p.api.client.post(
                f"/api/v1/stores/{store}/orders/{order_id}/{step}", headers=manager
            )
            assert sent.status_code == 202, sent.text
        assert (await wait(p, customer, order_id, "COMPLETED"))["status"] == "COMPLETED"

        async with stream(order_url, customer, **{"Last-Event-ID": str(last_seen)}) as again:
            messages = events(again)
            after = await statuses_until(messages, "COMPLETED", order_id)
            resumed = [s for s in after if isinstance(s, tuple)]
            assert [status for _, status in resumed] == ["ACCEPTED", "COMPLETED"]  # no repeat
            ids = [last_seen, *(i for i, _ in resumed)]
            assert ids == sorted(set(ids)), ids
            # Nothing more happens: heartbeats keep the stream open.
            async with asyncio.timeout(HEARTBEAT * 5):
                async for message in messages:
                    assert "comment" in message, message
                    if message["comment"] == "heartbeat":
                        break

        store_seen = await statuses_until(shop_messages, "COMPLETED", order_id)
        changes = [status for s in store_seen if isinstance(s, tuple) for status in s[1:]]
        assert changes == ["PENDING", "PAID", "ACCEPTED", "COMPLETED"]


async def test_streams_are_authorized_as_the_rest_routes_and_capped_per_caller(
    platform: Platform, live_api: str, tmp_path: Path
) -> None:
    p = platform
    store, menu = await menu_with_stock(p, price=9_000, stock=5)
    customer, stranger = await p.api.account(), await p.api.account()
    other_manager = await p.api.account("MANAGER")
    order_id = (await place(p, customer, store, menu)).json()["order_id"]
    order_url = f"{live_api}/api/v1/orders/{order_id}/events"

    async with httpx.AsyncClient(base_url=live_api, timeout=10) as client:
        for url, who in (
            (order_url, stranger),  # someone else's order: 404, as GET /orders/{id}
            (f"{live_api}/api/v1/stores/{store}/orders/events", other_manager),
        ):
            refused = await client.get(url, headers=bearer(who["access_token"]))
            assert refused.status_code == 404, refused.text
        assert (await client.get(order_url)).status_code == 401

    async with stream(order_url, customer) as one, stream(order_url, customer) as two:
        assert (one.status_code, two.status_code) == (200, 200)
        async with httpx.AsyncClient(base_url=live_api, timeout=10) as client:
            third = await client.get(order_url, headers=bearer(customer["access_token"]))
        assert third.status_code == 429, third.text
        assert third.headers["content-type"] == "application/problem+json"
        assert "Retry-After" in third.headers
    async with stream(order_url, customer) as freed:  # a closed stream gives its slot back
        assert freed.status_code == 200
