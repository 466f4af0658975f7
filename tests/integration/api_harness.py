"""The HTTP API on a fresh database, driven in-process by httpx, with account helpers."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from eatcloud.api.app import create_app
from eatcloud.api.security import hash_password
from eatcloud.postgres.users import create_user
from eatcloud.settings import Settings
from tests.integration.databases import fresh_database

PASSWORD = "correct horse battery"


@dataclass
class Api:
    client: httpx.AsyncClient
    settings: Settings
    pool: object

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
    async with fresh_database(settings) as db:
        app = create_app(db)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://eatcloud.test") as c:
            try:
                yield Api(c, db, await app.state.resources.pool())
            finally:
                await app.state.resources.close()
