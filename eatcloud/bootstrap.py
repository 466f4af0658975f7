"""The composition root: turns Settings into the running services (Faust app, clients, logging).

Nothing connects at import time. Tests build their own apps and clients through the same
functions with their own settings (unique app ids, topics and data folders).
"""

from __future__ import annotations

import logging
import shutil
from typing import Any

import faust
from faust.streams import current_event
from faust.types.enums import ProcessingGuarantee

from eatcloud.observability.logging import logging_config
from eatcloud.settings import Settings

logger = logging.getLogger("eatcloud.bootstrap")
EXACTLY_ONCE = ProcessingGuarantee.EXACTLY_ONCE


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
    exactly_once = ProcessingGuarantee(options["processing_guarantee"]) is EXACTLY_ONCE
    if exactly_once:
        # Outputs become visible (read_committed) only when their transaction commits with the
        # offsets, so every saga hop waited for the commit timer (Faust's 2.8 s). Kafka Streams
        # commits every 100 ms under exactly-once for the same reason.
        options.setdefault("broker_commit_interval", 0.1)
    app = faust.App(options.pop("id", worker.app_id), **options)
    _keep_buffered_events_when_flow_resumes(app)
    _rewind_streams_before_they_resume(app)
    _rebuild_tables_after_a_crash(app)
    _list_multi_topic_agents_in_the_cli()
    if exactly_once:
        _send_in_the_transaction_of_the_event(app)
    return app


def _list_multi_topic_agents_in_the_cli() -> None:
    """Let ``faust -A eatcloud.app agents`` list an agent that reads several topics.

    The orchestrator reads ``order-commands`` and ``saga-replies``; Faust 0.15.3's ``agents``
    command asks each agent's channel for its one topic name and crashes with "Topic with
    multiple topic names cannot be identified". Such an agent is listed with its topics
    joined by commas instead.
    """
    from faust.cli.agents import agents as agents_command

    original = agents_command._maybe_topic
    if getattr(original, "_eatcloud", False):
        return

    def maybe_topic(self: Any, agent: Any) -> str | None:
        try:
            return original(self, agent)
        except ValueError:  # several topics
            return ", ".join(sorted(agent.channel.topics))

    maybe_topic._eatcloud = True  # type: ignore[attr-defined]
    agents_command._maybe_topic = maybe_topic  # type: ignore[method-assign]


def _send_in_the_transaction_of_the_event(app: faust.App) -> None:
    """Make Faust 0.15.3's ``exactly_once`` put an event's outputs in that event's transaction.

    Faust keeps one transaction per assigned source partition (``<app id>-<group>-<partition>``)
    and commits it with that partition's offsets, but it picks the transaction of a send by
    the partition the message goes *to*: a ``ReserveStock`` caused by a ``PlaceOrder`` on
    order-commands[1] and sent to stock-commands[3] went into the transaction of partition 3,
    which the offset commit of partition 1 does not commit. Workers read ``read_committed``,
    so the saga stalled until some other input happened to arrive on partition 3; after
    ``transaction_timeout_ms`` (60 s) the broker aborted it: ``ProducerFenced``, then
    ``IllegalOperation('Not in the middle of a transaction')`` at the next commit, and the
    consumer crashed. Timer sends to consumed topics were stuck the same way.

    So, as Kafka Streams does per task:
    - a send made while an agent processes an event goes into the transaction of the event's
      source partition, the one its offset is committed with (outputs, table writes and the
      offset commit or abort together);
    - table changelog writes keep Faust's choice: they go to the changelog partition of the
      source partition (same group), which is that same transaction;
    - a send made outside of any event (our timers) has no input to be atomic with: it goes
      out through the plain (non-transactional) producer and is visible at once; its
      consumers dedupe by ``event_id`` (at-least-once, as under the default guarantee).
    Before committing, the producer buffer is flushed (Faust does it only under
    at-least-once), so the buffered changelog writes of the acked events are in the
    transaction that commits their offsets.
    """
    first_start = app.on_first_start

    async def on_first_start() -> None:
        await first_start()
        transactions = app.consumer.transactions
        send, commit = transactions.send, transactions.commit

        async def send_in_event_transaction(
            topic: str,
            key: bytes | None,
            value: bytes | None,
            partition: int | None,
            timestamp: float | None,
            headers: Any,
            *,
            transactional_id: str | None = None,
        ) -> Any:
            if topic in app.tables.changelog_topics:
                return await send(topic, key, value, partition, timestamp, headers)
            event = current_event()
            if event is None:
                return await app.producer.send(topic, key, value, partition, timestamp, headers)
            source = event.message.tp
            group = app.assignor.group_for_topic(source.topic)
            return await app.producer.send(
                topic,
                key,
                value,
                partition,
                timestamp,
                headers,
                transactional_id=f"{app.conf.id}-{group}-{source.partition}",
            )

        async def flush_then_commit(offsets: Any, start_new_transaction: bool = True) -> bool:
            await app.producer.flush()
            return bool(await commit(offsets, start_new_transaction=start_new_transaction))

        transactions.send = send_in_event_transaction  # type: ignore[method-assign]  # see above
        transactions.commit = flush_then_commit  # type: ignore[method-assign]  # see above

    app.on_first_start = on_first_start  # type: ignore[method-assign]  # see docstring


def _rebuild_tables_after_a_crash(app: faust.App) -> None:
    """After an unclean stop, drop the local table state so it is rebuilt from the changelogs.

    RocksDB is a cache of the changelog topics. After ``kill -9`` it can hold writes that never
    reached Kafka, and Faust then replays only the changelog after its last persisted offset
    over them: keys touched since then go back, others stay ahead, and the state is no longer
    that of any prefix of the messages. The changelog itself is such a prefix (per partition),
    so a worker that did not stop cleanly starts from it. A marker file in the app's folder
    tells the two apart: written when the worker starts, removed when it stops cleanly.
    """
    start, shutdown = app.on_first_start, app.on_shutdown

    async def on_first_start() -> None:
        marker = app.conf.appdir / "RUNNING"
        if marker.exists():
            logger.warning(
                "the last run did not stop cleanly: rebuilding tables from their changelogs"
            )
            shutil.rmtree(app.conf.tabledir, ignore_errors=True)
        app.conf.appdir.mkdir(parents=True, exist_ok=True)
        marker.touch()
        # aiokafka and faust.topics log every send at DEBUG, and the worker's logging setup
        # leaves DEBUG enabled: that cost ~5 % of the worker's time in the saga benchmark.
        for chatty in ("aiokafka", "faust.topics"):
            logging.getLogger(chatty).setLevel(logging.INFO)
        await start()

    async def on_shutdown() -> None:
        await shutdown()
        (app.conf.appdir / "RUNNING").unlink(missing_ok=True)

    app.on_first_start = on_first_start  # type: ignore[method-assign]  # see docstring
    app.on_shutdown = on_shutdown  # type: ignore[method-assign]  # see docstring


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


def _rewind_streams_before_they_resume(app: faust.App) -> None:
    """Work around a Faust 0.15.3 bug that silently skips events after a rebalance.

    During a rebalance Faust discards records it has already taken from aiokafka (partition
    paused while the batch was drained, flow stopped, generation changed): the fetch position
    has moved past them. It relies on ``perform_seek()`` to go back to the committed offsets,
    but aiokafka's ``seek_to_committed`` skips partitions whose committed offset is None or 0,
    so on a partition that was never committed the events are never read (measured: two
    workers on fresh topics lost 700-1500 of 3000 orders). Faust also seeks only after it has
    resumed the partitions, so events from the stale position can reach the agents first.

    So when recovery is done, and before the stream partitions are resumed
    (``on_rebalance_complete``), every stream partition is moved to its committed offset, or
    to the start of the log (``consumer_auto_offset_reset`` is earliest) if it has none.
    """

    async def rewind(*_: Any, **__: Any) -> None:
        consumer: Any = app.consumer  # private state of faust's Consumer, read below
        try:
            if not consumer.assignment():  # nothing assigned (yet): nothing to rewind
                return
            await consumer.perform_seek()
            committed = consumer._committed_offset  # None when never committed (or 0)
            streams = [
                tp
                for tp in consumer.assignment()
                if not consumer._is_changelog_tp(tp) and not committed.get(tp)
            ]
            if streams:
                starts = await consumer.earliest_offsets(*streams)
                for tp in streams:
                    await consumer.seek(tp, starts.get(tp) or 0)
        except Exception:  # a new rebalance is under way; it rewinds again when it completes
            logger.warning("rewinding the stream partitions failed", exc_info=True)

    app.on_rebalance_complete.connect(rewind)
