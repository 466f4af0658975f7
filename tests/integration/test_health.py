"""GET /health/ready is 200 only when every dependency answers, and names the one that doesn't."""

from __future__ import annotations

import httpx
import pytest

from eatcloud.api.app import create_app
from eatcloud.bootstrap import build
from eatcloud.settings import Settings
from tests.integration.workers import free_port


def client_for(settings: Settings) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=create_app(build(settings)))
    return httpx.AsyncClient(transport=transport, base_url="http://eatcloud.test")


async def test_ready_is_200_when_kafka_postgres_redis_and_kinesis_all_answer(
    settings: Settings,
) -> None:
    async with client_for(settings) as client:
        response = await client.get("/health/ready")
    body = response.json()
    assert response.status_code == 200, body
    assert body["status"] == "ready"
    assert set(body["checks"]) == {"kafka", "postgres", "redis", "kinesis"}
    assert all(check["ok"] for check in body["checks"].values())
    assert "PostGIS" in body["checks"]["postgres"]["detail"]


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


@pytest.mark.parametrize("service", ["kafka", "postgres", "redis", "kinesis"])
async def test_ready_is_503_and_names_the_dependency_that_does_not_answer(
    settings: Settings, service: str
) -> None:
    async with client_for(broken(settings, service)) as client:
        response = await client.get("/health/ready")
    body = response.json()
    assert response.status_code == 503, body
    assert response.headers["content-type"] == "application/problem+json"
    assert body["unavailable"] == [service]
    assert service in body["detail"]
    others = {name for name, check in body["checks"].items() if check["ok"]}
    assert others == {"kafka", "postgres", "redis", "kinesis"} - {service}


async def test_live_answers_without_touching_dependencies(settings: Settings) -> None:
    async with client_for(broken(settings, "kafka")) as client:
        response = await client.get("/health/live")
    assert response.status_code == 200
    assert response.json() == {"status": "live"}
