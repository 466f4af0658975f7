"""Which orders changed, as the order projection tells it: one LISTEN per API process.

The order projection sends ``NOTIFY eatcloud_order_changes`` (payload ``<store_id>
<order_id>``) when its batch commits. ``ChangeFeed`` listens on one pooled connection and
wakes whoever watches that order or that store: live update streams (``api.live``) and
``?wait=`` long-polls, which then read the read model. While the connection is down (a
PostgreSQL restart), watchers read every ``FALLBACK_SECONDS`` instead, and all are woken when
it is back, so nothing is missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections import defaultdict
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request

from eatcloud.outages import DRIVER_ERRORS
from eatcloud.postgres import read_models as rm
from eatcloud.resources import Services

log = logging.getLogger(__name__)

FALLBACK_SECONDS = 1.0  # how often watchers read while the feed is not listening


class ChangeFeed:
    """One LISTEN per API process, fanned out to the watchers of an order or a store."""

    def __init__(self) -> None:
        self.watchers: dict[str, set[asyncio.Event]] = defaultdict(set)
        self.listening = False
        self.task: asyncio.Task[None] | None = None

    def start(self, services: Services) -> None:
        if self.task is None:
            self.task = asyncio.create_task(self._listen(services), name="order-change-feed")

    async def close(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    @contextlib.contextmanager
    def watch(self, key: str) -> Iterator[asyncio.Event]:
        """An event set whenever ``key`` (``order:<id>`` or ``store:<id>``) may have changed."""
        changed = asyncio.Event()
        self.watchers[key].add(changed)
        try:
            yield changed
        finally:
            self.watchers[key].discard(changed)
            if not self.watchers[key]:
                del self.watchers[key]

    async def wait(self, changed: asyncio.Event, timeout: float) -> bool:  # noqa: ASYNC109
        """Whether ``changed`` was set within ``timeout`` seconds (at most a second while the
        feed is not listening: the caller then reads anyway). Clears it."""
        if not self.listening:
            timeout = min(timeout, FALLBACK_SECONDS)
        try:
            await asyncio.wait_for(changed.wait(), timeout)
        except TimeoutError:
            return not self.listening  # read anyway: a change may have gone unheard
        changed.clear()
        return True

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: object) -> None:
        store_id, _, order_id = str(payload).partition(" ")
        for key in (f"order:{order_id}", f"store:{store_id}"):
            for changed in self.watchers.get(key, ()):
                changed.set()

    def _wake_all(self) -> None:
        for watchers in self.watchers.values():
            for changed in watchers:
                changed.set()

    async def _listen(self, services: Services) -> None:
        """Listen on one pooled connection until it is lost, then again, with backoff."""
        pause = 0.5
        while True:
            conn: Any = None
            lost = asyncio.Event()
            try:
                pool = await services.pool()
                conn = await pool.acquire()
                conn.add_termination_listener(functools.partial(_set, lost))
                await conn.add_listener(rm.ORDER_CHANGES, self._notified)
                self.listening, pause = True, 0.5
                self._wake_all()  # whatever changed while nobody listened
                await lost.wait()
                log.warning("order change feed: connection lost; listening again")
            except DRIVER_ERRORS as exc:
                log.warning("order change feed: cannot listen (%s); retrying", exc)
            finally:
                self.listening = False
                if conn is not None:
                    with contextlib.suppress(*DRIVER_ERRORS):
                        await conn.remove_listener(rm.ORDER_CHANGES, self._notified)
                    with contextlib.suppress(*DRIVER_ERRORS):
                        await (await services.pool()).release(conn)
            await asyncio.sleep(pause)
            pause = min(pause * 2, 10.0)


def _set(event: asyncio.Event, *_: object) -> None:
    event.set()


async def feed_of(request: Request) -> ChangeFeed:
    """The process's feed, listening from the first request that needs it on."""
    feed: ChangeFeed = request.app.state.changes
    feed.start(request.app.state.services)
    return feed


Feed = Annotated[ChangeFeed, Depends(feed_of)]
