"""The FastAPI application factory: ``uvicorn --factory eatcloud.api.app:create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from eatcloud.api import auth, catalogue, health, order_views, orders, reviews
from eatcloud.api.errors import install_error_handlers
from eatcloud.api.middleware import RequestContext
from eatcloud.api.security import PasswordHashing
from eatcloud.bootstrap import Services, build
from eatcloud.settings import get_settings


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await app.state.services.close()


def create_app(services: Services | None = None) -> FastAPI:
    """The API on ``services`` (by default ``build`` of the environment's settings), which it
    closes when it shuts down."""
    app = FastAPI(
        lifespan=_lifespan,
        title="EatCloud",
        version="0.1.0",
        summary="Food-delivery order platform: checkout, catalogue, orders and stores.",
    )
    services = services or build(get_settings())
    services.settings.signing_key()  # no API on a missing or weak key: ConfigurationError
    app.state.services = services
    app.state.hashing = PasswordHashing(services.settings.auth)
    app.state.readiness = health.Readiness(
        services, services.settings.api.readiness_cache_seconds,
        services.settings.api.probe_timeout_seconds,
    )  # fmt: skip
    install_error_handlers(app)
    app.add_middleware(RequestContext, metrics=services.metrics)
    app.include_router(health.router)
    app.include_router(health.metrics_router)
    app.include_router(health.admin_router)
    app.include_router(auth.router)
    app.include_router(catalogue.router)
    app.include_router(orders.router)
    app.include_router(order_views.router)
    app.include_router(reviews.router)
    return app
