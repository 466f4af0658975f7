"""Every Faust/mode workaround of EatCloud, each checked against the version it was written for.

``apply(app)`` runs them all when the composition root builds the app. It first checks that the
installed faust-streaming, mode-streaming and aiokafka are the versions these were written and
measured against, and that every private attribute they (and the runtime's direct table access,
``eatcloud.runtime.tables``) rely on is still there: a renamed attribute or an upgrade stops
the worker at start-up with the name of what to re-check, instead of silently running without
the fix. Upgrading means re-running the chaos tests and then updating ``WRITTEN_FOR``.
"""

from __future__ import annotations

import logging
import shutil
from importlib import metadata
from typing import Any

import faust

logger = logging.getLogger("eatcloud.runtime")

WRITTEN_FOR = {"faust-streaming": "0.15.3", "mode-streaming": "0.7.1", "aiokafka": "0.14.0"}


class UnsupportedFramework(RuntimeError):
    """The installed Faust stack is not the one the workarounds were checked against."""


def check_versions() -> None:
    for package, wanted in WRITTEN_FOR.items():
        found = metadata.version(package)
        if found != wanted:
            raise UnsupportedFramework(
                f"{package} {found} is installed, but eatcloud/runtime/faust_patches.py was "
                f"written for {wanted}: re-check every workaround there (and the runtime's "
                "direct table access) against the new version, then update WRITTEN_FOR"
            )


def _require(owner: Any, *names: str) -> None:
    for name in names:
        if not hasattr(owner, name):
            raise UnsupportedFramework(
                f"{getattr(owner, '__qualname__', owner)!r} has no attribute {name!r}: a "
                "workaround in eatcloud/runtime/faust_patches.py depends on it"
            )


def check_internals() -> None:
    from faust.stores.memory import Store as MemoryStore
    from faust.stores.rocksdb import Store as RocksStore
    from faust.tables.base import Collection
    from faust.transport.consumer import Consumer
    from mode.utils.locks import Event  # noqa: F401  # flow control's event, used by faust

    _require(RocksStore, "_db_for_partition", "set_persisted_offset", "_encode_key")
    if "_dbs" not in getattr(RocksStore, "__annotations__", {}):  # set per instance
        raise UnsupportedFramework("faust's RocksDB store has no _dbs: runtime/tables.py reads it")
    _require(MemoryStore, "_encode_key")
    _require(Collection, "changelog_topic", "data")
    _require(Consumer, "highwater", "perform_seek", "_is_changelog_tp", "earliest_offsets")
    _require(faust.App, "on_rebalance_complete", "flow_control", "on_first_start", "on_shutdown")


def apply(app: faust.App) -> None:
    """Check the framework, then install every workaround on ``app``."""
    check_versions()
    check_internals()
    track_every_topic_a_producer_sends_to()
    _keep_buffered_events_when_flow_resumes(app)
    _rewind_streams_before_they_resume(app)
    _rebuild_tables_after_a_crash(app)
    _list_multi_topic_agents_in_the_cli()


def track_every_topic_a_producer_sends_to() -> None:
    """Work around an aiokafka 0.14.0 bug that leaves a producer's records unsent forever.

    A client that tracks no topic yet asks the broker for the metadata of every topic, so
    topics that existed then are known without being tracked. ``_wait_on_metadata`` returns at
    once for such a topic and never tracks it. When the producer then sends to a topic it did
    not know (created later: ``order-events`` on a fresh broker), that topic becomes the only
    tracked one, the next metadata answer covers it alone, and the cluster view forgets the
    others: a record already queued for one of them has no leader, and the metadata refreshes
    the sender asks for never bring it back (measured: the saga's first ``ReserveStock`` and
    changelog writes waited until the test gave up, while the same unit's ``order-events``
    record went out). So every topic a client waits on is tracked, known or not. Process-wide:
    it also covers the relay's producer.
    """
    from aiokafka.client import AIOKafkaClient

    _require(AIOKafkaClient, "_wait_on_metadata", "add_topic")
    original = AIOKafkaClient._wait_on_metadata
    if getattr(original, "_eatcloud", False):
        return

    async def wait_on_metadata(self: Any, topic: str) -> Any:
        if topic not in self._topics:
            self.add_topic(topic)  # its metadata refresh is awaited by the original if needed
        return await original(self, topic)

    wait_on_metadata._eatcloud = True  # type: ignore[attr-defined]
    AIOKafkaClient._wait_on_metadata = wait_on_metadata


def _list_multi_topic_agents_in_the_cli() -> None:
    """Let ``faust -A eatcloud.app agents`` list an agent that reads several topics.

    The orchestrator reads ``order-commands`` and ``saga-replies``; Faust 0.15.3's ``agents``
    command asks each agent's channel for its one topic name and crashes with "Topic with
    multiple topic names cannot be identified". Such an agent is listed with its topics
    joined by commas instead.
    """
    from faust.cli.agents import agents as agents_command

    _require(agents_command, "_maybe_topic")
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
    _require(flow, "resume", "is_active")
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
