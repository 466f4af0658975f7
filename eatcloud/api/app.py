"""The FastAPI application factory: ``uvicorn --factory eatcloud.api.app:create_app``."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from fastapi_offline import FastAPIOffline
from prometheus_client import start_http_server

from eatcloud.api import (
    accounts,
    addresses,
    auth,
    catalogue,
    health,
    live,
    order_views,
    orders,
    points,
    profile,
    reviews,
    store_reports,
)
from eatcloud.api.changes import ChangeFeed
from eatcloud.api.errors import install_error_handlers
from eatcloud.api.limits import WaitingSlots
from eatcloud.api.middleware import EdgeGuard, RequestContext
from eatcloud.api.security import PasswordHashing
from eatcloud.bootstrap import Services, build
from eatcloud.settings import get_settings

DOCS = "/docs"


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings = app.state.services.settings.api
    metrics = None
    if settings.metrics_port:  # a port of their own, not the API's
        metrics, _ = start_http_server(
            settings.metrics_port, addr=settings.host, registry=app.state.services.metrics.registry
        )
    try:
        yield
    finally:
        await app.state.changes.close()
        if metrics is not None:
            await asyncio.to_thread(metrics.shutdown)  # waits out its serving loop's poll
            metrics.server_close()
        await app.state.services.close()


def create_app(services: Services | None = None) -> FastAPI:
    """The API on ``services`` (by default ``build`` of the environment's settings), which it
    closes when it shuts down."""
    services = services or build(get_settings())
    services.settings.signing_key()  # no API on a missing or weak key: ConfigurationError
    api = services.settings.api
    about: dict[str, Any] = {
        "lifespan": _lifespan,
        "title": "EatCloud",
        "version": "0.1.0",
        "summary": "Food-delivery order platform: checkout, catalogue, orders and stores.",
    }
    if api.docs_enabled:  # the Swagger UI with its script and styles from this API, no CDN
        app = FastAPIOffline(docs_url=DOCS, redoc_url=None, static_url=f"{DOCS}/assets", **about)
    else:
        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None, **about)
    app.state.services = services
    app.state.hashing = PasswordHashing(services.settings.auth)
    limits = services.settings.rate_limit
    app.state.waiting = WaitingSlots(limits.waiting_per_caller)
    app.state.streams = WaitingSlots(limits.streams_per_caller, "live update streams", "streams")
    app.state.changes = ChangeFeed()
    app.state.readiness = health.Readiness(
        services, services.settings.api.readiness_cache_seconds,
        services.settings.api.probe_timeout_seconds,
    )  # fmt: skip
    install_error_handlers(app)
    # The guard inside the request context: its refusals carry a request id and are counted.
    app.add_middleware(EdgeGuard, max_body_bytes=api.max_body_bytes, docs_paths=(DOCS,))
    app.add_middleware(RequestContext, metrics=services.metrics)
    app.include_router(health.router)
    if not api.metrics_port:
        app.include_router(health.metrics_router)
    app.include_router(health.admin_router)
    app.include_router(auth.router)
    app.include_router(catalogue.router)
    app.include_router(orders.router)
    app.include_router(order_views.router)
    app.include_router(reviews.router)
    app.include_router(points.router)
    app.include_router(store_reports.router)
    app.include_router(live.router)
    app.include_router(accounts.router)
    app.include_router(profile.router)
    app.include_router(addresses.router)
    return app
