"""The FastAPI application factory: ``uvicorn --factory eatcloud.api.app:create_app``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from eatcloud.api import auth, catalogue, health, order_views, orders, reviews
from eatcloud.api.errors import install_error_handlers
from eatcloud.api.middleware import RequestContext
from eatcloud.resources import Resources
from eatcloud.settings import Settings, get_settings


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    await app.state.resources.close()


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        lifespan=_lifespan,
        title="EatCloud",
        version="0.1.0",
        summary="Food-delivery order platform: checkout, catalogue, orders and stores.",
    )
    app.state.settings = settings or get_settings()
    app.state.resources = Resources(app.state.settings)
    install_error_handlers(app)
    app.add_middleware(RequestContext)
    app.include_router(health.router)
    app.include_router(health.metrics_router)
    app.include_router(auth.router)
    app.include_router(catalogue.router)
    app.include_router(orders.router)
    app.include_router(order_views.router)
    app.include_router(reviews.router)
    return app
