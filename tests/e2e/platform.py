"""The platform the end-to-end tests drive: a real worker and the API on one fresh database.

One real worker (saga agents, outbox relay, projections, Kinesis forwarder) on the real
broker, the API in-process on the same fresh PostgreSQL database and the real Redis. The
worker runs with a short store-acceptance deadline (8 s) so the timeout path finishes quickly.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from eatcloud.settings import Settings
from tests.integration.api_harness import Api, api_on, approved_store, bearer
from tests.integration.databases import fresh_database
from tests.integration.saga_harness import saga_worker, unique_prefix
from tests.integration.workers import WorkerProcess, free_port

ACCEPT_TIMEOUT = 8
T = TypeVar("T")


@dataclass
class Platform:
    api: Api
    worker: WorkerProcess
    manager: dict[str, str]
    admin: dict[str, str]


@asynccontextmanager
async def running_platform(stack: Settings, folder: Path) -> AsyncIterator[Platform]:
    """A fresh database, a worker with everything on, and the API in-process on both."""
    async with fresh_database(stack) as db:
        worker = saga_worker(
            folder,
            stack.kafka.bootstrap_servers,
            unique_prefix("e2e"),
            EATCLOUD_POSTGRES__DATABASE=db.postgres.database,
            EATCLOUD_WORKER__OUTBOX_RELAY="true",
            EATCLOUD_WORKER__PROJECTIONS="true",
            EATCLOUD_WORKER__KINESIS_FORWARDER="true",
            EATCLOUD_WORKER__METRICS_PORT=str(free_port()),
            EATCLOUD_SAGA__ACCEPT_TIMEOUT_SECONDS=str(ACCEPT_TIMEOUT),
            EATCLOUD_SAGA__STEP_TIMEOUT_SECONDS="5",
            EATCLOUD_KINESIS__STREAM_NAME=f"e2e-{uuid.uuid4().hex[:8]}",
            # As the Helm chart runs workers: static group membership by a stable name.
            EATCLOUD_KAFKA__GROUP_INSTANCE_ID="e2e-worker-0",
        )
        worker.start()
        try:
            async with api_on(db) as api:
                manager, admin = await api.account("MANAGER"), await api.account("ADMIN")
                yield Platform(api, worker, manager, admin)
        finally:
            worker.stop()
            print(worker.tail(80))


async def eventually(
    probe: Callable[[], Awaitable[T]], done: Callable[[T], bool], within: float = 30
) -> T:
    """``probe()`` until ``done`` says yes or ``within`` seconds pass; its last value."""
    deadline = time.monotonic() + within
    while True:
        value = await probe()
        if done(value) or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.3)


async def stock_of(p: Platform, store: str) -> dict[str, int]:
    """The store's one menu in the stock view: on hand, reserved, sold."""
    row = await p.api.pool.fetchrow(
        "SELECT on_hand, reserved, sold FROM stock_view WHERE store_id = $1", store
    )
    return dict(row)


async def settled_stock(p: Platform, store: str, expected: dict[str, int]) -> dict[str, int]:
    """The stock view once it shows ``expected`` (or after 15 s, what it shows then).

    ``stock_view`` is projected from ``stock-events``, another topic than the
    ``order-events`` behind an order's status: it may trail the order by a batch.
    """
    return await eventually(lambda: stock_of(p, store), lambda seen: seen == expected, 15)


async def on_hand(p: Platform, store: str, menu: str) -> int | None:
    """A menu's units on hand in the stock view (None until the stock agent has it)."""
    value: int | None = await p.api.pool.fetchval(
        "SELECT on_hand FROM stock_view WHERE store_id = $1 AND menu_id = $2", store, menu
    )
    return value


async def menu_with_stock(p: Platform, price: int, stock: int) -> tuple[str, str]:
    """A new approved store with one menu of ``stock`` units, once the stock agent has it."""
    store = await approved_store(p.api, p.manager, p.admin, name=f"S {uuid.uuid4().hex[:6]}")
    made = await p.api.client.post(
        f"/api/v1/stores/{store['id']}/menus",
        json={"name": "Galbi", "price": price, "initial_stock": stock},
        headers=bearer(p.manager["access_token"]),
    )
    assert made.status_code == 201, made.text
    store_id, menu_id = str(store["id"]), made.json()["id"]

    # The first one waits for the worker to join its group.
    if await eventually(lambda: on_hand(p, store_id, menu_id), lambda n: n == stock, 90) == stock:
        return store_id, menu_id
    raise AssertionError(f"stock never reached the stock view\n{p.worker.tail(60)}")


async def place(
    p: Platform, customer: dict[str, str], store: str, menu: str, qty: int = 1, **headers: str
) -> Any:
    return await p.api.client.post(
        "/api/v1/orders",
        json={
            "store_id": store,
            "lines": [{"menu_id": menu, "quantity": qty}],
            "delivery_address": "1 Main St",
        },
        headers={**bearer(customer["access_token"]), **headers},
    )


async def wait(p: Platform, who: dict[str, str], order_id: str, status: str) -> dict[str, Any]:
    got = await p.api.client.get(
        f"/api/v1/orders/{order_id}",
        params={"wait": status, "timeout": 30},
        headers=bearer(who["access_token"]),
    )
    assert got.status_code == 200, got.text
    body: dict[str, Any] = got.json()
    return body


def worker_settings(p: Platform) -> Settings:
    """The settings the platform's worker runs with (its app id, topic prefix, database)."""
    env = p.worker.env
    base = p.api.settings
    return base.model_copy(
        update={
            "kafka": base.kafka.model_copy(
                update={"topic_prefix": env["EATCLOUD_KAFKA__TOPIC_PREFIX"]}
            ),
            "worker": base.worker.model_copy(update={"app_id": env["EATCLOUD_WORKER__APP_ID"]}),
        }
    )
