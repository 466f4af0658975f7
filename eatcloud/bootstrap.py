"""The composition root: turns Settings into the running services (Faust app, clients, logging).

Nothing connects at import time. Tests build their own apps and clients through the same
functions with their own settings (unique app ids, topics and data folders).
"""

from __future__ import annotations

from typing import Any

import faust

from eatcloud.observability.logging import logging_config
from eatcloud.runtime import faust_patches
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
        "consumer_metadata_max_age_ms": int(kafka.metadata_max_age_seconds * 1000),
        "consumer_group_instance_id": kafka.group_instance_id,
        "consumer_auto_offset_reset": "earliest",
        "producer_linger": kafka.producer_linger_ms / 1000,
        "web_bind": worker.web_host,
        "web_host": worker.web_host,
        "web_port": worker.web_port,
        # JSON lines with request_id/trace_id/order_id, as the API writes (observability/).
        "logging_config": logging_config(settings),
    }
    options.update(overrides)
    app = faust.App(options.pop("id", worker.app_id), **options)
    faust_patches.apply(app)
    return app
