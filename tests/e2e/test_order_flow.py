"""An order's whole life through HTTP: checkout -> outbox -> relay -> saga -> projections -> GET.

The platform (``tests/e2e/platform.py``): one real worker and the API on a fresh database.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httpx
import orjson
import pytest

from eatcloud.bootstrap import build
from eatcloud.kinesis.streams import kinesis_client
from eatcloud.postgres.rebuild import rebuild
from eatcloud.settings import Settings
from tests.e2e.platform import (
    Platform,
    eventually,
    menu_with_stock,
    place,
    settled_stock,
    wait,
    worker_settings,
)
from tests.integration.api_harness import bearer, metric
from tests.integration.test_kinesis_forwarder import read_all

# One store's rows (``store``) or some orders' rows (``order``) of each read model, in order.
SNAPSHOTS = {
    "order_view": ("order", "SELECT * FROM order_view WHERE order_id = ANY($1) ORDER BY 1"),
    "order_timeline": (
        "order",
        # without ``seq``: a rebuild numbers its timeline after the live one (live updates)
        "SELECT order_id, event_id, type, status, reason, occurred_at FROM order_timeline"
        " WHERE order_id = ANY($1) ORDER BY order_id, event_id",
    ),
    "stock_view": (
        "store",
        "SELECT * FROM stock_view WHERE store_id = ANY($1) ORDER BY store_id, menu_id",
    ),
    "store_sales": (
        "store",
        "SELECT * FROM store_sales WHERE store_id = ANY($1) ORDER BY store_id, day",
    ),
}


async def test_checkout_to_completed_through_http(
    platform: Platform, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="eatcloud.api.access")
    p = platform
    store, menu = await menu_with_stock(p, price=12_000, stock=5)
    customer = await p.api.account()
    placed = await place(p, customer, store, menu, qty=2, **{"X-Request-ID": "e2e-req-1"})
    assert placed.status_code == 202, placed.text
    order_id = placed.json()["order_id"]

    paid = await wait(p, customer, order_id, "PAID")
    assert paid["status"] == "PAID", paid
    manager = bearer(p.manager["access_token"])
    accept = await p.api.client.post(
        f"/api/v1/stores/{store}/orders/{order_id}/accept", headers=manager
    )
    assert accept.status_code == 202, accept.text
    assert (await wait(p, customer, order_id, "ACCEPTED"))["status"] == "ACCEPTED"
    await p.api.client.post(f"/api/v1/stores/{store}/orders/{order_id}/complete", headers=manager)
    done = await wait(p, customer, order_id, "COMPLETED")
    assert done["status"] == "COMPLETED"

    timeline = await p.api.client.get(
        f"/api/v1/orders/{order_id}/timeline", headers=bearer(customer["access_token"])
    )
    assert [e["status"] for e in timeline.json()] == ["PENDING", "PAID", "ACCEPTED", "COMPLETED"]
    expected = {"on_hand": 3, "reserved": 0, "sold": 2}
    assert await settled_stock(p, store, expected) == expected
    sales = await p.api.pool.fetchrow(
        "SELECT orders, revenue FROM store_sales WHERE store_id = $1", store
    )
    assert dict(sales) == {"orders": 1, "revenue": 24_000}
    # One request id from the HTTP log line to the worker's projection log line.
    http_lines = [r.getMessage() for r in caplog.records if r.name == "eatcloud.api.access"]
    assert any(
        line.startswith("POST /api/v1/orders 202")
        and "request_id=e2e-req-1" in line
        and f"order_id={order_id}" in line
        for line in http_lines
    ), http_lines
    assert f"projected OrderPlaced order_id={order_id} request_id=e2e-req-1" in p.worker.tail(2000)


async def test_order_events_reach_kinesis_in_order_with_their_trace_headers(
    platform: Platform, stack: Settings
) -> None:
    p = platform
    store, menu = await menu_with_stock(p, price=4_000, stock=5)
    customer = await p.api.account()
    placed = await place(p, customer, store, menu, **{"X-Request-ID": "e2e-kinesis-1"})
    order_id = placed.json()["order_id"]
    await wait(p, customer, order_id, "PAID")
    client = kinesis_client(stack)
    stream = p.worker.env["EATCLOUD_KINESIS__STREAM_NAME"]

    async def forwarded() -> tuple[list[tuple[str, Any]], list[Any]]:
        records = [(key, orjson.loads(data)) for key, data in read_all(client, stream)]
        mine = [
            (key, r)
            for key, r in records
            if r["topic"] == "order-events" and r["event"]["order_id"] == order_id
        ]
        stock = [
            r
            for _, r in records
            if r["topic"] == "stock-events" and r["event"]["store_id"] == store
        ]
        return mine, stock

    # Order and stock events are forwarded by two agents: wait for both.
    mine, stock = await eventually(
        forwarded, lambda found: len(found[0]) >= 2 and len(found[1]) >= 3
    )
    assert [r["event"]["type"] for _, r in mine] == ["OrderPlaced", "OrderPaid"], mine
    assert all(key == order_id for key, _ in mine)
    assert all(r["headers"]["x-request-id"] == "e2e-kinesis-1" for _, r in mine)
    assert all(r["headers"]["traceparent"].startswith("00-") for _, r in mine)
    changes = [line["change"] for r in stock for line in r["event"]["lines"]]  # one per command
    assert (len(stock), changes) == (3, ["adjusted", "reserved", "committed"])


async def test_the_worker_and_the_api_expose_their_metrics(platform: Platform) -> None:
    """An order of its own completes: the worker counts its saga, its outbox rows and what it
    forwarded to Kinesis, and the API its checkout."""
    p = platform
    store, menu = await menu_with_stock(p, price=3_500, stock=5)  # the worker is up then
    port = p.worker.env["EATCLOUD_WORKER__METRICS_PORT"]

    def counted(worker: str) -> dict[str, float]:
        return {
            "completed": metric(worker, "eatcloud_saga_outcomes_total", status="COMPLETED"),
            "paid": metric(worker, "eatcloud_saga_outcomes_total", status="PAID"),
            "published": metric(worker, "eatcloud_outbox_published_total"),
            "forwarded": metric(worker, "eatcloud_kinesis_records_total"),
        }

    async def checkouts() -> float:
        api = (await p.api.client.get("/metrics")).text
        labels = {"method": "POST", "route": "/api/v1/orders", "status": "202"}
        return metric(api, "eatcloud_http_requests_total", **labels)

    async with httpx.AsyncClient() as client:

        async def scrape() -> str:
            return (await client.get(f"http://127.0.0.1:{port}/metrics")).text

        before, checkouts_before = counted(await scrape()), await checkouts()
        customer = await p.api.account()
        order_id = (await place(p, customer, store, menu)).json()["order_id"]
        assert (await wait(p, customer, order_id, "PAID"))["status"] == "PAID"
        manager = bearer(p.manager["access_token"])
        for step in ("accept", "complete"):
            await p.api.client.post(
                f"/api/v1/stores/{store}/orders/{order_id}/{step}", headers=manager
            )
        assert (await wait(p, customer, order_id, "COMPLETED"))["status"] == "COMPLETED"

        def grown(text: str) -> bool:  # forwarding may lag; the lag gauges come every 5 s
            now = counted(text)
            return "eatcloud_consumer_lag{" in text and all(now[k] > before[k] for k in now)

        worker = await eventually(scrape, grown, within=15)
    assert grown(worker), (before, counted(worker))
    assert await checkouts() > checkouts_before
    assert "eatcloud_saga_step_seconds_bucket" in worker


async def test_the_worker_reports_live_and_ready_once_its_tables_are_recovered(
    platform: Platform,
) -> None:
    """The probes of the Helm chart's worker StatefulSet, on the worker's web port."""
    port = platform.worker.env["EATCLOUD_WORKER__WEB_PORT"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:

        async def probe() -> httpx.Response | None:
            try:
                return await client.get("/health/ready")
            except httpx.ConnectError:  # its web server is not up yet
                return None

        # When this test runs alone, the worker is still starting.
        ready = await eventually(probe, lambda r: r is not None and r.status_code == 200, 90)
        live = await client.get("/health/live")
    assert ready is not None, platform.worker.tail()
    assert live.status_code == 200, live.text
    assert (ready.status_code, ready.json()) == (200, {"status": "ready"})
    # Only probes and metrics there: Faust's table and router pages would show any saga or
    # payment to whoever reaches the port.
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        for page in ("/table/sagas/", "/table/payments/", "/router/", "/graph/", "/stats/"):
            answer = await client.get(page)
            assert answer.status_code == 404, (page, answer.status_code, answer.text[:200])
    # The broker took it as a static member: it names such members after their instance id.
    assert "with member_id e2e-worker-0-" in platform.worker.log.read_text()


async def test_a_declined_payment_ends_rejected(platform: Platform) -> None:
    p = platform
    store, menu = await menu_with_stock(p, price=10_013, stock=5)  # ends in 13: declined
    customer = await p.api.account()
    placed = await place(p, customer, store, menu)
    ended = await wait(p, customer, placed.json()["order_id"], "PAID")
    assert ended["status"] == "REJECTED" and "declined" in ended["reason"], ended
    expected = {"on_hand": 5, "reserved": 0, "sold": 0}
    assert await settled_stock(p, store, expected) == expected


async def test_a_store_that_does_not_accept_in_time_cancels_with_refund(platform: Platform) -> None:
    p = platform
    store, menu = await menu_with_stock(p, price=7_000, stock=5)
    customer = await p.api.account()
    placed = await place(p, customer, store, menu)
    order_id = placed.json()["order_id"]
    assert (await wait(p, customer, order_id, "PAID"))["status"] == "PAID"
    ended = await wait(p, customer, order_id, "CANCELLED")
    assert ended["status"] == "CANCELLED", ended
    expected = {"on_hand": 5, "reserved": 0, "sold": 0}
    assert await settled_stock(p, store, expected) == expected


async def test_a_flash_sale_through_http_sells_exactly_the_stock_and_409s_the_rest(
    platform: Platform,
) -> None:
    p = platform
    store, menu = await menu_with_stock(p, price=3_000, stock=5)
    buyers = [await p.api.account() for _ in range(12)]
    answers = await asyncio.gather(*(place(p, b, store, menu) for b in buyers))
    accepted = [
        (b, a.json()["order_id"])
        for b, a in zip(buyers, answers, strict=True)
        if a.status_code == 202
    ]
    refused = [a for a in answers if a.status_code == 409]
    assert len(accepted) == 5 and len(refused) == 7, [a.text for a in answers]
    assert all(a.json()["type"].endswith("/sold-out") for a in refused)
    finals = [await wait(p, b, order_id, "PAID") for b, order_id in accepted]
    assert [f["status"] for f in finals] == ["PAID"] * 5
    expected = {"on_hand": 0, "reserved": 0, "sold": 5}
    assert await settled_stock(p, store, expected) == expected


async def test_customers_see_only_their_own_orders(platform: Platform) -> None:
    p = platform
    store, menu = await menu_with_stock(p, price=5_000, stock=5)
    owner, stranger = await p.api.account(), await p.api.account()
    order_id = (await place(p, owner, store, menu)).json()["order_id"]
    theirs = await p.api.client.get(
        f"/api/v1/orders/{order_id}", headers=bearer(stranger["access_token"])
    )
    other_manager = await p.api.account("MANAGER")
    foreign = await p.api.client.get(
        f"/api/v1/orders/{order_id}", headers=bearer(other_manager["access_token"])
    )
    mine = await p.api.client.get("/api/v1/orders", headers=bearer(owner["access_token"]))
    assert theirs.status_code == foreign.status_code == 404
    await wait(p, owner, order_id, "PAID")
    mine = await p.api.client.get("/api/v1/orders", headers=bearer(owner["access_token"]))
    assert [o["order_id"] for o in mine.json()] == [order_id]


async def test_projections_rebuild_replays_the_log_into_identical_rows(
    platform: Platform,
) -> None:
    """A store's orders end every way, one after the other (declined, cancelled by the store
    after payment, completed), and their read models settle: a rebuild from the log gives the
    same rows. Only this store's rows are compared: other tests' orders may still be moving."""
    p = platform
    store, menu = await menu_with_stock(p, price=10_013, stock=5)  # 1 unit: declined (13)
    customer = await p.api.account()
    manager = bearer(p.manager["access_token"])

    async def order(qty: int, status: str, *steps: str) -> str:
        placed = await place(p, customer, store, menu, qty=qty)
        assert placed.status_code == 202, placed.text
        order_id: str = placed.json()["order_id"]
        if steps:  # the store's commands, in order on the store's partition
            assert (await wait(p, customer, order_id, "PAID"))["status"] == "PAID"
        for step in steps:
            sent = await p.api.client.post(
                f"/api/v1/stores/{store}/orders/{order_id}/{step}", headers=manager
            )
            assert sent.status_code == 202, sent.text
        assert (await wait(p, customer, order_id, status))["status"] == status
        return order_id

    orders = {
        await order(1, "REJECTED"): ("REJECTED", 2),
        await order(2, "CANCELLED", "cancel"): ("CANCELLED", 3),
        await order(3, "COMPLETED", "accept", "complete"): ("COMPLETED", 4),
    }
    # The stock went 5 -> 4+1 held -> 5 -> 3+2 held -> 3, 2 sold -> 5 -> 2+3 held -> 2, 3 sold:
    # its last state is new, so when the view shows it, every stock event has been projected.
    settled = {
        "order_view": orders,
        "stock_view": [(2, 0, 3)],
        "store_sales": [(1, 3 * 10_013)],
    }

    async def snapshot() -> dict[str, list[dict[str, Any]]]:
        keys = {"order": list(orders), "store": [store]}
        return {
            name: [dict(row) for row in await p.api.pool.fetch(sql, keys[by])]
            for name, (by, sql) in SNAPSHOTS.items()
        }

    def landed(rows: dict[str, list[dict[str, Any]]]) -> bool:
        return {
            "order_view": {o["order_id"]: (o["status"], o["events"]) for o in rows["order_view"]},
            "stock_view": [(s["on_hand"], s["reserved"], s["sold"]) for s in rows["stock_view"]],
            "store_sales": [(s["orders"], s["revenue"]) for s in rows["store_sales"]],
        } == settled

    before = await eventually(snapshot, landed)
    assert landed(before), (before, p.worker.tail(60))
    seen: list[tuple[str, int, int]] = []
    numbered = await p.api.pool.fetchval("SELECT max(seq) FROM order_timeline")
    async with build(worker_settings(p), pool_size=2) as services:
        result = await rebuild(services, lambda topic, at, total: seen.append((topic, at, total)))
    assert await snapshot() == before
    # The new timeline is numbered after the old one, in the same order: a live-update client
    # resuming from a number it saw gets its events again, never misses one.
    renumbered = await p.api.pool.fetch(
        "SELECT seq FROM order_timeline WHERE order_id = ANY($1) ORDER BY seq", list(orders)
    )
    assert all(row["seq"] > numbered for row in renumbered), (numbered, renumbered)
    assert len(before["order_timeline"]) == 2 + 3 + 4
    assert result.events["order-events"] >= len(before["order_timeline"])
    assert seen[-1][1] == seen[-1][2]  # progress reached its total
