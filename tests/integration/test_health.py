"""The API's probes: public readiness says only yes or no, from its own pooled PostgreSQL and
Redis, at most one check per period; admins get the detailed report of every dependency."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
from fastapi import FastAPI

from eatcloud.api.app import create_app
from eatcloud.bootstrap import build
from eatcloud.settings import Settings
from tests.integration.api_harness import bearer, running_api
from tests.integration.workers import free_port

SERVICES = ["kafka", "postgres", "redis", "kinesis"]


@asynccontextmanager
async def app_for(settings: Settings) -> AsyncIterator[tuple[httpx.AsyncClient, FastAPI]]:
    """The API in-process on ``settings``; its clients are closed at the end."""
    services = build(settings)
    app = create_app(services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://eatcloud.test") as client:
        try:
            yield client, app
        finally:
            await services.close()


@asynccontextmanager
async def client_for(settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    async with app_for(settings) as (client, _):
        yield client


def broken(settings: Settings, service: str) -> Settings:
    """The same settings with one dependency pointed at a port where nothing listens."""
    port = free_port()
    change = {
        "kafka": {
            "kafka": settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{port}"})
        },
        "postgres": {"postgres": settings.postgres.model_copy(update={"port": port})},
        "redis": {"redis": settings.redis.model_copy(update={"port": port})},
        "kinesis": {
            "kinesis": settings.kinesis.model_copy(
                update={"endpoint_url": f"http://127.0.0.1:{port}"}
            )
        },
    }[service]
    return settings.model_copy(
        update={**change, "api": settings.api.model_copy(update={"probe_timeout_seconds": 1.0})}
    )


async def test_ready_is_a_bare_200_when_the_apis_own_dependencies_answer(
    settings: Settings,
) -> None:
    async with client_for(settings) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200, response.text
    assert response.json() == {"status": "ready"}


@pytest.mark.parametrize("service", ["postgres", "redis"])
async def test_ready_is_a_bare_503_when_postgres_or_redis_does_not_answer(
    settings: Settings, service: str
) -> None:
    async with client_for(broken(settings, service)) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    body = response.json()
    assert body["type"].endswith("/not-ready")
    # Nothing an anonymous caller could map the network with: no host, user, error or check.
    assert set(body) == {"type", "title", "status", "detail"}, body
    assert body["detail"] == "Not ready."
    for internal in ("127.0.0.1", "Connect", "refused", "checks"):
        assert internal not in response.text


@pytest.mark.parametrize("service", ["kafka", "kinesis"])
async def test_a_kafka_or_kinesis_outage_leaves_the_api_ready(
    settings: Settings, service: str
) -> None:
    """The API writes checkouts to the outbox: it needs neither on a request, so their outage
    must not take every API pod out of its Service."""
    async with client_for(broken(settings, service)) as client:
        response = await client.get("/health/ready")
    assert response.status_code == 200, response.text


async def test_a_flood_of_probes_costs_one_check_per_period(settings: Settings) -> None:
    cached = settings.model_copy(
        update={"api": settings.api.model_copy(update={"readiness_cache_seconds": 60.0})}
    )
    async with app_for(cached) as (client, app):
        answers = await asyncio.gather(*(client.get("/health/ready") for _ in range(50)))
    assert [a.status_code for a in answers] == [200] * 50
    assert app.state.readiness.checks == 1


# Not Redis: sessions live there, so without it nobody is an admin (503, as every route).
@pytest.mark.parametrize("service", ["kafka", "postgres", "kinesis"])
async def test_the_admin_report_probes_every_dependency_and_names_the_one_down(
    settings: Settings, service: str
) -> None:
    async with running_api(settings) as healthy:
        admin = await healthy.account("ADMIN")
        # The same database, one dependency broken: the report names it.
        async with client_for(broken(healthy.settings, service)) as client:
            report = await client.get("/api/v1/admin/health", headers=bearer(admin["access_token"]))
        good = await healthy.client.get(
            "/api/v1/admin/health", headers=bearer(admin["access_token"])
        )
    body = report.json()
    assert report.status_code == 200, body
    assert body["status"] == "degraded" and body["unavailable"] == [service]
    assert {name for name, check in body["checks"].items() if not check["ok"]} == {service}
    assert good.json()["status"] == "ready"
    assert set(good.json()["checks"]) == set(SERVICES)
    assert "PostGIS" in good.json()["checks"]["postgres"]["detail"]


async def test_the_admin_report_is_for_admins_only(settings: Settings) -> None:
    async with running_api(settings) as api:
        customer = await api.account()
        anonymous = await api.client.get("/api/v1/admin/health")
        other = await api.client.get(
            "/api/v1/admin/health", headers=bearer(customer["access_token"])
        )
    assert (anonymous.status_code, other.status_code) == (401, 403)


async def test_live_answers_without_touching_dependencies(settings: Settings) -> None:
    async with client_for(broken(settings, "postgres")) as client:
        response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "live"}
