"""Live order updates: Server-Sent Events for a customer's order and for a store's orders.

The order projection numbers every timeline row (``order_timeline.seq``, in commit order) and,
when its batch commits, says which orders changed (``NOTIFY eatcloud_order_changes``, payload
``<store_id> <order_id>``). Each API process listens on one pooled connection
(``changes.ChangeFeed``) and wakes the streams and long-polls that watch those orders or
stores; they then read what is new from the read model. Nothing polls the database while
nothing changes.

A stream sends each timeline row once, as an event whose ``id`` is its number; a client that
reconnects with ``Last-Event-ID`` gets every row after it, none missed (the numbers commit in
order) and none twice (except across a ``projections rebuild``, which renumbers the timeline
after every number given out before: a client then gets its events again). Between changes a
stream sends a comment line (``: heartbeat``) every ``api.sse_heartbeat_seconds``, so
proxies keep it open, and it ends after ``api.sse_max_seconds`` (the client reconnects and
resumes). Each caller may hold ``rate_limit.streams_per_caller`` streams per API process.

While the listening connection is down (a PostgreSQL restart), watchers fall back to reading
every second, and all of them are woken when it is back: nothing is missed meanwhile.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from eatcloud.api.changes import ChangeFeed, Feed
from eatcloud.api.deps import Caller, Id, Manager, Pool, Services
from eatcloud.api.order_views import visible_order
from eatcloud.errors import NotFound
from eatcloud.postgres import catalogue as c
from eatcloud.postgres import read_models as rm
from eatcloud.resources import Services as _Services

router = APIRouter(prefix="/api/v1", tags=["live updates"])

PAGE = 100  # timeline rows read at a time


async def stream_slot(request: Request, who: Caller) -> AsyncIterator[None]:
    """One of the caller's streams in this process (429 past ``streams_per_caller``), held
    until the stream ends."""
    async with request.app.state.streams.slot(who.user_id):
        yield


async def order_to_watch(order_id: Id, db: Pool, who: Caller) -> str:
    """The order, if the caller may read it (as ``GET /orders/{id}``: 404 otherwise)."""
    await visible_order(db, order_id, who)
    return order_id


async def store_to_watch(store_id: Id, db: Pool, who: Manager) -> str:
    """The store, if it is the calling manager's (404 otherwise)."""
    store = await c.get_store(db, store_id)
    if store["manager_id"] != who.user_id:
        raise NotFound("no such store")
    return store_id


def _resume_from(last_event_id: str | None) -> int:
    try:
        return max(0, int(last_event_id or 0))
    except ValueError:
        return 0  # not one of ours: from the start


@dataclass(frozen=True)
class Streaming:
    """What a stream reads with, and the number of the last event its client saw."""

    db: Any
    services: _Services
    feed: ChangeFeed
    after: int

    async def events(self, key: str, **which: str) -> AsyncIterator[ServerSentEvent]:
        """The timeline rows of ``which`` (an order or a store) after ``after``, then each new
        one as ``key`` changes, with heartbeats between, until ``sse_max_seconds``."""
        api, after = self.services.settings.api, self.after
        ends = time.monotonic() + api.sse_max_seconds
        yield ServerSentEvent(comment="connected", retry=1000)
        with self.feed.watch(key) as changed:
            while time.monotonic() < ends:
                changed.clear()  # before reading: a change from now on wakes the wait below
                async with self.db.acquire() as conn:
                    rows = await rm.timeline_since(conn, after=after, limit=PAGE, **which)
                for row in rows:
                    after = row.pop("seq")
                    row["occurred_at"] = row["occurred_at"].isoformat()
                    yield ServerSentEvent(id=str(after), event="order", data=row)
                if len(rows) == PAGE:
                    continue
                left = ends - time.monotonic()
                wait = min(api.sse_heartbeat_seconds, left)
                if left > 0 and not await self.feed.wait(changed, wait):
                    yield ServerSentEvent(comment="heartbeat")


async def streaming(
    db: Pool,
    services: Services,
    feed: Feed,
    last_event_id: Annotated[str | None, Header()] = None,
) -> Streaming:
    return Streaming(db, services, feed, _resume_from(last_event_id))


Stream = Annotated[Streaming, Depends(streaming)]


@router.get(
    "/orders/{order_id}/events",
    response_class=EventSourceResponse,
    summary="The order's status changes, live (Server-Sent Events)",
    dependencies=[Depends(stream_slot)],
)
async def order_events(
    order_id: Annotated[str, Depends(order_to_watch)], stream: Stream
) -> AsyncIterator[ServerSentEvent]:
    async for event in stream.events(f"order:{order_id}", order_id=order_id):
        yield event


@router.get(
    "/stores/{store_id}/orders/events",
    response_class=EventSourceResponse,
    summary="New orders of the store and every change, live (Server-Sent Events)",
    dependencies=[Depends(stream_slot)],
)
async def store_order_events(
    store_id: Annotated[str, Depends(store_to_watch)], stream: Stream
) -> AsyncIterator[ServerSentEvent]:
    async for event in stream.events(f"store:{store_id}", store_id=store_id):
        yield event
