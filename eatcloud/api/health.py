"""Liveness and readiness probes for load balancers, Kubernetes and ``make run``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from eatcloud.api.deps import AppSettings, Services
from eatcloud.api.errors import json_response, problem
from eatcloud.probes import probe_all

router = APIRouter(prefix="/health", tags=["health"])


@router.get("/live", summary="The process is up and serving requests")
async def live() -> dict[str, str]:
    return {"status": "live"}


@router.get(
    "/ready",
    summary="Kafka, PostgreSQL, Redis and Kinesis all answer",
    responses={503: {"description": "A dependency does not answer; the body names it"}},
)
async def ready(settings: AppSettings) -> Response:
    results = await probe_all(settings)
    checks: dict[str, Any] = {
        r.name: {
            "ok": r.ok,
            "address": r.address,
            "detail": r.detail,
            "seconds": round(r.seconds, 4),
        }
        for r in results
    }
    failing = [r for r in results if not r.ok]
    if not failing:
        return json_response({"status": "ready", "checks": checks})
    detail = "; ".join(f"{r.name} does not answer ({r.detail})" for r in failing)
    return problem(
        503,
        detail,
        slug="dependency-unavailable",
        unavailable=[r.name for r in failing],
        checks=checks,
    )


metrics_router = APIRouter()


@metrics_router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(services: Services) -> Response:
    """Prometheus exposition (HTTP, checkout refusals); not part of the public API."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
