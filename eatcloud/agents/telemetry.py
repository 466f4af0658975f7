"""The worker's Prometheus endpoint and its sampled gauges (consumer lag, table recovery)."""

from __future__ import annotations

import logging
from typing import Any

from prometheus_client import start_http_server

from eatcloud.agents.wiring import guard_timer
from eatcloud.observability.metrics import metrics
from eatcloud.settings import Settings

log = logging.getLogger(__name__)
SAMPLE_SECONDS = 5.0


def sample(app: Any) -> None:
    """Lag per assigned partition (end offset minus committed) and recovery left to do."""
    bundle = metrics()
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


def register(app: Any, settings: Settings) -> None:
    port = settings.worker.metrics_port

    @app.task  # type: ignore[untyped-decorator]  # faust is untyped
    async def serve_metrics() -> None:
        if not port:
            return
        try:
            start_http_server(port, addr=settings.worker.web_host, registry=metrics().registry)
        except OSError as exc:  # a metrics port clash must not take the worker down
            log.warning("metrics: cannot listen on %s:%d (%s)", settings.worker.web_host, port, exc)
            return
        log.info("metrics on http://%s:%d/metrics", settings.worker.web_host, port)

    async def tick() -> None:
        sample(app)

    app.timer(SAMPLE_SECONDS)(guard_timer("sample_metrics", tick))
