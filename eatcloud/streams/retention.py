"""The event log keeps every event: the topic settings that say so, checked and set.

``order-events``, ``stock-events`` and ``points-events`` (``topics.EVENT_LOG``) are the source
of truth (event sourcing): the read models, a ``projections rebuild`` and analysts replay them
from offset 0. A topic created with the broker's default retention (7 days) silently deletes
its oldest events, and a rebuild then turns old orders into nothing. So all are created with
``topics.KEEP_FOREVER`` (``topics.declare``), the worker refuses to start when any has a
setting that loses
history (``problems``), and ``eatcloud topics keep-history`` sets it on topics created before
(``keep_history``), keeping their other settings. ``cleanup.policy=compact`` would lose
history too: it keeps one record per key, and these topics are keyed by order, store and customer.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import TopicAlreadyExistsError

from eatcloud.settings import Settings
from eatcloud.streams import topics as t
from eatcloud.streams.connect import client_options

KEEP_FOREVER = t.KEEP_FOREVER
EVENT_LOG = t.EVENT_LOG
_DYNAMIC_TOPIC_CONFIG = 1  # DescribeConfigs' config_source for a setting made on the topic
_UNKNOWN_TOPIC = 3
_APPLIED_WITHIN = 30.0  # seconds a broker may take to show a change its controller accepted


class HistoryAtRisk(RuntimeError):
    """An event topic is set to delete events (retention or compaction)."""


async def _describe(admin: AIOKafkaAdminClient, names: list[str]) -> dict[str, list[Any]]:
    """Each existing topic's config entries (name, value, read_only, source, ...)."""
    asked = [ConfigResource(ConfigResourceType.TOPIC, name, None) for name in names]
    found: dict[str, list[Any]] = {}
    for response in await admin.describe_configs(asked):
        for error, message, _, name, entries in response.resources:
            if error == _UNKNOWN_TOPIC:
                continue
            if error:
                raise HistoryAtRisk(f"cannot read the settings of {name}: {error} {message}")
            found[name] = list(entries)
    return found


def _unkept(entries: list[Any]) -> dict[str, Any]:
    """The settings among a topic's config entries that differ from ``KEEP_FOREVER``."""
    values = {entry[0]: entry[1] for entry in entries}
    return {
        key: values.get(key) for key, wanted in KEEP_FOREVER.items() if values.get(key) != wanted
    }


def _admin(settings: Settings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(**client_options(settings.kafka))


async def problems(settings: Settings) -> list[str]:
    """What, in the event topics' settings, would delete events (empty: nothing). A topic
    that does not exist yet is no problem: the worker creates it with ``KEEP_FOREVER``."""
    names = [settings.kafka.topic_prefix + topic for topic in EVENT_LOG]
    admin = _admin(settings)
    await admin.start()
    try:
        described = await _describe(admin, names)
    finally:
        await admin.close()
    found = []
    for name, entries in described.items():
        for key, value in _unkept(entries).items():
            found.append(f"{name}: {key}={value} (must be {KEEP_FOREVER[key]})")
    return found


async def keep_history(settings: Settings) -> list[str]:
    """Set ``KEEP_FOREVER`` on the existing event topics, keeping their other topic-level
    settings (Kafka's AlterConfigs replaces them all); the topics changed."""
    names = [settings.kafka.topic_prefix + topic for topic in EVENT_LOG]
    admin = _admin(settings)
    await admin.start()
    try:
        described = await _describe(admin, names)
        changed, resources = [], []
        for name, entries in described.items():
            own = {e[0]: e[1] for e in entries if e[3] == _DYNAMIC_TOPIC_CONFIG}
            if all(own.get(key) == value for key, value in KEEP_FOREVER.items()):
                continue
            resources.append(
                ConfigResource(ConfigResourceType.TOPIC, name, {**own, **KEEP_FOREVER})
            )
            changed.append(name)
        if resources:
            for response in await admin.alter_configs(resources):
                for error, message, _, name in response.resources:
                    if error:
                        raise HistoryAtRisk(f"cannot change the settings of {name}: {message}")
            await _until_applied(admin, changed)
        return changed
    finally:
        await admin.close()


async def _until_applied(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    """Wait until the broker describes ``KEEP_FOREVER`` on every topic in ``names``.

    In KRaft mode the controller accepts the change and the brokers apply it from the metadata
    log a moment later; a describe in between still shows the old retention (seen in a CI run),
    and a worker started at once would refuse the log it was just told is fixed."""
    deadline = time.monotonic() + _APPLIED_WITHIN
    while True:
        described = await _describe(admin, names)
        pending = [name for name in names if _unkept(described.get(name, []))]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise HistoryAtRisk(
                f"the broker accepted the change but still shows the old settings on "
                f"{', '.join(pending)} after {_APPLIED_WITHIN:.0f} s; run the command again"
            )
        await asyncio.sleep(0.2)


async def create_event_log(settings: Settings) -> list[str]:
    """Create the event topics that do not exist yet, to keep every event; the names created.

    A worker does this before its own clients start: a consumer subscribing to a missing topic
    makes a broker that auto-creates topics create it with its default retention, which the
    start-up check would then refuse."""
    kafka = settings.kafka
    names = [kafka.topic_prefix + topic for topic in EVENT_LOG]
    admin = _admin(settings)
    await admin.start()
    try:
        missing = [name for name in names if name not in set(await admin.list_topics())]
        if missing:
            await admin.create_topics(
                [
                    NewTopic(name, kafka.topic_partitions, kafka.topic_replication_factor,
                             topic_configs=dict(KEEP_FOREVER))
                    for name in missing
                ]
            )  # fmt: skip
        return missing
    except TopicAlreadyExistsError:  # another worker made it meanwhile: the check decides
        return []
    finally:
        await admin.close()


async def require_full_history(settings: Settings) -> None:
    """Raise ``HistoryAtRisk`` (with what to do) when an event topic would delete events."""
    found = await problems(settings)
    if found:
        raise HistoryAtRisk(
            "the event log must keep every event, but " + "; ".join(found) + ". Events "
            "deleted by retention or compaction are gone from every rebuild and replay. "
            "Run `eatcloud topics keep-history` to set retention.ms=-1, retention.bytes=-1 "
            "and cleanup.policy=delete on these topics (docs/operations.md, Event log "
            "retention)."
        )
