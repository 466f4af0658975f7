"""The points wallet: a customer's balance and history, and admins' grants and take-backs.

Reads come from the read model that the points projection keeps from ``points-events``
(``points_view``, ``points_history``): every change of a customer's points, told by the points
participant that owns them. What a customer can spend is ``available`` (balance minus the
points held for orders in progress). Customers earn points when an order completes (the saga
sends ``EarnPoints``: ``saga.points_earn_bp`` of what was paid).

A grant or take-back is an ``AdjustPoints`` command through the outbox, answered 202: the
points participant applies it once, by its event id, however often it is delivered. A
take-back that would leave less than the points held is refused there, and the refusal shows
in the customer's history (``REFUSED``, with the reason).
"""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from eatcloud.api.catalogue import Accepted
from eatcloud.api.deps import Admin, AppSettings, Customer, Id, Pool
from eatcloud.api.limits import Page, Size, offset_of
from eatcloud.errors import NotFound, Unprocessable
from eatcloud.observability.context import trace_headers
from eatcloud.postgres import read_models as rm
from eatcloud.postgres.outbox import enqueue
from eatcloud.postgres.users import user_by_id
from eatcloud.streams import records as r

router = APIRouter(prefix="/api/v1", tags=["points"])

MAX_ADJUSTMENT = 100_000_000  # points in one grant or take-back (the largest order total)


class PointsEntry(BaseModel):
    change: r.PointsChange = Field(
        description="RESERVED, DEDUCTED, RELEASED, RETURNED (orders), EARNED (a completed "
        "order), GRANTED, TAKEN, REFUSED (an admin's adjustment)"
    )
    delta: int = Field(description="change of the balance")
    held_delta: int = Field(description="change of the points held for orders")
    balance: int = Field(description="the balance after this change")
    held: int
    order_id: str = Field(description="the order, for order changes; empty otherwise")
    reason: str
    occurred_at: dt.datetime


class Wallet(BaseModel):
    balance: int = Field(description="every point owned, held ones included")
    reserved: int = Field(description="points held for orders in progress")
    available: int = Field(description="what a checkout can use: balance minus reserved")
    updated_at: dt.datetime | None
    history: list[PointsEntry] = Field(description="changes, newest first (paged)")


class AdjustmentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    delta: int = Field(
        ge=-MAX_ADJUSTMENT, le=MAX_ADJUSTMENT, description="points to grant (> 0) or take (< 0)"
    )
    reason: str = Field(min_length=1, max_length=200, description="shown in the history")


@router.get("/me/points", response_model=Wallet, summary="The caller's points and their history")
async def my_points(
    db: Pool,
    who: Customer,
    settings: AppSettings,
    page: Page = 1,
    size: Size = 20,
) -> Wallet:
    offset = offset_of(page, size, settings.api.max_page_depth)
    async with db.acquire() as conn:
        account, history = await rm.points_wallet(conn, who.user_id, size, offset)
    balance, held = (account["balance"], account["held"]) if account else (0, 0)
    return Wallet(
        balance=balance,
        reserved=held,
        available=balance - held,
        updated_at=account["updated_at"] if account else None,
        history=[PointsEntry(**row) for row in history],
    )


@router.post(
    "/admin/users/{user_id}/points",
    status_code=202,
    response_model=Accepted,
    summary="Grant or take back a customer's points, with a reason",
    responses={404: {"description": "no such user"}, 422: {"description": "not a customer"}},
)
async def adjust_points(user_id: Id, body: AdjustmentIn, db: Pool, who: Admin) -> Accepted:
    user = await user_by_id(db, user_id)
    if user is None:
        raise NotFound("no such user")
    if user.role != "CUSTOMER":
        raise Unprocessable("only customers have points")
    if body.delta == 0:
        raise Unprocessable("a grant or take-back of 0 points changes nothing")
    adjust = r.AdjustPoints(customer_id=user.id, delta=body.delta, reason=body.reason)
    async with db.acquire() as conn, conn.transaction():
        await enqueue(conn, adjust, aggregate_type="points", headers=trace_headers())
    return Accepted(command="AdjustPoints", event_id=adjust.event_id)
