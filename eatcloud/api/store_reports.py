"""What a store's manager reads about the store: its stock levels and its sales.

Both come from the read models (``stock_view``, ``store_sales``, ``order_view``), kept by the
projections from the event log, so they trail the saga by the projections' lag (tens of
milliseconds). A store's manager reads their own stores; admins read any store.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from eatcloud.api.deps import Id, ManagerOrAdmin, Pool
from eatcloud.api.security import Principal, Role
from eatcloud.errors import NotFound, Unprocessable
from eatcloud.postgres import catalogue as c
from eatcloud.postgres import read_models as rm

router = APIRouter(prefix="/api/v1", tags=["store reports"])

MAX_DAYS = 366  # the longest range one sales report covers
DEFAULT_DAYS = 30


class StockLevel(BaseModel):
    menu_id: str
    name: str
    available: bool = Field(description="false: the manager marked it sold out")
    unlimited: bool
    on_hand: int | None = Field(description="units on the shelf; None until the stock is known")
    reserved: int | None = Field(description="units held for orders not yet paid")
    sold: int | None
    updated_at: dt.datetime | None


class SalesDay(BaseModel):
    day: dt.date
    orders: int
    revenue: int = Field(description="what customers paid for the completed orders")


class MenuSales(BaseModel):
    menu_id: str
    name: str = Field(description="empty for a menu deleted since")
    units: int
    gross: int = Field(description="units at the prices the orders were taken at")


class Sales(BaseModel):
    store_id: str
    first: dt.date
    last: dt.date
    orders: int
    revenue: int
    days: list[SalesDay] = Field(description="days with completed orders, in order")
    menus: list[MenuSales] = Field(description="best-selling first")


async def _readable_store(db: Pool, store_id: str, who: Principal) -> None:
    """404 unless the caller is an admin or the store's manager."""
    store = await c.get_store(db, store_id)
    if who.role is not Role.ADMIN and store["manager_id"] != who.user_id:
        raise NotFound("no such store")


@router.get(
    "/stores/{store_id}/stock",
    response_model=list[StockLevel],
    summary="Stock levels of the store's menus",
)
async def stock_levels(store_id: Id, db: Pool, who: ManagerOrAdmin) -> list[dict[str, Any]]:
    await _readable_store(db, store_id, who)
    async with db.acquire() as conn:
        return await rm.stock_levels(conn, store_id)


@router.get(
    "/stores/{store_id}/sales",
    response_model=Sales,
    summary="Sales per day and per menu over a date range",
)
async def sales(
    store_id: Id,
    db: Pool,
    who: ManagerOrAdmin,
    first: Annotated[
        dt.date | None, Query(alias="from", description="first UTC day (default: 29 days ago)")
    ] = None,
    last: Annotated[dt.date | None, Query(alias="to", description="last UTC day (today)")] = None,
) -> Sales:
    await _readable_store(db, store_id, who)
    last = last or dt.datetime.now(dt.UTC).date()
    first = first or last - dt.timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise Unprocessable("`from` must not be after `to`")
    if (last - first).days >= MAX_DAYS:
        raise Unprocessable(f"a sales report covers at most {MAX_DAYS} days")
    async with db.acquire() as conn:
        found = await rm.sales(conn, store_id, first, last)
    days = [SalesDay(**row) for row in found["days"]]
    return Sales(
        store_id=store_id,
        first=first,
        last=last,
        orders=sum(d.orders for d in days),
        revenue=sum(d.revenue for d in days),
        days=days,
        menus=[MenuSales(**row) for row in found["menus"]],
    )
