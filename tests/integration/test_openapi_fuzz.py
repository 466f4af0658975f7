"""schemathesis over the OpenAPI document: no input, from any role, makes the API answer 5xx.

The API runs for real (uvicorn in a subprocess) on a fresh database, the real Redis and
PostgreSQL. Every operation is called with generated inputs (valid and invalid) four times:
anonymously and as a customer, a manager and an admin.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, settings

from eatcloud.api.app import create_app
from eatcloud.api.security import hash_password
from eatcloud.bootstrap import build
from eatcloud.postgres import create_pool
from eatcloud.postgres.users import create_user
from eatcloud.settings import Settings
from tests.integration.databases import fresh_database
from tests.integration.workers import ApiProcess

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "fuzzing is fun 123"
schema = schemathesis.openapi.from_dict(create_app(build(Settings())).openapi())


@dataclass
class Server:
    url: str
    tokens: dict[str, str | None]


def _token(url: str, email: str, role: str | None) -> str:
    with httpx.Client(base_url=url, timeout=30) as client:
        if role is not None:
            made = client.post(
                "/api/v1/auth/signup",
                json={"email": email, "password": PASSWORD, "name": "F", "role": role},
            )
            assert made.status_code == 201, made.text
        login = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, login.text
        token: str = login.json()["access_token"]
        return token


async def _admin(db: Settings, email: str) -> None:
    pool = await create_pool(db.postgres, max_size=1)
    try:
        await create_user(pool, email, await hash_password(PASSWORD), "ADMIN", "Fuzz admin")
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def server(stack: Settings, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    loop = asyncio.new_event_loop()
    database = fresh_database(stack)
    db = loop.run_until_complete(database.__aenter__())
    api = ApiProcess(
        db.postgres.database,
        tmp_path_factory.mktemp("fuzz") / "api.log",
        # Generated logins and checkouts come fast; 429s would hide the code behind them.
        EATCLOUD_RATE_LIMIT__LOGIN_BURST="100000",
        EATCLOUD_RATE_LIMIT__CHECKOUT_BURST="100000",
        # Live update streams end after a moment, so each generated call gets its whole answer.
        EATCLOUD_API__SSE_MAX_SECONDS="0.5",
        EATCLOUD_RATE_LIMIT__STREAMS_PER_CALLER="100000",
    )
    url = api.url
    try:
        api.start()
        suffix = uuid.uuid4().hex[:8]
        admin = f"admin-{suffix}@example.test"
        loop.run_until_complete(_admin(db, admin))
        tokens = {
            "anonymous": None,
            "customer": _token(url, f"c-{suffix}@example.test", "CUSTOMER"),
            "manager": _token(url, f"m-{suffix}@example.test", "MANAGER"),
            "admin": _token(url, admin, None),
        }
        yield Server(url, tokens)
    finally:
        api.stop()
        loop.run_until_complete(database.__aexit__(None, None, None))
        loop.close()
        assert not api.errors(), "\n".join(api.errors()[:20])


@schema.exclude(path="/api/v1/auth/logout").parametrize()
@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.filter_too_much,
    ],
)
def test_no_input_from_any_role_gets_a_5xx(case: schemathesis.Case, server: Server) -> None:
    for role, token in server.tokens.items():
        headers = dict(case.headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = case.call(base_url=server.url, headers=headers, timeout=30)
        assert response.status_code < 500, (
            f"{role}: {case.method} {case.formatted_path} -> {response.status_code}\n"
            f"{response.text[:500]}"
        )
