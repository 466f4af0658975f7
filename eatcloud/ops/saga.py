"""``eatcloud saga show ORDER_ID``: a saga's state as its worker holds it, and its timeline.

The state is the last value of the order's key in the ``sagas`` table's changelog (the table
a worker restores from): the orchestrator writes it only while processing a message of its
inputs, which are keyed by the order's store, so it lives in the changelog partition the
default partitioner gives the store id (found in the ``order_view`` read model; all
partitions are read when the read model does not know the order). The timeline is the
``order_timeline`` read model (PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import orjson

from eatcloud.domain.saga import SagaState
from eatcloud.postgres import read_models as rm
from eatcloud.resources import Services
from eatcloud.settings import Settings
from eatcloud.streams.reading import read_to_end
from eatcloud.streams.topics import partition_for


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    type: str
    status: str
    reason: str


@dataclass(frozen=True)
class SagaReport:
    order_id: str
    state: SagaState | None  # None: no worker has seen this order (or it was deleted)
    timeline: list[TimelineEntry]


def changelog_topic(settings: Settings, table: str) -> str:
    """Faust names a table's changelog ``<app id>-<table>-changelog``."""
    return f"{settings.worker.app_id}-{table}-changelog"


async def saga_state(
    settings: Settings, order_id: str, store_id: str | None = None
) -> SagaState | None:
    topic = changelog_topic(settings, "sagas")
    key = orjson.dumps(order_id)  # Faust writes table keys JSON-encoded: b'"<id>"'
    count = settings.kafka.topic_partitions
    partitions = [partition_for(store_id.encode(), count)] if store_id else list(range(count))
    last: bytes | None = None
    async for batch in read_to_end(settings, topic, partitions):
        for message in batch:
            if message.key == key:
                last = message.value  # None is a deletion
    return None if last is None else SagaState.model_validate_json(last)


async def timeline(services: Services, order_id: str) -> tuple[list[TimelineEntry], str | None]:
    """The order's timeline and its store (None when the read model does not know it)."""
    pool = await services.pool()
    rows = await rm.timeline(pool, order_id)  # what GET /orders/{id}/timeline serves
    view = await rm.order_view(pool, order_id)
    entries = [TimelineEntry(r["occurred_at"], r["type"], r["status"], r["reason"]) for r in rows]
    return entries, None if view is None else str(view["store_id"])


async def report(services: Services, order_id: str) -> SagaReport:
    entries, store_id = await timeline(services, order_id)
    return SagaReport(order_id, await saga_state(services.settings, order_id, store_id), entries)
