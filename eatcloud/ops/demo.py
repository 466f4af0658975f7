"""``eatcloud demo``: seed a store and customers, then run a short scenario of orders.

It drives the real platform through its HTTP API, as customers and a store would: a manager
opens a store (an admin approves it), four menus get stock, customers order, and the store
accepts and completes each paid order. The menus are chosen so that every path shows up:

| menu               | price  | stock | what happens                                        |
|--------------------|--------|-------|-----------------------------------------------------|
| Bibimbap           | 9,000  | 50    | PAID -> ACCEPTED -> COMPLETED                       |
| Galbi              | 24,000 | 50    | the same                                            |
| Truffle Tteokbokki | 31,000 | 2     | the first two sell; then checkout answers 409       |
| Mandu              | 7,013  | 50    | the simulated gateway declines amounts ending in 13 |

Orders take the menus in turn, one unit each, so the outcome is known in advance; the
``DemoRun`` says what happened. The admin is created directly in PostgreSQL (admins are not
self-service); everything else goes through the API.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from eatcloud.postgres.users import create_user
from eatcloud.resources import Services

API = "/api/v1"
TERMINAL = {"COMPLETED", "REJECTED", "CANCELLED"}
SOLD_OUT = "SOLD OUT (409)"


@dataclass(frozen=True)
class DemoMenu:
    name: str
    price: int
    stock: int


MENUS = (
    DemoMenu("Bibimbap", 9_000, 50),
    DemoMenu("Galbi", 24_000, 50),
    DemoMenu("Truffle Tteokbokki", 31_000, 2),
    DemoMenu("Mandu", 7_013, 50),
)


@dataclass
class DemoOrder:
    number: int
    menu: str
    customer: str  # access token
    order_id: str | None = None  # None: refused at checkout
    status: str = "PENDING"
    acted_on: str = ""  # the status the store last acted on (it asks once per status)


@dataclass
class DemoRun:
    store_id: str
    manager_email: str
    password: str
    orders: list[DemoOrder] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def counts(self) -> Counter[str]:
        return Counter(o.status for o in self.orders)

    def finished(self) -> bool:
        return all(o.status in TERMINAL | {SOLD_OUT} for o in self.orders)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started


class DemoError(RuntimeError):
    """The platform answered something a demo step cannot go on from."""


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def _call(
    client: httpx.AsyncClient, method: str, path: str, ok: tuple[int, ...], **kwargs: Any
) -> httpx.Response:
    response = await client.request(method, API + path, **kwargs)
    if response.status_code not in ok:
        raise DemoError(f"{method} {path} answered {response.status_code}: {response.text[:300]}")
    return response


async def _login(client: httpx.AsyncClient, email: str, password: str) -> str:
    login = await _call(
        client, "POST", "/auth/login", (200,), json={"email": email, "password": password}
    )
    token: str = login.json()["access_token"]
    return token


async def _account(
    client: httpx.AsyncClient, role: str, tag: str, password: str
) -> tuple[str, str]:
    email = f"demo-{role.lower()}-{tag}@example.test"
    await _call(
        client,
        "POST",
        "/auth/signup",
        (201,),
        json={"email": email, "password": password, "name": f"Demo {role.title()}", "role": role},
    )
    return email, await _login(client, email, password)


async def seed(
    client: httpx.AsyncClient,
    services: Services,
    customers: int,
    say: Callable[[str], None],
    stock_timeout: float = 90.0,
) -> tuple[DemoRun, dict[str, str], list[str], str]:
    """A store with the demo menus (stock applied), ``customers`` accounts and the manager."""
    from eatcloud.api.security import hash_password  # the API's hashing, not a copy

    tag, password = uuid.uuid4().hex[:8], secrets.token_urlsafe(12)
    pool = await services.pool()
    admin_email = f"demo-admin-{tag}@example.test"
    await create_user(pool, admin_email, await hash_password(password), "ADMIN", "Demo Admin")
    admin = await _login(client, admin_email, password)
    manager_email, manager = await _account(client, "MANAGER", tag, password)
    await _call(
        client,
        "POST",
        "/admin/categories",
        (201, 409),
        json={"code": "KOREAN", "name": "Korean"},
        headers=_bearer(admin),
    )
    store = await _call(
        client,
        "POST",
        "/stores",
        (201,),
        json={
            "name": f"EatCloud Demo Kitchen {tag}",
            "category_code": "KOREAN",
            "lat": 37.5665,
            "lon": 126.9780,
        },
        headers=_bearer(manager),
    )
    store_id = str(store.json()["id"])
    await _call(client, "POST", f"/admin/stores/{store_id}/approve", (200,), headers=_bearer(admin))
    say(f"store {store_id} approved; manager {manager_email}")
    menus: dict[str, str] = {}
    for menu in MENUS:
        made = await _call(
            client,
            "POST",
            f"/stores/{store_id}/menus",
            (201,),
            json={"name": menu.name, "price": menu.price, "initial_stock": menu.stock},
            headers=_bearer(manager),
        )
        menus[menu.name] = str(made.json()["id"])
    say("waiting for the orchestrator to apply the initial stock ...")
    deadline = time.monotonic() + stock_timeout
    while True:
        rows = await pool.fetch(
            "SELECT menu_id, on_hand FROM stock_view WHERE store_id = $1", store_id
        )
        have = {str(r["menu_id"]): r["on_hand"] for r in rows}
        if all(have.get(menus[m.name]) == m.stock for m in MENUS):
            break
        if time.monotonic() > deadline:
            raise DemoError(
                "the stock never reached the read model: is a worker running "
                "(`eatcloud worker`, or `eatcloud run`)?"
            )
        await asyncio.sleep(0.3)
    tokens = [
        (await _account(client, "CUSTOMER", f"{tag}-{i}", password))[1] for i in range(customers)
    ]
    run = DemoRun(store_id, manager_email, password)
    return run, menus, tokens, manager


async def run_demo(
    client: httpx.AsyncClient,
    services: Services,
    *,
    orders: int = 12,
    customers: int = 4,
    wait_seconds: float = 120.0,
    say: Callable[[str], None] = lambda _: None,
    on_update: Callable[[DemoRun], None] = lambda _: None,
    poll: float = 0.3,
) -> DemoRun:
    """Seed, place ``orders`` (menus in turn), let the store accept and complete them."""
    run, menus, tokens, manager = await seed(client, services, customers, say)
    say(f"placing {orders} orders from {customers} customers ...")
    for number in range(orders):
        menu = MENUS[number % len(MENUS)]
        order = DemoOrder(number + 1, menu.name, tokens[number % len(tokens)])
        placed = await _call(
            client,
            "POST",
            "/orders",
            (202, 409),
            json={
                "store_id": run.store_id,
                "lines": [{"menu_id": menus[menu.name], "quantity": 1}],
                "delivery_address": "1 Demo Street, Seoul",
            },
            headers={**_bearer(order.customer), "Idempotency-Key": uuid.uuid4().hex},
        )
        if placed.status_code == 409:
            if "sold-out" not in placed.json().get("type", ""):
                raise DemoError(f"checkout refused: {placed.text[:300]}")
            order.status = SOLD_OUT
        else:
            order.order_id = str(placed.json()["order_id"])
        run.orders.append(order)
        on_update(run)
    deadline = time.monotonic() + wait_seconds
    store = f"/stores/{run.store_id}/orders"
    while not run.finished():
        if time.monotonic() > deadline:
            raise DemoError(f"orders still open after {wait_seconds:g} s: {dict(run.counts())}")
        for order in run.orders:
            if order.order_id is None or order.status in TERMINAL:
                continue
            got = await _call(
                client,
                "GET",
                f"/orders/{order.order_id}",
                (200, 404),
                headers=_bearer(order.customer),
            )
            if got.status_code == 404:  # the projection has not seen it yet
                continue
            order.status = got.json()["status"]
            # The store's part: accept what is paid, complete what it accepted.
            action = {"PAID": "accept", "ACCEPTED": "complete"}.get(order.status)
            if action and order.acted_on != order.status:
                order.acted_on = order.status
                await _call(
                    client,
                    "POST",
                    f"{store}/{order.order_id}/{action}",
                    (202, 409),  # 409: the saga moved on meanwhile (it decides, we ask)
                    headers=_bearer(manager),
                )
        on_update(run)
        await asyncio.sleep(poll)
    return run
