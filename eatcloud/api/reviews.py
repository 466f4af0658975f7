"""Reviews: one per completed order, by its customer; a store's average and histogram."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from eatcloud.api.catalogue import visible as visible_store
from eatcloud.api.deps import Caller, Customer, Pool
from eatcloud.api.limits import Page, Size
from eatcloud.api.order_views import command_side
from eatcloud.errors import Conflict, NotFound
from eatcloud.postgres import catalogue as c
from eatcloud.postgres import read_models as rm

router = APIRouter(prefix="/api/v1", tags=["reviews"])


class ReviewIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5)
    content: str = Field(default="", max_length=1000)


class Review(BaseModel):
    order_id: str
    store_id: str
    customer_id: str
    rating: int
    content: str
    created_at: dt.datetime


class Ratings(BaseModel):
    store_id: str
    count: int
    average: float | None
    histogram: dict[str, int] = Field(description="reviews per star, '1' to '5'")


def _review(row: Any) -> dict[str, Any]:
    return {
        **dict(row),
        "order_id": str(row["order_id"]),
        "store_id": str(row["store_id"]),
        "customer_id": str(row["customer_id"]),
    }


@router.post(
    "/orders/{order_id}/review",
    status_code=201,
    response_model=Review,
    summary="Review my completed order (once)",
)
async def review_order(order_id: str, body: ReviewIn, db: Pool, who: Customer) -> dict[str, Any]:
    order = await rm.order_view(db, order_id) or await command_side(db, order_id)
    if order is None or order["customer_id"] != who.user_id:
        raise NotFound("no such order")
    if order["status"] != "COMPLETED":
        raise Conflict(f"only completed orders can be reviewed (this one is {order['status']})")
    try:
        row = await db.fetchrow(
            """INSERT INTO reviews (order_id, store_id, customer_id, rating, content)
               VALUES ($1, $2, $3, $4, $5) RETURNING *""",
            uuid.UUID(order_id),
            uuid.UUID(order["store_id"]),
            uuid.UUID(who.user_id),
            body.rating,
            body.content,
        )
    except asyncpg.UniqueViolationError as exc:
        raise Conflict("this order has a review already") from exc
    return _review(row)


@router.get("/stores/{store_id}/reviews", response_model=list[Review])
async def store_reviews(
    store_id: str,
    db: Pool,
    who: Caller,
    page: Page = 1,
    size: Size = 20,
) -> list[dict[str, Any]]:
    visible_store(await c.get_store(db, store_id), who)
    rows = await db.fetch(
        """SELECT * FROM reviews WHERE store_id = $1 ORDER BY created_at DESC, order_id
           LIMIT $2 OFFSET $3""",
        uuid.UUID(store_id),
        size,
        (page - 1) * size,
    )
    return [_review(row) for row in rows]


@router.get("/stores/{store_id}/ratings", response_model=Ratings, summary="Average and histogram")
async def store_ratings(store_id: str, db: Pool, who: Caller) -> Ratings:
    visible_store(await c.get_store(db, store_id), who)
    rows = await db.fetch(
        "SELECT rating, count(*) AS n FROM reviews WHERE store_id = $1 GROUP BY rating",
        uuid.UUID(store_id),
    )
    histogram = {str(star): 0 for star in range(1, 6)}
    for row in rows:
        histogram[str(row["rating"])] = row["n"]
    count = sum(histogram.values())
    total = sum(int(star) * n for star, n in histogram.items())
    average = round(total / count, 2) if count else None
    return Ratings(store_id=store_id, count=count, average=average, histogram=histogram)
