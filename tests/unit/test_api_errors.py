"""Client mistakes get problem+json with the right status, never a stack trace or a 500."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from pydantic import BaseModel

from eatcloud.api.app import create_app
from eatcloud.bootstrap import build
from eatcloud.settings import Settings


class Echo(BaseModel):
    n: int


def app_with_probe_routes() -> FastAPI:
    app = create_app(build(Settings()))

    @app.post("/_echo")
    async def echo(body: Echo) -> Echo:
        return body

    @app.get("/_boom")
    async def boom() -> None:
        raise RuntimeError("internal detail that must not leak")

    return app


async def request(method: str, path: str, **kwargs: object) -> httpx.Response:
    transport = httpx.ASGITransport(app=app_with_probe_routes(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.request(method, path, **kwargs)  # type: ignore[arg-type]


async def test_unknown_route_is_a_404_problem() -> None:
    response = await request("GET", "/no/such/thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_a_body_that_does_not_match_the_schema_is_a_422_problem_listing_the_field() -> None:
    response = await request("POST", "/_echo", json={"n": "not a number"})
    body = response.json()
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert body["errors"][0]["loc"] == ["body", "n"]


async def test_an_unexpected_error_is_a_500_problem_without_internals() -> None:
    response = await request("GET", "/_boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert "internal detail" not in response.text
    assert "Traceback" not in response.text
