"""The points wallet end to end: a completed order earns points, an admin grants some (and
a redelivered grant changes nothing), a checkout spends them, a cancel gives them back, and
``GET /me/points`` shows each change once, newest first."""

from __future__ import annotations

from typing import Any

from tests.e2e.platform import Platform, eventually, menu_with_stock, place, wait
from tests.integration.api_harness import bearer

PRICE = 10_000  # 1 % of what is paid is earned (saga.points_earn_bp = 100, the default)


async def wallet(p: Platform, customer: dict[str, str]) -> dict[str, Any]:
    got = await p.api.client.get("/api/v1/me/points", headers=bearer(customer["access_token"]))
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


async def wallet_at(p: Platform, customer: dict[str, str], balance: int, reserved: int = 0) -> Any:
    seen = await eventually(
        lambda: wallet(p, customer),
        lambda w: (w["balance"], w["reserved"]) == (balance, reserved),
        30,
    )
    assert (seen["balance"], seen["reserved"]) == (balance, reserved), (seen, p.worker.tail(40))
    return seen


async def grant(p: Platform, customer: dict[str, str], delta: int, reason: str) -> str:
    sent = await p.api.client.post(
        f"/api/v1/admin/users/{customer['id']}/points",
        json={"delta": delta, "reason": reason},
        headers=bearer(p.admin["access_token"]),
    )
    assert sent.status_code == 202, sent.text
    event_id: str = sent.json()["event_id"]
    return event_id


async def test_earn_grant_spend_and_get_back_across_a_cancel(platform: Platform) -> None:
    p = platform
    store, menu = await menu_with_stock(p, price=PRICE, stock=10)
    customer, other = await p.api.account(), await p.api.account()
    manager = bearer(p.manager["access_token"])
    assert (await wallet(p, customer))["balance"] == 0  # nobody starts with points

    # A completed order of 20,000 earns 200 points.
    first = (await place(p, customer, store, menu, qty=2)).json()["order_id"]
    assert (await wait(p, customer, first, "PAID"))["status"] == "PAID"
    for step in ("accept", "complete"):
        done = await p.api.client.post(
            f"/api/v1/stores/{store}/orders/{first}/{step}", headers=manager
        )
        assert done.status_code == 202, done.text
    assert (await wait(p, customer, first, "COMPLETED"))["status"] == "COMPLETED"
    await wallet_at(p, customer, 200)

    # An admin grants 300; the outbox delivers that grant a second time (as the relay does
    # after a crash between the broker's ack and its own commit): applied once.
    granted = await grant(p, customer, 300, "sorry for the wait")
    await wallet_at(p, customer, 500)
    await p.api.pool.execute(
        """INSERT INTO outbox (aggregate_type, aggregate_id, topic, key, type, payload, headers)
           SELECT aggregate_type, aggregate_id, topic, key, type, payload, headers FROM outbox
           WHERE headers->>'event_id' = $1""",
        granted,
    )
    await p.api.pool.execute("SELECT pg_notify('eatcloud_outbox', '')")
    await grant(p, customer, 1, "after the copy")  # same customer, same partition: comes after
    await wallet_at(p, customer, 501)

    # A take-back that would leave less than nothing... is refused, and the history says so.
    await grant(p, customer, -10_000, "chargeback")
    refused = await eventually(
        lambda: wallet(p, customer), lambda w: w["history"][0]["change"] == "REFUSED", 30
    )
    assert refused["balance"] == 501 and "chargeback (refused" in refused["history"][0]["reason"]

    # 400 points pay part of the next order; cancelled after payment, they come back.
    spent = await p.api.client.post(
        "/api/v1/orders",
        json={"store_id": store, "lines": [{"menu_id": menu, "quantity": 1}], "points": 400,
              "delivery_address": "1 Main St"},
        headers=bearer(customer["access_token"]),
    )  # fmt: skip
    assert spent.status_code == 202, spent.text
    second = spent.json()["order_id"]
    assert (await wait(p, customer, second, "PAID"))["status"] == "PAID"
    await wallet_at(p, customer, 101)
    cancel = await p.api.client.post(
        f"/api/v1/orders/{second}/cancel", json={"reason": "changed my mind"},
        headers=bearer(customer["access_token"]),
    )  # fmt: skip
    assert cancel.status_code == 202, cancel.text
    assert (await wait(p, customer, second, "CANCELLED"))["status"] == "CANCELLED"
    final = await wallet_at(p, customer, 501)  # a cancelled order earns nothing

    history = [(e["change"], e["delta"], e["order_id"]) for e in final["history"]]
    assert history == [
        ("RETURNED", 400, second),
        ("DEDUCTED", -400, second),
        ("RESERVED", 0, second),
        ("REFUSED", 0, ""),
        ("GRANTED", 1, ""),
        ("GRANTED", 300, ""),
        ("EARNED", 200, first),
    ]
    assert final["available"] == 501
    assert (await wallet(p, other))["balance"] == 0  # nobody else's points moved
    page = await p.api.client.get(
        "/api/v1/me/points", params={"size": 2, "page": 2}, headers=bearer(customer["access_token"])
    )
    assert [e["change"] for e in page.json()["history"]] == ["RESERVED", "REFUSED"]
