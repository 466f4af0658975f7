"""The worker's operational endpoints: Prometheus metrics, sampled gauges (consumer lag, table
recovery, RocksDB's memory) and the health pages Kubernetes probes on the worker's web port.
"""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import start_http_server

from eatcloud.agents.wiring import guard_timer
from eatcloud.observability.metrics import Metrics
from eatcloud.resources import Services
from eatcloud.runtime.adapter import Runtime

log = logging.getLogger(__name__)
SAMPLE_SECONDS = 5.0


def sample(app: Any, bundle: Metrics) -> None:
    """Lag per assigned partition (end offset minus committed) and recovery left to do."""
    consumer = app.consumer
    committed = getattr(consumer, "_committed_offset", {})  # Faust keeps it privately
    for tp in consumer.assignment():
        end = consumer.highwater(tp)
        if end is None:
            continue
        bundle.consumer_lag.labels(tp.topic, str(tp.partition)).set(
            max(0, end - (committed.get(tp) or 0))
        )
    recovery = getattr(app.tables, "recovery", None)
    if recovery is not None and hasattr(recovery, "active_remaining_total"):
        bundle.recovery_remaining.set(recovery.active_remaining_total())


def sample_rocksdb(runtime: Runtime, bundle: Metrics) -> None:
    """RocksDB's memory for every table, by kind: what the worker's RSS holds besides Python
    (the soak tells one from the other with it, bench/soak.py)."""
    totals: dict[str, int] = {}
    for io in runtime.tables.values():
        for kind, value in io.rocksdb_memory().items():
            totals[kind] = totals.get(kind, 0) + value
    for kind, value in totals.items():
        bundle.rocksdb_memory.labels(kind).set(value)


def readiness(app: Any) -> tuple[bool, str]:
    """Ready once this worker's tables are recovered and it is not in the middle of a rebalance.

    A worker that is not ready serves nothing yet: its agents wait for recovery. The Helm
    chart's readiness probe reads this, so a rolling update moves to the next worker only
    when the previous one holds its state again.
    """
    recovery = getattr(app.tables, "recovery", None)
    if recovery is None or not recovery.completed.is_set():
        return False, "recovering tables"
    if recovery.in_recovery:
        return False, "recovering tables"
    if app.rebalancing:
        return False, "rebalancing"
    return True, "ready"


def register(app: Any, services: Services, runtime: Runtime) -> None:
    settings, bundle = services.settings, services.metrics
    port = settings.worker.metrics_port

    @app.page("/health/live")  # type: ignore[untyped-decorator]  # faust is untyped
    async def live(web: Any, request: Any) -> Any:
        return web.json({"status": "alive"})

    @app.page("/health/ready")  # type: ignore[untyped-decorator]  # faust is untyped
    async def ready(web: Any, request: Any) -> Any:
        ok, status = readiness(app)
        return web.json({"status": status}, status=200 if ok else 503)

    @app.task  # type: ignore[untyped-decorator]  # faust is untyped
    async def serve_metrics() -> None:
        if not port:
            return
        try:
            start_http_server(port, addr=settings.worker.web_host, registry=bundle.registry)
        except OSError as exc:  # a metrics port clash must not take the worker down
            log.warning("metrics: cannot listen on %s:%d (%s)", settings.worker.web_host, port, exc)
            return
        log.info("metrics on http://%s:%d/metrics", settings.worker.web_host, port)

    async def tick() -> None:
        sample(app, bundle)
        sample_rocksdb(runtime, bundle)

    app.timer(SAMPLE_SECONDS)(guard_timer("sample_metrics", tick))
