"""Password hashing cannot be turned against the API: argon2 sized for the pod, a bounded
hashing pool (503 + Retry-After when full), and token buckets per client address and for the
whole cluster on signup and login. The client address is the peer's, or, behind a trusted
proxy only, the one that proxy saw.

Each test runs an API of its own on a fresh database, with low limits, and calls it from an
address of its own (Redis keeps the buckets, and other tests share it)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from argon2 import PasswordHasher

from eatcloud.api.app import create_app
from eatcloud.bootstrap import build
from eatcloud.postgres.users import create_user, user_by_email
from eatcloud.settings import Settings
from tests.integration.api_harness import PASSWORD
from tests.integration.databases import fresh_database

TODAY = "$argon2id$v=19$m=19456,t=2,p=1$"


def an_address() -> str:
    """A documentation address (RFC 3849) that no other test, nor an earlier run, uses."""
    suffix = uuid.uuid4().hex
    return f"2001:db8::{suffix[:4]}:{suffix[4:8]}:{suffix[8:12]}"


@asynccontextmanager
async def api_with(
    settings: Settings, peer: str, **changes: dict[str, Any]
) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    """The API on a fresh database, with ``changes`` to its settings groups, called from
    ``peer``."""
    async with fresh_database(settings) as db:
        updated = db.model_copy(
            update={
                group: getattr(db, group).model_copy(update=values)
                for group, values in changes.items()
            }
        )
        services = build(updated)
        transport = httpx.ASGITransport(app=create_app(services), client=(peer, 1))
        async with httpx.AsyncClient(transport=transport, base_url="http://eatcloud.test") as c:
            try:
                yield c, updated
            finally:
                await services.close()


def signup_body() -> dict[str, str]:
    return {"email": f"u-{uuid.uuid4().hex[:10]}@example.test", "password": PASSWORD, "name": "U"}


async def test_passwords_are_hashed_for_the_pod_and_old_hashes_are_redone_at_login(
    settings: Settings,
) -> None:
    async with api_with(settings, an_address()) as (client, db):
        body = signup_body()
        assert (await client.post("/api/v1/auth/signup", json=body)).status_code == 201
        services = build(db)
        pool = await services.pool()
        try:
            fresh = await user_by_email(pool, body["email"])
            # A user from before: argon2-cffi's defaults, 64 MiB and 3 passes.
            old_hash = PasswordHasher().hash(PASSWORD)
            email = f"old-{uuid.uuid4().hex[:8]}@example.test"
            await create_user(pool, email, old_hash, "CUSTOMER", "Old")
            login = await client.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            again = await client.post(
                "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
            )
            stored = await user_by_email(pool, email)
        finally:
            await services.close()
    assert fresh is not None and fresh.password_hash is not None
    assert fresh.password_hash.startswith(TODAY), fresh.password_hash
    assert (login.status_code, again.status_code) == (200, 200), login.text
    assert stored is not None and stored.password_hash is not None
    assert stored.password_hash.startswith(TODAY) and stored.password_hash != old_hash


async def test_signups_are_limited_per_client_address(settings: Settings) -> None:
    limits = {"signup_burst": 2, "signup_per_minute": 1.0}
    async with api_with(settings, an_address(), rate_limit=limits) as (client, _):
        answers = [await client.post("/api/v1/auth/signup", json=signup_body()) for _ in range(3)]
    assert [a.status_code for a in answers] == [201, 201, 429], answers[-1].text
    assert int(answers[-1].headers["retry-after"]) > 0


async def test_a_client_cannot_choose_its_address_with_x_forwarded_for(
    settings: Settings,
) -> None:
    """No trusted proxy: the header is the client's own words, and does not count."""
    limits = {"signup_burst": 2, "signup_per_minute": 1.0}
    async with api_with(settings, an_address(), rate_limit=limits) as (client, _):
        answers = [
            await client.post(
                "/api/v1/auth/signup",
                json=signup_body(),
                headers={"x-forwarded-for": an_address()},
            )
            for _ in range(3)
        ]
    assert [a.status_code for a in answers] == [201, 201, 429]


async def test_behind_a_trusted_proxy_each_client_has_its_own_bucket(settings: Settings) -> None:
    proxy = an_address()
    limits = {"signup_burst": 1, "signup_per_minute": 1.0}
    api = {"trusted_proxies": [proxy + "/128"]}
    async with api_with(settings, proxy, rate_limit=limits, api=api) as (client, _):

        async def from_client(address: str) -> int:
            # The client wrote a hop of its own first; the proxy appended what it saw.
            hops = f"10.9.9.9, {address}"
            response = await client.post(
                "/api/v1/auth/signup", json=signup_body(), headers={"x-forwarded-for": hops}
            )
            return response.status_code

        first, second = an_address(), an_address()
        statuses = [await from_client(first), await from_client(second), await from_client(first)]
    assert statuses == [201, 201, 429]


async def test_logins_from_one_address_are_limited_whatever_the_e_mail(
    settings: Settings,
) -> None:
    limits = {"address_login_burst": 3, "address_login_per_minute": 1.0}
    async with api_with(settings, an_address(), rate_limit=limits) as (client, _):
        statuses = [
            (
                await client.post(
                    "/api/v1/auth/login",
                    json={
                        "email": f"x-{n}-{uuid.uuid4().hex[:6]}@example.test",
                        "password": "nope!",
                    },
                )
            ).status_code
            for n in range(4)
        ]
    assert statuses == [401, 401, 401, 429]


async def test_a_full_hashing_pool_answers_503_with_retry_after_not_a_queue(
    settings: Settings,
) -> None:
    auth = {"hashing_slots": 1, "hashing_queue": 0}
    async with api_with(settings, an_address(), auth=auth) as (client, _):
        answers = await asyncio.gather(
            *(client.post("/api/v1/auth/signup", json=signup_body()) for _ in range(6))
        )
    statuses = sorted(a.status_code for a in answers)
    assert 201 in statuses and 503 in statuses, statuses
    assert set(statuses) <= {201, 503}, statuses
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.json()["type"].endswith("/busy")
    assert int(busy.headers["retry-after"]) > 0


@pytest.mark.parametrize("bad", ["not-an-address", "10.0.0.0/33"])
def test_a_bad_trusted_proxy_is_refused_with_the_setting_named(
    bad: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EATCLOUD_API__TRUSTED_PROXIES", f'["{bad}"]')
    with pytest.raises(ValueError, match="trusted_proxies"):
        Settings()
