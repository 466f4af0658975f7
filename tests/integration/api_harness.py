"""The HTTP API on a fresh database, driven in-process by httpx, with account helpers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import httpx

from eatcloud.api.app import create_app
from eatcloud.api.security import hash_password
from eatcloud.bootstrap import build
from eatcloud.postgres.users import create_user
from eatcloud.settings import Settings
from tests.integration.databases import fresh_database

PASSWORD = "correct horse battery"


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: Settings
    pool: Any
    redis: Any

    async def account(self, role: str = "CUSTOMER") -> dict[str, str]:
        """A new account of ``role``, logged in: its id, e-mail and tokens."""
        email = f"{role.lower()}-{uuid.uuid4().hex[:8]}@example.test"
        if role == "ADMIN":  # admins are not self-service
            await create_user(self.pool, email, await hash_password(PASSWORD), "ADMIN", "Admin")
        else:
            signup = await self.client.post(
                "/api/v1/auth/signup",
                json={"email": email, "password": PASSWORD, "name": role.title(), "role": role},
            )
            assert signup.status_code == 201, signup.text
        login = await self.client.post(
            "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
        )
        assert login.status_code == 200, login.text
        me = await self.client.get("/api/v1/auth/me", headers=bearer(login.json()["access_token"]))
        return {"id": me.json()["id"], "email": email, **login.json()}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@asynccontextmanager
async def running_api(settings: Settings) -> AsyncIterator[Api]:
    """The API on a fresh database of its own."""
    async with fresh_database(settings) as db, api_on(db) as api:
        yield api


@asynccontextmanager
async def api_on(db: Settings) -> AsyncIterator[Api]:
    """The API (in-process, driven by httpx) on the database of ``db``."""
    services = build(db)
    app = create_app(services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://eatcloud.test") as c:
        try:
            yield Api(c, db, await services.pool(), services.redis())
        finally:
            # What the app's lifespan does under uvicorn (httpx runs no lifespan): the change
            # feed gives its listening connection back, then the pool can close.
            await app.state.changes.close()
            await services.close()


async def add_menu(
    api: Api, store_id: object, manager: dict[str, str], **fields: Any
) -> dict[str, Any]:
    """A new menu of the manager's store (``fields`` over a default name and price)."""
    made = await api.client.post(
        f"/api/v1/stores/{store_id}/menus",
        json={"name": "Tteokbokki", "price": 4_000, **fields},
        headers=bearer(manager["access_token"]),
    )
    assert made.status_code == 201, made.text
    menu: dict[str, Any] = made.json()
    return menu


async def approved_store(
    api: Api,
    manager: dict[str, str],
    admin: dict[str, str],
    *,
    name: str = "Kimchi House",
    lat: float = 37.5665,
    lon: float = 126.9780,
    category: str = "KOREAN",
) -> dict[str, object]:
    """A store of ``manager``, approved by ``admin`` (the category is made when missing)."""
    made = await api.client.post(
        "/api/v1/admin/categories",
        json={"code": category, "name": category.title()},
        headers=bearer(admin["access_token"]),
    )
    assert made.status_code in (201, 409), made.text
    store = await api.client.post(
        "/api/v1/stores",
        json={"name": name, "category_code": category, "lat": lat, "lon": lon},
        headers=bearer(manager["access_token"]),
    )
    assert store.status_code == 201, store.text
    approved = await api.client.post(
        f"/api/v1/admin/stores/{store.json()['id']}/approve",
        headers=bearer(admin["access_token"]),
    )
    assert approved.status_code == 200, approved.text
    body: dict[str, object] = approved.json()
    return body


def metric(text: str, name: str, **labels: str) -> float:
    """The value of one sample in a Prometheus exposition (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        head, _, value = line.rpartition(" ")
        if head == (f"{name}{{{want}}}" if labels else name):
            return float(value)
    return 0.0
