"""The worker's agents, registered on an app by ``register``.

The saga's participants are typed, module-level handlers that the runtime
(``eatcloud.runtime``) runs over batches:

- ``orchestrator``: order commands, participant replies and stock commands -> the sagas
  table and the stores' ledgers and reservations (stock is a local step of the saga)
- ``payment``: payment commands -> the payment gateway and the payments table
- ``points``: points commands -> the customers' points and holds

Around them, plain Faust agents and tasks:

- ``outbox_relay`` (on the leader): the API's outbox rows in PostgreSQL -> their topics
- ``order-projection``, ``stock-projection``: events -> PostgreSQL read models, Redis gate
- ``kinesis_forwarder``: events -> the Kinesis analytics stream, on a consumer group of its
  own (a slow Kinesis must not hold back the projections)
- ``housekeeping`` (one worker of the cluster at a time): prunes published outbox rows and old
  processed-event records (``eatcloud.postgres.pruning``)
"""

from __future__ import annotations

import logging
import os
from typing import Any, NoReturn

from faust.exceptions import NotReady

from eatcloud import tables
from eatcloud.agents import (
    forwarder,
    housekeeping,
    orchestrator,
    payment,
    points,
    projections,
    relay,
    stock,
    telemetry,
)
from eatcloud.agents.wiring import Wiring
from eatcloud.domain.saga import SagaPolicy
from eatcloud.errors import EXIT_HISTORY_AT_RISK
from eatcloud.resources import Services
from eatcloud.runtime.adapter import Runtime
from eatcloud.settings import Settings
from eatcloud.streams import retention
from eatcloud.streams import topics as t

# The environment of a worker that runs the saga and nothing around it: the saga's tests and
# its benchmark, which must not touch the configured database's outbox or the analytics
# stream, nor fight over the metrics port.
SAGA_ONLY_ENV = {
    "EATCLOUD_WORKER__OUTBOX_RELAY": "false",
    "EATCLOUD_WORKER__PROJECTIONS": "false",
    "EATCLOUD_WORKER__KINESIS_FORWARDER": "false",
    "EATCLOUD_WORKER__METRICS_PORT": "0",
}

log = logging.getLogger("eatcloud.worker")
MIB = 1024 * 1024


def policy_from(settings: Settings) -> SagaPolicy:
    saga = settings.saga
    return SagaPolicy(
        step_timeout=saga.step_timeout_seconds,
        step_attempts=saga.step_attempts,
        accept_timeout=saga.accept_timeout_seconds,
        compensation_retry=saga.compensation_retry_seconds,
        points_earn_bp=saga.points_earn_bp,
    )


def register(app: Any, services: Services) -> Wiring:
    """Declare topics and tables on ``app`` and register every agent and timer.

    The agents take their clients from ``services``, which the app closes when it stops
    (after its agents and tasks).
    """
    settings = services.settings
    kafka, worker, saga = settings.kafka, settings.worker, settings.saga
    runtime = Runtime(
        app,
        prefix=kafka.topic_prefix,
        partitions=kafka.topic_partitions,
        batch=worker.batch_records,
        within=worker.batch_within_ms / 1000,
        cached=worker.cached_values,
        rocksdb={
            "write_buffer_size": worker.rocksdb_write_buffer_mib * MIB,
            "max_write_buffer_number": 2,
            "block_cache_size": worker.rocksdb_block_cache_mib * MIB,
        },
    )
    topics = t.declare(app, t.TopicNames(kafka.topic_prefix), kafka.topic_partitions)
    declared = tables.declare(runtime)
    wiring = Wiring(
        app=app,
        services=services,
        topics=topics,
        tables=declared,
        policy=policy_from(settings),
        runtime=runtime,
    )
    every = saga.timer_interval_seconds
    shop = stock.Stock(declared.stock, saga.reservation_ttl_seconds, stock.HeldReservations())
    deadlines = orchestrator.Deadlines(saga.retention_seconds)
    sagas = orchestrator.Orchestrator(
        declared.sagas, wiring.policy, deadlines, shop, services.clock
    )
    runtime.register(orchestrator.handler(sagas), topics)
    runtime.register(payment.handler(payment.Payments(declared.payments, services.gateway)), topics)
    runtime.register(points.handler(points.Points(declared.points)), topics)
    orchestrator.start_timer(app, runtime, sagas, every)
    stock.start_timer(app, runtime, shop, every, services.clock)
    if worker.outbox_relay:
        relay.register(app, services)
    if worker.projections:
        projections.register(wiring)
    if worker.kinesis_forwarder:
        forwarder.register(wiring)
    telemetry.register(app, services, runtime)
    if worker.outbox_relay or worker.projections:  # the database's tables: prune them
        housekeeping.register(app, services)

    first_start = app.on_first_start

    async def on_first_start() -> None:
        """The event log's topics exist, keeping every event, before this worker's consumer
        could make an auto-creating broker create them with its default retention."""
        await retention.create_event_log(settings)
        await first_start()

    app.on_first_start = on_first_start

    @app.task  # type: ignore[untyped-decorator]  # faust is untyped
    async def declare_topics() -> None:
        """Create every missing topic with our partition count (next to the agents, as soon
        as the worker is ready), then refuse to run if the event log would delete events
        (``streams.retention``). A worker told to stop meanwhile ends it quietly: its producer
        may be gone already, and a stop must end with status 0, not as a crash."""
        for topic in topics.values():
            if app.should_stop:
                return
            try:
                await topic.maybe_declare()
            except NotReady:
                if app.should_stop:
                    return
                raise
        try:
            await retention.require_full_history(settings)
        except retention.HistoryAtRisk as exc:
            refuse_to_run(str(exc))
        log.info("the event log keeps every event (%s)", ", ".join(retention.EVENT_LOG))

    @app.task  # type: ignore[untyped-decorator]  # faust is untyped
    async def close_services_on_stop() -> None:
        """The app's exit stack closes after its agents and tasks have stopped."""
        await app.add_async_context(services)

    return wiring


def refuse_to_run(reason: str) -> NoReturn:
    """End the worker at once with ``EXIT_HISTORY_AT_RISK``, saying why on the log."""
    log.critical("the worker refuses to run: %s", reason)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_HISTORY_AT_RISK)
