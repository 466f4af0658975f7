"""Categories, stores and menus: admins curate, managers run their own stores, all can browse."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from eatcloud.api.deps import Admin, AppSettings, Caller, Id, Manager, Pool, Services
from eatcloud.api.limits import offset_of
from eatcloud.api.security import Principal, Role
from eatcloud.checkout import MAX_ORDER_TOTAL
from eatcloud.domain import options
from eatcloud.domain.hours import interval_minutes, known_time_zone
from eatcloud.errors import Conflict, NotFound
from eatcloud.locks import rate_limit
from eatcloud.observability.context import trace_headers
from eatcloud.postgres import catalogue as c
from eatcloud.postgres.outbox import enqueue
from eatcloud.streams import records as r

router = APIRouter(prefix="/api/v1", tags=["catalogue"])


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    """Response schemas: they pick their fields out of richer rows."""


class CategoryIn(_Schema):
    code: str = Field(pattern=r"^[A-Z0-9_]{2,32}$", examples=["KOREAN"])
    name: str = Field(min_length=1, max_length=80)


class Category(CategoryIn):
    pass


def _interval(value: tuple[str, str]) -> tuple[str, str]:
    interval_minutes(*value)  # ValueError: an empty interval, or one starting at 24:00
    return value


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
Clock = Annotated[str, Field(pattern=r"^(([01][0-9]|2[0-3]):[0-5][0-9]|24:00)$")]
Interval = Annotated[tuple[Clock, Clock], AfterValidator(_interval)]
# Opening hours (eatcloud/domain/hours.py): local wall-clock intervals per weekday; a day left
# out has none; an interval whose end is not after its start runs past midnight.
Hours = dict[Weekday, Annotated[list[Interval], Field(max_length=6)]]
TimeZone = Annotated[
    str,
    Field(min_length=1, max_length=64, examples=["Asia/Seoul"]),
    AfterValidator(known_time_zone),
]


class StoreIn(_Schema):
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    category_code: str = Field(pattern=r"^[A-Z0-9_]{2,32}$")
    address: str = Field(default="", max_length=300)
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)
    time_zone: TimeZone | None = Field(default=None, description="default: the platform's")


class StoreChange(_Schema):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    description: str | None = Field(default=None, max_length=2000)
    address: str | None = Field(default=None, max_length=300)
    is_open: bool | None = None
    time_zone: TimeZone | None = None
    hours: Hours | None = Field(
        default=None,
        description="replaces the week; null clears it (open whenever is_open)",
        examples=[{"mon": [["09:00", "22:00"]], "fri": [["11:00", "15:00"], ["18:00", "02:00"]]}],
    )
    closed_dates: list[date] | None = Field(default=None, max_length=366)
    min_order_amount: int | None = Field(default=None, ge=0, le=MAX_ORDER_TOTAL)
    delivery_radius_m: int | None = Field(default=None, ge=1, le=50_000)

    @field_validator("closed_dates")
    @classmethod
    def _distinct(cls, value: list[date] | None) -> list[date] | None:
        return None if value is None else sorted(set(value))

    def changes(self) -> dict[str, Any]:
        """The columns to set: the fields given, but null only where it means something."""
        out = self.model_dump(exclude_none=True)
        if "hours" in self.model_fields_set and self.hours is None:
            out["hours"] = None
        return out


class Store(_Out):
    id: str
    manager_id: str
    name: str
    description: str
    category_code: str
    address: str
    lat: float
    lon: float
    status: Literal["PENDING", "APPROVED", "REJECTED", "SUSPENDED"]
    is_open: bool
    open_now: bool = Field(description="is_open, within its hours and not a closed date")
    time_zone: str
    hours: dict[str, list[tuple[str, str]]] | None
    closed_dates: list[date]
    min_order_amount: int
    delivery_radius_m: int
    distance_m: float | None = None


class StorePage(_Out):
    items: list[Store]
    total: int
    page: int
    size: int


OptionId = Annotated[
    str | None,
    Field(min_length=1, max_length=32, description="omit to add; give to keep"),
]
OptionName = Annotated[str, Field(min_length=1, max_length=50)]


class ChoiceIn(_Schema):
    id: OptionId = None
    name: OptionName
    price_delta: int = Field(
        default=0,
        ge=-10_000_000,
        le=options.MAX_DELTA,
        description="minor units added to the price; at least -price (checked with the menu)",
    )


class OptionGroupIn(_Schema):
    """A group as a manager sets it; the server gives the ids (``eatcloud.domain.options``)."""

    id: OptionId = None
    name: OptionName
    required: bool = False
    max_choices: int = Field(default=1, ge=1, le=options.MAX_CHOICES)
    choices: list[ChoiceIn] = Field(min_length=1, max_length=options.MAX_CHOICES)


OptionGroupsIn = Annotated[list[OptionGroupIn], Field(max_length=options.MAX_GROUPS)]


class MenuIn(_Schema):
    name: str = Field(min_length=1, max_length=120)
    description: str = Field(default="", max_length=2000)
    price: int = Field(ge=0, le=10_000_000, description="minor units (cents)")
    unlimited: bool = False
    initial_stock: int = Field(default=0, ge=0, le=1_000_000)
    option_groups: OptionGroupsIn = []


class MenuChange(_Schema):
    name: str | None = Field(default=None, min_length=1, max_length=120)
    description: str | None = Field(default=None, max_length=2000)
    price: int | None = Field(default=None, ge=0, le=10_000_000)
    available: bool | None = None
    option_groups: OptionGroupsIn | None = Field(
        default=None, description="replaces the groups; [] removes them"
    )


class Choice(_Out):
    id: str
    name: str
    price_delta: int


class OptionGroup(_Out):
    id: str
    name: str
    required: bool
    max_choices: int
    choices: list[Choice]


class Menu(_Out):
    id: str
    store_id: str
    name: str
    description: str
    price: int
    unlimited: bool
    available: bool
    option_groups: list[OptionGroup]


class StockChangeIn(_Schema):
    delta: int = Field(ge=-1_000_000, le=1_000_000)
    unlimited: bool | None = None
    reason: str = Field(default="", max_length=200)


class Accepted(_Out):
    command: str
    event_id: str


def visible(store: dict[str, Any], who: Principal) -> dict[str, Any]:
    """Approved stores are public; others (PENDING, REJECTED, SUSPENDED) only to their manager
    and to admins (else 404)."""
    if (
        store["status"] == "APPROVED"
        or who.role is Role.ADMIN
        or store["manager_id"] == who.user_id
    ):
        return store
    raise NotFound("no such store")


async def owned_store(
    db: Pool, store_id: Id, who: Principal, *, approved: bool = False
) -> dict[str, Any]:
    """The caller's store (404 for another manager's); with ``approved``, 409 unless an admin
    has approved it: a PENDING, REJECTED or SUSPENDED store changes no menu and no stock."""
    store = await c.get_store(db, store_id)
    if store["manager_id"] != who.user_id:
        raise NotFound("no such store")  # another manager's store: not even its existence
    if approved and store["status"] != "APPROVED":
        raise Conflict(
            f"the store is {store['status']}: its menus and stock change only once it is APPROVED"
        )
    return store


@router.get("/categories", response_model=list[Category], summary="Store categories")
async def categories(db: Pool, who: Caller) -> list[dict[str, Any]]:
    return await c.list_categories(db)


@router.post("/admin/categories", status_code=201, response_model=Category)
async def create_category(body: CategoryIn, db: Pool, who: Admin) -> dict[str, Any]:
    return await c.create_category(db, body.code, body.name)


@router.delete("/admin/categories/{code}", status_code=204)
async def delete_category(code: str, db: Pool, who: Admin) -> None:
    await c.delete_category(db, code)


@router.post("/stores", status_code=201, response_model=Store, summary="Open a store (PENDING)")
async def create_store(
    body: StoreIn, db: Pool, who: Manager, settings: AppSettings
) -> dict[str, Any]:
    fields = {**body.model_dump(), "time_zone": body.time_zone or settings.api.store_time_zone}
    return await c.create_store(db, who.user_id, fields, settings.api.stores_per_manager)


@router.get("/stores/mine", response_model=list[Store], summary="The caller's stores")
async def my_stores(db: Pool, who: Manager) -> list[dict[str, Any]]:
    return await c.stores_of(db, who.user_id)


@router.get("/stores/nearby", response_model=list[Store], summary="Stores open now near a point")
async def nearby(
    db: Pool,
    who: Caller,
    lat: Annotated[float, Query(ge=-90, le=90)],
    lon: Annotated[float, Query(ge=-180, le=180)],
    radius_km: Annotated[float, Query(gt=0, le=50)] = 3.0,
    category: Annotated[str | None, Query(pattern=r"^[A-Z0-9_]{2,32}$")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> list[dict[str, Any]]:
    return await c.nearby(db, lat, lon, radius_km * 1000, category, limit)


@router.get("/stores/search", response_model=StorePage, summary="Stores by keyword")
async def search(
    db: Pool,
    who: Caller,
    settings: AppSettings,
    services: Services,
    q: Annotated[str, Query(min_length=1, max_length=100)],
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    size: Annotated[int, Query(ge=1, le=100)] = 20,
) -> StorePage:
    offset_of(page, size, settings.api.max_page_depth)
    limits = settings.rate_limit
    await rate_limit.take(
        services.redis(), f"search:{who.user_id}", limits.search_burst, limits.search_per_minute
    )
    items, total = await c.search(db, q, page, size)
    return StorePage(items=[Store(**i) for i in items], total=total, page=page, size=size)


@router.get("/stores/{store_id}", response_model=Store)
async def store(store_id: Id, db: Pool, who: Caller) -> dict[str, Any]:
    return visible(await c.get_store(db, store_id), who)


@router.patch("/stores/{store_id}", response_model=Store, summary="Change the caller's store")
async def change_store(store_id: Id, body: StoreChange, db: Pool, who: Manager) -> dict[str, Any]:
    await owned_store(db, store_id, who)
    return await c.update_store(db, store_id, body.changes())


@router.get("/admin/stores", response_model=list[Store])
async def admin_stores(
    db: Pool,
    who: Admin,
    status: Annotated[
        Literal["PENDING", "APPROVED", "REJECTED", "SUSPENDED"] | None, Query()
    ] = None,
) -> list[dict[str, Any]]:
    return await c.stores_by_status(db, status)


# Suspend and reactivate come before "/{decision}", which would take their paths too.
@router.post(
    "/admin/stores/{store_id}/suspend",
    response_model=Store,
    summary="Suspend an approved store: hidden from customers, no orders, no menu changes",
    responses={404: {"description": "no such store"}, 409: {"description": "not APPROVED"}},
)
async def suspend_store(store_id: Id, db: Pool, who: Admin) -> dict[str, Any]:
    return await c.decide_store(db, store_id, "suspend")


@router.post(
    "/admin/stores/{store_id}/reactivate",
    response_model=Store,
    summary="Reactivate a suspended store: APPROVED again",
    responses={404: {"description": "no such store"}, 409: {"description": "not SUSPENDED"}},
)
async def reactivate_store(store_id: Id, db: Pool, who: Admin) -> dict[str, Any]:
    return await c.decide_store(db, store_id, "reactivate")


@router.post("/admin/stores/{store_id}/{decision}", response_model=Store)
async def decide_store(
    store_id: Id, decision: Literal["approve", "reject"], db: Pool, who: Admin
) -> dict[str, Any]:
    return await c.decide_store(db, store_id, decision)


@router.get("/stores/{store_id}/menus", response_model=list[Menu])
async def menus(store_id: Id, db: Pool, who: Caller) -> list[dict[str, Any]]:
    visible(await c.get_store(db, store_id), who)
    return await c.menus_of(db, store_id)


@router.get(
    "/stores/{store_id}/menus/{menu_id}", response_model=Menu, summary="One menu of a store"
)
async def menu(store_id: Id, menu_id: Id, db: Pool, who: Caller) -> dict[str, Any]:
    visible(await c.get_store(db, store_id), who)
    return await c.get_menu(db, store_id, menu_id)


@router.post("/stores/{store_id}/menus", status_code=201, response_model=Menu)
async def create_menu(
    store_id: Id, body: MenuIn, db: Pool, who: Manager, settings: AppSettings
) -> dict[str, Any]:
    """Add a menu; its initial stock (or unlimited flag) goes to the stock agent."""
    await owned_store(db, store_id, who, approved=True)
    fields = body.model_dump()
    fields["option_groups"] = options.settle(fields["option_groups"], [], body.price)
    async with db.acquire() as conn, conn.transaction():
        menu = await c.create_menu(conn, store_id, fields, settings.api.menus_per_store)
        if body.initial_stock or body.unlimited:
            adjust = r.AdjustStock(
                store_id=store_id,
                menu_id=menu["id"],
                delta=body.initial_stock,
                unlimited=body.unlimited or None,
                reason="initial stock",
            )
            await enqueue(conn, adjust, aggregate_type="stock", headers=trace_headers())
    return menu


@router.patch("/stores/{store_id}/menus/{menu_id}", response_model=Menu)
async def change_menu(
    store_id: Id, menu_id: Id, body: MenuChange, db: Pool, who: Manager
) -> dict[str, Any]:
    """Change a menu; its option groups are checked against its price after the change (a
    lower price must not leave a choice that takes it below 0)."""
    await owned_store(db, store_id, who, approved=True)
    changes = body.model_dump(exclude_none=True)
    if body.option_groups is not None or body.price is not None:
        current = await c.get_menu(db, store_id, menu_id)
        groups = changes.get("option_groups", current["option_groups"])
        price = current["price"] if body.price is None else body.price
        changes["option_groups"] = options.settle(groups, current["option_groups"], price)
    return await c.update_menu(db, store_id, menu_id, changes)


@router.delete("/stores/{store_id}/menus/{menu_id}", status_code=204)
async def delete_menu(store_id: Id, menu_id: Id, db: Pool, who: Manager) -> None:
    await owned_store(db, store_id, who, approved=True)
    await c.delete_menu(db, store_id, menu_id)


@router.post(
    "/stores/{store_id}/menus/{menu_id}/stock",
    status_code=202,
    response_model=Accepted,
    summary="Adjust a menu's stock (a delivery, a count correction)",
)
async def adjust_stock(
    store_id: Id, menu_id: Id, body: StockChangeIn, db: Pool, who: Manager
) -> Accepted:
    await owned_store(db, store_id, who, approved=True)
    adjust = await c.adjust_stock(
        db,
        store_id,
        menu_id,
        delta=body.delta,
        unlimited=body.unlimited,
        reason=body.reason or "adjustment",
        headers=trace_headers(),
    )
    return Accepted(command="AdjustStock", event_id=adjust.event_id)
