"""A store's own terms for an order: open now, a minimum amount, a delivery radius.

Checkout applies them after the store's status (``eatcloud.checkout``) and before the stock
gate, so a refused order holds nothing. Each refusal is its own problem type, with the numbers
a client needs to explain it to the customer.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from eatcloud.domain.hours import Schedule, next_opening, open_now
from eatcloud.errors import Conflict, Unprocessable


class StoreClosed(Conflict):
    """The store is not open now: its manager closed it, it is outside its hours, or today
    is one of its closed dates. ``opens_at`` says when it opens next, when its hours know."""

    slug = "store-closed"

    def __init__(self, store_id: str, opens_at: datetime | None) -> None:
        when = f"; it opens at {opens_at.isoformat()}" if opens_at else ""
        super().__init__(f"store {store_id} is closed now{when}")
        self.extensions = {
            "store_id": store_id,
            "opens_at": opens_at.isoformat() if opens_at else None,
        }


class BelowMinimum(Unprocessable):
    slug = "below-minimum"

    def __init__(self, total: int, minimum: int) -> None:
        super().__init__(f"the order's total ({total}) is below the store's minimum ({minimum})")
        self.extensions = {"total": total, "min_order_amount": minimum}


class OutsideDeliveryArea(Unprocessable):
    slug = "outside-delivery-area"

    def __init__(self, distance_m: float, radius_m: int) -> None:
        super().__init__(
            f"the delivery point is {distance_m:.0f} m from the store; it delivers within "
            f"{radius_m} m"
        )
        self.extensions = {"distance_m": round(distance_m, 1), "delivery_radius_m": radius_m}


def schedule_of(store: Mapping[str, Any]) -> Schedule:
    """The opening schedule of a store row (``postgres.catalogue`` columns)."""
    return Schedule(
        is_open=store["is_open"],
        time_zone=store["time_zone"],
        hours=store["hours"],
        closed_dates=frozenset(store["closed_dates"] or ()),
    )


def check_open(store: Mapping[str, Any], now: datetime | None = None) -> None:
    """StoreClosed unless the store is open at ``now`` (default: the clock)."""
    now = now or datetime.now(UTC)
    schedule = schedule_of(store)
    if not open_now(schedule, now):
        raise StoreClosed(str(store["id"]), next_opening(schedule, now))


def check_minimum(store: Mapping[str, Any], total: int) -> None:
    """BelowMinimum when the order's total (before points) is under the store's minimum."""
    if total < store["min_order_amount"]:
        raise BelowMinimum(total, store["min_order_amount"])


async def check_delivery(db: Any, store: Mapping[str, Any], lat: float, lon: float) -> None:
    """OutsideDeliveryArea when (lat, lon) is beyond the store's delivery radius.

    Measured by PostGIS on the geography, as the nearby search measures, so a store found
    "within 3 km" and a radius of 3 km agree. The caller gives the coordinates: the checkout
    body's ``delivery_lat``/``delivery_lon`` today, a saved address's tomorrow.
    """
    row = await db.fetchrow(
        """SELECT ST_Distance(s.location, p.point) AS distance_m,
                  ST_DWithin(s.location, p.point, s.delivery_radius_m) AS inside,
                  s.delivery_radius_m
           FROM stores s, (SELECT ST_SetSRID(ST_MakePoint($3, $2), 4326)::geography AS point) p
           WHERE s.id = $1""",
        uuid.UUID(str(store["id"])),
        lat,
        lon,
    )
    if row is not None and not row["inside"]:
        raise OutsideDeliveryArea(row["distance_m"], row["delivery_radius_m"])
