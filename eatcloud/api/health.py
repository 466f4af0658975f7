"""Liveness and readiness probes for load balancers, Kubernetes and ``make run``, and the
detailed dependency report for admins.

``GET /health/ready`` is public and says only yes or no: the API is ready when its own
pooled PostgreSQL and Redis answer (it uses neither Kafka nor Kinesis on a request, so their
outage must not take it out of its Service). The answer is kept for
``api.readiness_cache_seconds``, so a flood of probes costs one query per dependency per
period and never opens a connection of its own. Which host failed, and why, goes to the log
and to ``GET /api/v1/admin/health`` (ADMIN), which probes every dependency (Kafka, PostgreSQL,
Redis, Kinesis) with fresh connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from eatcloud.api.deps import Admin, AppSettings, Services
from eatcloud.api.errors import json_response, problem
from eatcloud.outages import DRIVER_ERRORS
from eatcloud.probes import probe_all
from eatcloud.resources import Services as _Services

log = logging.getLogger(__name__)
router = APIRouter(prefix="/health", tags=["health"])
admin_router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


class Readiness:
    """Whether this API process can serve: its pooled PostgreSQL and Redis answer. One check
    runs at a time and its answer is reused for ``ttl`` seconds."""

    def __init__(self, services: _Services, ttl: float, timeout: float) -> None:
        self.services, self.ttl, self.timeout = services, ttl, timeout
        self.checks = 0  # how many checks ran (each: one query per dependency)
        self._ready = False
        self._until = 0.0
        self._lock = asyncio.Lock()

    async def ready(self) -> bool:
        if time.monotonic() < self._until:
            return self._ready
        async with self._lock:
            if time.monotonic() >= self._until:  # nobody checked while we waited
                self._ready = await self._check()
                self._until = time.monotonic() + self.ttl
        return self._ready

    async def _check(self) -> bool:
        self.checks += 1
        try:
            async with asyncio.timeout(self.timeout):
                pool = await self.services.pool()
                await pool.fetchval("SELECT 1")
                await self.services.redis().ping()
        except DRIVER_ERRORS as exc:  # TimeoutError is an OSError
            log.warning("not ready: %s: %s", type(exc).__name__, exc)
            return False
        return True


@router.get("/live", summary="The process is up and serving requests")
async def live() -> dict[str, str]:
    return {"status": "live"}


@router.get(
    "/ready",
    summary="This API can serve: its PostgreSQL and Redis answer",
    responses={503: {"description": "Not ready; the log says why"}},
)
async def ready(request: Request) -> Response:
    readiness: Readiness = request.app.state.readiness
    if await readiness.ready():
        return json_response({"status": "ready"})
    return problem(503, "Not ready.", slug="not-ready")


@admin_router.get(
    "/health",
    summary="Every dependency probed now, with addresses and errors (admins only)",
)
async def dependency_report(_: Admin, settings: AppSettings) -> Response:
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
    failing = [r.name for r in results if not r.ok]
    status = "ready" if not failing else "degraded"
    return json_response({"status": status, "unavailable": failing, "checks": checks})


metrics_router = APIRouter()


@metrics_router.get("/metrics", include_in_schema=False)
async def prometheus_metrics(services: Services) -> Response:
    """Prometheus exposition (HTTP, checkout refusals); not part of the public API."""
    from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

    return Response(generate_latest(services.metrics.registry), media_type=CONTENT_TYPE_LATEST)
