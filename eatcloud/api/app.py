"""The FastAPI application factory: ``uvicorn --factory eatcloud.api.app:create_app``."""

from __future__ import annotations

from fastapi import FastAPI

from eatcloud.api import health
from eatcloud.api.errors import install_error_handlers
from eatcloud.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    app = FastAPI(
        title="EatCloud",
        version="0.1.0",
        summary="Food-delivery order platform: checkout, catalogue, orders and stores.",
    )
    app.state.settings = settings or get_settings()
    install_error_handlers(app)
    app.include_router(health.router)
    return app
