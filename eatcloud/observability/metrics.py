"""The Prometheus metrics, declared once as a bundle with an injectable registry.

Names carry their units (``_seconds``, ``_total``). The API serves them at ``/metrics``; each
worker serves them on its own port (``EATCLOUD_WORKER__METRICS_PORT``).
"""

from __future__ import annotations

from functools import cache

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        # The HTTP edge.
        self.http_requests = Counter(
            "eatcloud_http_requests_total",
            "HTTP requests by route, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.http_seconds = Histogram(
            "eatcloud_http_request_duration_seconds",
            "HTTP request latency by route",
            ["route", "method"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.checkout_lock_busy = Counter(
            "eatcloud_checkout_lock_busy_total",
            "checkouts refused because the customer's previous one held the lock",
            registry=registry,
        )
        # Checkout never waits for the lock (busy is a 409), so what matters is how long it is
        # held: it must stay well below the lock's expiry (checkout.LOCK_TTL_MS, 10 s).
        self.checkout_lock_held_seconds = Histogram(
            "eatcloud_checkout_lock_held_seconds",
            "how long a checkout held its customer's lock",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=registry,
        )
        self.gate_rejections = Counter(
            "eatcloud_stock_gate_rejections_total",
            "checkouts the stock gate refused (409)",
            registry=registry,
        )
        self.rate_limited = Counter(
            "eatcloud_rate_limited_total",
            "requests refused by a rate limit",
            ["bucket"],
            registry=registry,
        )
        # The saga.
        self.saga_step_seconds = Histogram(
            "eatcloud_saga_step_seconds",
            "time from a saga step's command to its reply",
            ["step", "outcome"],
            buckets=_LATENCY,
            registry=registry,
        )
        self.saga_outcomes = Counter(
            "eatcloud_saga_outcomes_total",
            "orders reaching a status",
            ["status"],
            registry=registry,
        )
        self.compensations = Counter(
            "eatcloud_saga_compensations_total",
            "orders compensated, by reason",
            ["reason"],
            registry=registry,
        )
        self.dead_letters = Counter(
            "eatcloud_dead_letters_total",
            "messages sent to a dead-letter topic",
            ["topic", "reason"],
            registry=registry,
        )
        # The outbox relay.
        self.outbox_backlog = Gauge(
            "eatcloud_outbox_backlog", "outbox rows not yet published", registry=registry
        )
        self.outbox_lag_seconds = Gauge(
            "eatcloud_outbox_lag_seconds",
            "age of the oldest unpublished outbox row",
            registry=registry,
        )
        self.outbox_published = Counter(
            "eatcloud_outbox_published_total", "outbox rows published", registry=registry
        )
        # Housekeeping (eatcloud.postgres.pruning).
        self.pruned_rows = Counter(
            "eatcloud_pruned_rows_total",
            "rows the pruning job deleted, by table",
            ["table"],
            registry=registry,
        )
        # Kinesis.
        self.kinesis_records = Counter(
            "eatcloud_kinesis_records_total",
            "records put on the analytics stream",
            registry=registry,
        )
        self.kinesis_failures = Counter(
            "eatcloud_kinesis_put_failures_total",
            "PutRecords entries that failed, by code",
            ["code"],
            registry=registry,
        )
        # Kafka consumption and table recovery (sampled by a worker timer).
        self.consumer_lag = Gauge(
            "eatcloud_consumer_lag",
            "messages behind the end, per assigned partition",
            ["topic", "partition"],
            registry=registry,
        )
        self.recovery_remaining = Gauge(
            "eatcloud_table_recovery_remaining",
            "changelog messages left to recover",
            registry=registry,
        )
        self.rocksdb_memory = Gauge(
            "eatcloud_rocksdb_memory_bytes",
            "memory RocksDB holds for this worker's tables (memtables, block cache, table "
            "readers), bounded by the worker's rocksdb_* settings",
            ["kind"],
            registry=registry,
        )


@cache
def metrics() -> Metrics:
    """The process's bundle, on prometheus_client's default registry."""
    return Metrics(REGISTRY)
