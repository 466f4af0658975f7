"""The edge guard (``eatcloud.api.middleware.EdgeGuard``) on the real API: bodies over the limit
refused before parsing (413), NUL characters refused wherever they come (422, where they used to
reach PostgreSQL or Redis and answer 500), security headers on every answer; and what the API
shows besides its routes: the Swagger UI (its assets its own, or hidden) and the metrics (on
the API's port, or on one of their own)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from eatcloud.api.app import create_app
from eatcloud.bootstrap import build
from eatcloud.settings import Settings
from tests.integration.api_harness import Api, bearer, running_api
from tests.integration.databases import fresh_database
from tests.integration.workers import free_port

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
async def api(settings: Settings) -> AsyncIterator[Api]:
    async with running_api(settings) as running:
        yield running


def _signup(name: str) -> dict[str, str]:
    return {"email": "nul@example.test", "password": "a long enough password", "name": name}


async def test_a_body_over_the_limit_is_refused_before_it_is_parsed(api: Api) -> None:
    limit = api.settings.api.max_body_bytes
    declared = await api.client.post(
        "/api/v1/auth/signup", json=_signup("x" * limit), headers={"X-Request-ID": "big-1"}
    )
    assert declared.status_code == 413, declared.text
    assert declared.headers["content-type"] == PROBLEM
    assert declared.json()["type"].endswith("/body-too-large")
    assert declared.headers["x-request-id"] == "big-1"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        yield b'{"email": "chunked@example.test", "name": "'
        for _ in range(limit // 1024 + 1):
            yield b"y" * 1024
        yield b'", "password": "a long enough password"}'

    streamed = await api.client.post(
        "/api/v1/auth/signup", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert streamed.status_code == 413, streamed.text
    assert streamed.json()["type"].endswith("/body-too-large")


async def test_a_body_under_the_limit_still_reaches_the_route(api: Api) -> None:
    answer = await api.client.post("/api/v1/auth/signup", json=_signup("Hyun"))
    assert answer.status_code in (201, 409), answer.text


@pytest.mark.parametrize(
    ("method", "path", "params", "body"),
    [
        ("POST", "/api/v1/auth/signup", None, _signup("Kim\u0000Lee")),
        ("POST", "/api/v1/auth/signup", None, {**_signup("Kim"), "email\u0000": "x"}),
        ("GET", "/api/v1/stores/search", {"q": "kimchi\u0000"}, None),
        ("GET", "/api/v1/stores/ab%00cd", None, None),
        ("GET", "/api/v1/orders/ab%00cd", None, None),
    ],
    ids=["json string", "json key", "query", "store path", "order path"],
)
async def test_a_nul_character_anywhere_is_a_client_error(
    api: Api, method: str, path: str, params: dict[str, str] | None, body: object
) -> None:
    who = await api.account()
    answer = await api.client.request(
        method, path, params=params, json=body, headers=bearer(who["access_token"])
    )
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == PROBLEM
    assert answer.json()["type"].endswith("/nul-character")


async def test_an_escaped_backslash_before_u0000_is_text_not_nul(api: Api) -> None:
    # The JSON text "a\\u0000" is the six characters a, \, u, 0, 0, 0, 0: no NUL in it.
    answer = await api.client.post(
        "/api/v1/auth/signup",
        content=b'{"email": "esc@example.test", "password": "a long enough password",'
        b' "name": "a\\\\u0000"}',
        headers={"Content-Type": "application/json"},
    )
    assert answer.status_code in (201, 409), answer.text


@pytest.mark.parametrize(
    ("path", "status"),
    [("/health/live", 200), ("/api/v1/auth/me", 401), ("/api/v1/nowhere", 404)],
)
async def test_every_answer_carries_the_security_headers(api: Api, path: str, status: int) -> None:
    answer = await api.client.get(path)
    assert answer.status_code == status
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["referrer-policy"] == "no-referrer"
    assert answer.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"
    assert answer.headers["strict-transport-security"].startswith("max-age=")


async def test_the_swagger_page_gets_a_policy_that_lets_it_run(api: Api) -> None:
    page = await api.client.get("/docs")
    assert page.status_code == 200
    policy = page.headers["content-security-policy"]
    assert "script-src 'self' 'unsafe-inline'" in policy and "frame-ancestors 'none'" in policy


async def test_docs_can_be_hidden_and_metrics_moved_to_a_port_of_their_own(
    settings: Settings,
) -> None:
    port = free_port()
    async with fresh_database(settings) as db:
        hidden = db.model_copy(
            update={"api": db.api.model_copy(update={"docs_enabled": False, "metrics_port": port})}
        )
        app = create_app(build(hidden))
        transport = httpx.ASGITransport(app=app)
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=transport, base_url="http://eatcloud.test") as client,
        ):
            for path in ("/docs", "/openapi.json", "/docs/assets/swagger-ui.css", "/metrics"):
                assert (await client.get(path)).status_code == 404, path
            assert (await client.get("/health/live")).status_code == 200
            async with httpx.AsyncClient() as scraper:
                scraped = await scraper.get(f"http://{hidden.api.host}:{port}/metrics")
            assert scraped.status_code == 200
            assert "eatcloud_http_requests_total" in scraped.text


async def test_the_swagger_ui_needs_nothing_from_a_cdn(api: Api) -> None:
    page = (await api.client.get("/docs")).text
    assets = re.findall(r'(?:src|href)="([^"]+)"', page)
    assert assets and all(a.startswith("/docs/assets/") for a in assets), assets
    for asset in assets:
        answer = await api.client.get(asset)
        assert answer.status_code == 200 and len(answer.content) > 1000, asset
