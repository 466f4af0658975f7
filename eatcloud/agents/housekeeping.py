"""Housekeeping: a timer that prunes the outbox and processed_events (``postgres.pruning``).

Every worker runs the timer, each ``prune_interval_seconds`` (the first round that long after
it starts); the pruning's advisory lock lets one of them prune at a time, and the others skip
that round. A round that fails is logged, and the next one tries again: pruning is never
worth a worker.
"""

from __future__ import annotations

import logging
from typing import Any

import asyncpg

from eatcloud.agents.wiring import guard_timer
from eatcloud.postgres import pruning
from eatcloud.resources import Services

log = logging.getLogger(__name__)


async def prune_once(services: Services) -> pruning.Pruned | None:
    """One round with the process's settings; logs and counts what it deleted (None:
    another process was pruning)."""
    settings, worker = services.settings, services.settings.worker
    pruned = await pruning.prune(
        settings.postgres,
        outbox_keep_seconds=worker.outbox_keep_seconds,
        processed_events_keep_seconds=worker.processed_events_keep_seconds,
    )
    if pruned is None:
        log.debug("pruning: another process holds the lock; skipping this round")
        return None
    services.metrics.pruned_rows.labels("outbox").inc(pruned.outbox)
    services.metrics.pruned_rows.labels("processed_events").inc(pruned.processed_events)
    if pruned.outbox or pruned.processed_events:
        log.info(
            "pruned %d published outbox row(s) and %d processed_events record(s)",
            pruned.outbox,
            pruned.processed_events,
        )
    return pruned


def register(app: Any, services: Services) -> None:
    every = services.settings.worker.prune_interval_seconds

    async def prune_tables() -> None:
        try:
            await prune_once(services)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # A database that is down or busy: one line, not a traceback every round.
            log.warning("pruning failed (%r); trying again in %.0f s", exc, every)

    app.timer(every)(guard_timer("prune_tables", prune_tables))
