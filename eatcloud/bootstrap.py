"""The composition root: turns Settings into the running services (Faust app, clients, logging).

``build(settings)`` makes a process's ``Services`` (``eatcloud.resources``): the PostgreSQL
pool, Redis, the Kafka producer, the Kinesis client, the payment gateway, the metrics and the
clock. The API (``create_app``), the worker (``eatcloud.app``: ``agents.register``) and every
operator command get their clients from one, and nothing else opens one. ``make_faust_app``
makes the worker's Faust app next to it; Faust's own producer and consumers stay Faust's.

Nothing connects at import or build time. Tests build their own apps and clients through the
same functions with their own settings (unique app ids, topics and data folders).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

from eatcloud.observability.logging import logging_config
from eatcloud.observability.metrics import Metrics
from eatcloud.observability.metrics import metrics as process_metrics
from eatcloud.payments.gateway import PaymentGateway, make_gateway
from eatcloud.resources import (
    Clock,
    Consumer,
    Kinesis,
    Pool,
    Producer,
    Redis,
    Services,
    SystemClock,
)
from eatcloud.settings import Settings

if TYPE_CHECKING:
    import faust

__all__ = ["Services", "build", "make_faust_app"]


def build(
    settings: Settings,
    *,
    pool_size: int = 10,
    gateway: PaymentGateway | None = None,
    clock: Clock | None = None,
    metrics: Metrics | None = None,
) -> Services:
    """The process's clients, none opened yet; ``pool_size`` is the PostgreSQL pool's maximum."""
    return Services(
        settings=settings,
        gateway=gateway or make_gateway(settings.payment),
        metrics=metrics or process_metrics(),
        clock=clock or SystemClock(),
        open_pool=partial(_postgres, settings, pool_size),
        open_redis=partial(_redis, settings),
        open_producer=partial(_producer, settings),
        open_consumer=partial(_consumer, settings),
        open_kinesis=partial(_kinesis, settings),
    )


async def _postgres(settings: Settings, size: int) -> Pool:
    from eatcloud.postgres import create_pool

    pool: Pool = await create_pool(settings.postgres, max_size=size)
    return pool


def _redis(settings: Settings) -> Redis:
    """Pooled connections that outlive a Redis restart.

    A restart leaves every pooled connection dead, and each would fail one request before the
    pool replaced it. So a connection idle for a while is PINGed before use, and a command that
    meets a dead connection (connection refused or reset, timeout) is sent once more on a fresh
    one: the first request after Redis is back succeeds. One retry only: while Redis is down,
    each request fails within two timeouts and answers 503. A command whose reply (not its
    request) was lost runs twice, as it would if the client retried the request itself.
    """
    import redis.asyncio as aioredis
    from redis import exceptions
    from redis.asyncio.retry import Retry
    from redis.backoff import ExponentialWithJitterBackoff

    rd = settings.redis
    return aioredis.Redis.from_url(
        rd.url(),
        **rd.tls_options(),
        socket_timeout=rd.socket_timeout_seconds,
        socket_connect_timeout=rd.connect_timeout_seconds,
        health_check_interval=rd.health_check_interval_seconds,
        # The asyncio Retry (redis.retry.Retry is the blocking client's): one more attempt,
        # after a few milliseconds, on a fresh connection.
        retry=Retry(ExponentialWithJitterBackoff(cap=0.1, base=0.01), retries=1),
        retry_on_error=[exceptions.ConnectionError, exceptions.TimeoutError],
    )


def _producer(settings: Settings) -> Producer:
    """Idempotent, every send acknowledged by all in-sync replicas."""
    from aiokafka import AIOKafkaProducer

    from eatcloud.streams.connect import client_options

    producer: Producer = AIOKafkaProducer(
        **client_options(settings.kafka),
        acks="all",
        enable_idempotence=True,
        linger_ms=settings.kafka.producer_linger_ms,
    )
    return producer


def _consumer(settings: Settings, topics: Sequence[str], group: str) -> Consumer:
    """Reads from the oldest record its group has not committed; commits only when asked."""
    from aiokafka import AIOKafkaConsumer

    from eatcloud.streams.connect import client_options

    consumer: Consumer = AIOKafkaConsumer(
        *topics,
        **client_options(settings.kafka),
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    return consumer


def _kinesis(settings: Settings) -> Kinesis:
    from eatcloud.kinesis.streams import kinesis_client

    return kinesis_client(settings)


def make_faust_app(settings: Settings, **overrides: Any) -> faust.App:
    """The Faust app with our broker, store and timeout policy; ``overrides`` win."""
    import faust

    from eatcloud.runtime import faust_patches
    from eatcloud.streams.connect import credentials

    kafka, worker = settings.kafka, settings.worker
    options: dict[str, Any] = {
        "broker": f"kafka://{kafka.bootstrap_servers}",
        "broker_credentials": credentials(kafka),
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
        # The worker's web server is for probes and Prometheus only: Faust's own pages would
        # show any table value (a saga, a payment) and the partition router to anyone who
        # reaches the port, without authentication.
        "web_router_enabled": False,
        "web_tables_enabled": False,
        "web_graph_enabled": False,
        "web_stats_enabled": False,
        # JSON lines with request_id/trace_id/order_id, as the API writes (observability/).
        "logging_config": logging_config(settings),
    }
    options.update(overrides)
    app = faust.App(options.pop("id", worker.app_id), **options)
    faust_patches.apply(app)
    return app
