"""Orders as read (CQRS read models) and the actions on them (commands through the outbox)."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field

from eatcloud.api.catalogue import Accepted, owned_store
from eatcloud.api.changes import Feed
from eatcloud.api.deps import (
    Admin,
    AppSettings,
    Caller,
    Customer,
    Id,
    Manager,
    Pool,
    Services,
    Waiting,
)
from eatcloud.api.limits import Page, Size, offset_of
from eatcloud.api.security import Principal, Role
from eatcloud.errors import Conflict, NotFound
from eatcloud.locks import rate_limit
from eatcloud.observability import context
from eatcloud.observability.context import trace_headers
from eatcloud.postgres import read_models as rm
from eatcloud.postgres.outbox import enqueue
from eatcloud.streams import records as r

router = APIRouter(prefix="/api/v1", tags=["orders"])

Status = Literal["PENDING", "PAID", "ACCEPTED", "COMPLETED", "CANCELLED", "REJECTED"]
_RANK = {"PENDING": 0, "PAID": 1, "ACCEPTED": 2, "COMPLETED": 3}
_ENDED = {"COMPLETED", "CANCELLED", "REJECTED"}


class OrderLineView(BaseModel):
    menu_id: str
    quantity: int
    unit_price: int
    options: list[str] = []  # the chosen options' names (none on lines without)


class OrderView(BaseModel):
    order_id: str
    customer_id: str
    store_id: str
    status: Status
    reason: str
    total: int
    points: int
    lines: list[OrderLineView]
    placed_at: dt.datetime
    updated_at: dt.datetime


class TimelineEntry(BaseModel):
    type: str
    status: Status
    reason: str
    occurred_at: dt.datetime


class CancelIn(BaseModel):
    reason: str = Field(default="", max_length=500)


def _reached(status: str, wanted: str) -> bool:
    return status == wanted or status in _ENDED or _RANK.get(status, -1) >= _RANK.get(wanted, 99)


async def command_side(db: Pool, order_id: Id) -> dict[str, Any] | None:
    """An order checkout accepted that no event has reached the read model for yet."""
    try:
        oid = uuid.UUID(order_id)
    except ValueError:
        return None
    row = await db.fetchrow("SELECT * FROM orders WHERE id = $1", oid)
    if row is None:
        return None
    return {
        "order_id": order_id,
        "customer_id": str(row["customer_id"]),
        "store_id": str(row["store_id"]),
        "status": "PENDING",
        "reason": "",
        "total": row["total"],
        "points": row["points"],
        "lines": row["lines"],
        "placed_at": row["created_at"],
        "updated_at": row["created_at"],
    }


async def visible_order(db: Pool, order_id: Id, who: Principal) -> dict[str, Any]:
    """The order if the caller may see it: its customer, its store's manager, or an admin."""
    context.order_id.set(order_id)  # this request's log lines name the order
    order = await rm.order_view(db, order_id) or await command_side(db, order_id)
    if order is None:
        raise NotFound("no such order")
    if who.role is Role.ADMIN or (
        who.role is Role.CUSTOMER and order["customer_id"] == who.user_id
    ):
        return order
    if who.role is Role.MANAGER:
        manager = await db.fetchval(
            "SELECT manager_id::text FROM stores WHERE id::text = $1", order["store_id"]
        )
        if manager == who.user_id:
            return order
    raise NotFound("no such order")  # someone else's order: not even its existence


@router.get("/orders/{order_id}", response_model=OrderView, summary="An order, from the read model")
async def get_order(
    order_id: Id,
    response: Response,
    db: Pool,
    who: Caller,
    settings: AppSettings,
    services: Services,
    waiting: Waiting,
    feed: Feed,
    wait: Annotated[
        Status | None, Query(description="long-poll until this status (or an end)")
    ] = None,
    # The query parameter the API promises (?wait=PAID&timeout=5), not an asyncio timeout.
    timeout: Annotated[float, Query(ge=0, le=30, description="seconds to wait at most")] = 10.0,  # noqa: ASYNC109
) -> dict[str, Any]:
    order = await visible_order(db, order_id, who)
    if wait is None:
        return order
    limits = settings.rate_limit
    await rate_limit.take(
        services.redis(), f"wait:{who.user_id}", limits.wait_burst, limits.wait_per_minute
    )
    deadline = time.monotonic() + timeout
    # Woken by the order projection's notification (``changes``), not by polling.
    async with waiting.slot(who.user_id):
        with feed.watch(f"order:{order_id}") as changed:
            while not _reached(order["status"], wait) and (left := deadline - time.monotonic()) > 0:
                if await feed.wait(changed, left):
                    order = await visible_order(db, order_id, who)
    if not _reached(order["status"], wait):
        response.headers["X-Wait-Timed-Out"] = "true"
    return order


@router.get("/orders/{order_id}/timeline", response_model=list[TimelineEntry])
async def order_timeline(order_id: Id, db: Pool, who: Caller) -> list[dict[str, Any]]:
    await visible_order(db, order_id, who)
    return await rm.timeline(db, order_id)


@router.get("/orders", response_model=list[OrderView], summary="The caller's orders")
async def my_orders(
    db: Pool, who: Customer, settings: AppSettings, page: Page = 1, size: Size = 20
) -> list[dict[str, Any]]:
    offset = offset_of(page, size, settings.api.max_page_depth)
    return await rm.orders_where(db, customer_id=who.user_id, limit=size, offset=offset)


@router.get("/stores/{store_id}/orders", response_model=list[OrderView])
async def store_orders(
    store_id: Id,
    db: Pool,
    who: Manager,
    settings: AppSettings,
    status: Status | None = None,
    page: Page = 1,
    size: Size = 20,
) -> list[dict[str, Any]]:
    await owned_store(db, store_id, who)
    offset = offset_of(page, size, settings.api.max_page_depth)
    return await rm.orders_where(db, store_id=store_id, status=status, limit=size, offset=offset)


@router.get("/admin/orders", response_model=list[OrderView], summary="Search every order")
async def admin_orders(
    db: Pool,
    who: Admin,
    settings: AppSettings,
    status: Status | None = None,
    customer_id: str | None = None,
    store_id: Id | None = None,
    page: Page = 1,
    size: Size = 20,
) -> list[dict[str, Any]]:
    return await rm.orders_where(
        db,
        customer_id=customer_id,
        store_id=store_id,
        status=status,
        limit=size,
        offset=offset_of(page, size, settings.api.max_page_depth),
    )


# How far an order has come (statuses only move forward), and the furthest an action may find
# it at. Where the read model shows an order already past that, the action is refused at once
# (409 naming the status) instead of a 202 the saga would silently ignore; where it shows the
# order short of it, the read model may lag the saga, which stays the judge.
_STAGE = {"PENDING": 1, "PAID": 2, "ACCEPTED": 3, "COMPLETED": 4, "CANCELLED": 4, "REJECTED": 4}
_LATEST = {"accept": 2, "complete": 3, "cancel by the customer": 2, "cancel": 3}


class TooLate(Conflict):
    slug = "order-state"

    def __init__(self, action: str, status: str) -> None:
        super().__init__(f"the order is {status}: too late to {action} it")
        self.extensions = {"order_status": status}


def _still_possible(order: dict[str, Any], action: str) -> None:
    if _STAGE[order["status"]] > _LATEST[action]:
        raise TooLate(action.removesuffix(" by the customer"), order["status"])


async def _send(db: Pool, command: r.Record) -> Accepted:
    async with db.acquire() as conn, conn.transaction():
        await enqueue(conn, command, aggregate_type="order", headers=trace_headers())
    return Accepted(command=command.type, event_id=command.event_id)  # type: ignore[attr-defined]


@router.post(
    "/orders/{order_id}/cancel",
    status_code=202,
    response_model=Accepted,
    summary="Cancel my order (allowed until the store accepts it)",
    responses={409: {"description": "the order is accepted or over already (its status)"}},
)
async def cancel_mine(order_id: Id, body: CancelIn, db: Pool, who: Customer) -> Accepted:
    order = await visible_order(db, order_id, who)
    _still_possible(order, "cancel by the customer")
    return await _send(
        db,
        r.CancelOrder(
            order_id=order_id,
            store_id=order["store_id"],
            by=r.Actor.CUSTOMER,
            reason=body.reason or "cancelled by the customer",
        ),
    )


@router.post(
    "/stores/{store_id}/orders/{order_id}/{action}",
    status_code=202,
    response_model=Accepted,
    summary="The store accepts, completes or cancels an order",
    responses={409: {"description": "the order is past the action already (its status)"}},
)
async def store_action(
    store_id: Id,
    order_id: Id,
    action: Literal["accept", "complete", "cancel"],
    db: Pool,
    who: Manager,
    body: CancelIn | None = None,
) -> Accepted:
    await owned_store(db, store_id, who)
    order = await visible_order(db, order_id, who)
    if order["store_id"] != store_id:
        raise NotFound("no such order in this store")
    _still_possible(order, action)
    command: r.Record
    if action == "accept":
        command = r.AcceptOrder(order_id=order_id, store_id=store_id)
    elif action == "complete":
        command = r.CompleteOrder(order_id=order_id, store_id=store_id)
    else:
        reason = (body.reason if body else "") or "cancelled by the store"
        command = r.CancelOrder(
            order_id=order_id, store_id=store_id, by=r.Actor.STORE, reason=reason
        )
    return await _send(db, command)


@router.post(
    "/admin/orders/{order_id}/cancel",
    status_code=202,
    response_model=Accepted,
    responses={409: {"description": "the order is over already (its status)"}},
)
async def admin_cancel(order_id: Id, body: CancelIn, db: Pool, who: Admin) -> Accepted:
    order = await visible_order(db, order_id, who)
    _still_possible(order, "cancel")
    return await _send(
        db,
        r.CancelOrder(
            order_id=order_id,
            store_id=order["store_id"],
            by=r.Actor.ADMIN,
            reason=body.reason or "cancelled by an admin",
        ),
    )
