"""The composition root: turns Settings into the running services (Faust app, clients, logging).

Nothing connects at import time. Tests build their own apps and clients through the same
functions with their own settings (unique app ids, topics and data folders).
"""

from __future__ import annotations

from typing import Any

import faust

from eatcloud.settings import Settings


def make_faust_app(settings: Settings, **overrides: Any) -> faust.App:
    """The Faust app with our broker, store and timeout policy; ``overrides`` win."""
    kafka, worker = settings.kafka, settings.worker
    options: dict[str, Any] = {
        "broker": f"kafka://{kafka.bootstrap_servers}",
        "store": worker.store,
        "datadir": str(worker.data_dir),
        "processing_guarantee": kafka.processing_guarantee,
        "topic_partitions": kafka.topic_partitions,
        "topic_replication_factor": kafka.topic_replication_factor,
        # Ready in seconds, not minutes: a short session lets a restarted worker's old member
        # expire quickly instead of holding its partitions for the broker default of 45 s.
        "broker_session_timeout": kafka.session_timeout_seconds,
        "broker_heartbeat_interval": kafka.heartbeat_interval_seconds,
        "broker_rebalance_timeout": kafka.rebalance_timeout_seconds,
        "broker_request_timeout": kafka.request_timeout_seconds,
        "consumer_auto_offset_reset": "earliest",
        "web_bind": worker.web_host,
        "web_host": worker.web_host,
        "web_port": worker.web_port,
        "loghandlers": [],
    }
    options.update(overrides)
    app = faust.App(options.pop("id", worker.app_id), **options)
    _keep_buffered_events_when_flow_resumes(app)
    return app


def _keep_buffered_events_when_flow_resumes(app: faust.App) -> None:
    """Work around a Faust 0.15.3 bug that silently drops events after table recovery.

    When recovery completes, Faust resumes the stream partitions, seeks (tens of ms), then calls
    ``flow_control.resume()``, which always clears the agents' buffers, even when the flow was
    never suspended. Events fetched during that window are dropped without an ack, so they are
    neither processed nor re-read until the next rebalance (measured: 4 of 18 restarts lost the
    tail of a partition). A resume of a flow that is already active has nothing stale to drop,
    so it is skipped; after a real suspension (partitions revoked) it clears as before.
    """
    flow = app.flow_control
    resume = flow.resume

    def resume_if_suspended() -> None:
        if flow.is_active():
            return
        resume()

    flow.resume = resume_if_suspended  # type: ignore[method-assign]  # the bug fix above
