"""The cart and checkout (the command side of orders)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Response
from pydantic import BaseModel, ConfigDict, Field, model_validator

from eatcloud.api.deps import AppSettings, Customer, Id, Pool, Services
from eatcloud.checkout import CheckoutRequest, StoreSuspended, checkout
from eatcloud.errors import Unprocessable
from eatcloud.locks import cart, rate_limit
from eatcloud.observability.context import trace_headers
from eatcloud.postgres import addresses
from eatcloud.postgres import catalogue as c

router = APIRouter(prefix="/api/v1", tags=["orders"])

MenuId = Annotated[Id, Field(min_length=1, max_length=64)]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LineIn(_In):
    menu_id: MenuId
    quantity: int = Field(ge=1, le=99)
    options: list[Annotated[str, Field(min_length=1, max_length=32)]] = Field(
        default=[],
        max_length=200,
        description="the ids of the chosen choices of the menu's option groups; the server "
        "prices them",
    )


class OrderCreate(_In):
    store_id: Id | None = Field(default=None, max_length=64)
    lines: list[LineIn] | None = Field(
        default=None, min_length=1, max_length=100, description="omit to order the cart"
    )
    points: int = Field(default=0, ge=0, le=100_000_000)
    fulfilment: Literal["DELIVERY", "PICKUP"] = "DELIVERY"
    delivery_address: str | None = Field(default=None, min_length=1, max_length=300)
    delivery_lat: float | None = Field(
        default=None, ge=-90, le=90, description="with delivery_lon: checked against the radius"
    )
    delivery_lon: float | None = Field(default=None, ge=-180, le=180)
    address_id: Id | None = Field(
        default=None,
        max_length=64,
        description="one of the caller's saved addresses, instead of delivery_address (its "
        "point is checked against the store's delivery radius)",
    )

    @model_validator(mode="after")
    def _address_for_delivery(self) -> OrderCreate:
        if self.delivery_address and self.address_id:
            raise ValueError("give delivery_address or address_id, not both")
        if self.fulfilment == "DELIVERY" and not (self.delivery_address or self.address_id):
            raise ValueError("delivery_address or address_id is required for DELIVERY")
        if (self.delivery_lat is None) != (self.delivery_lon is None):
            raise ValueError("delivery_lat and delivery_lon go together")
        return self


class OrderLineOut(BaseModel):
    menu_id: str
    quantity: int
    unit_price: int
    options: list[str] = Field(default=[], description="the chosen options' names")


class OrderAccepted(BaseModel):
    order_id: str
    status: str
    store_id: str
    lines: list[OrderLineOut]
    total: int
    points: int
    final_amount: int
    fulfilment: str


class CartItemIn(_In):
    store_id: Id = Field(min_length=1, max_length=64)
    quantity: int = Field(ge=0, le=99, description="0 removes the item")


class CartLine(BaseModel):
    menu_id: str
    name: str
    unit_price: int
    quantity: int
    line_total: int


class Cart(BaseModel):
    store_id: str | None
    items: list[CartLine]
    total: int


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=200,
        description="the same key and body return the same order",
    ),
]


@router.post(
    "/orders",
    status_code=202,
    response_model=OrderAccepted,
    summary="Check out: place an order from the cart or from explicit lines",
    description=(
        "Without an `Idempotency-Key`, the same body sent again by the same customer within a "
        "short window (10 s by default) gets the first order's answer with "
        "`Idempotent-Replayed: true` instead of a new order."
    ),
    responses={
        409: {
            "description": "sold out, store closed (`store-closed`, with `opens_at`) or "
            "suspended, or another checkout in progress"
        },
        429: {"description": "too many checkouts; see Retry-After"},
        422: {
            "description": "invalid order (options a menu does not take, a required option "
            "missing, or a cart holding a menu with required options), below the store's "
            "minimum (`below-minimum`), a "
            "delivery point outside its radius (`outside-delivery-area`), an address_id that "
            "is not the caller's, or an "
            "Idempotency-Key reused with another body"
        },
    },
)
async def place_order(
    body: OrderCreate,
    response: Response,
    db: Pool,
    who: Customer,
    services: Services,
    settings: AppSettings,
    idempotency_key: IdempotencyKey = None,
) -> dict[str, Any]:
    limits, redis = settings.rate_limit, services.redis()
    await rate_limit.take(
        redis, f"checkout:{who.user_id}", limits.checkout_burst, limits.checkout_per_minute
    )
    delivery_address = body.delivery_address
    delivery_lat, delivery_lon = body.delivery_lat, body.delivery_lon
    if body.address_id is not None:
        # The order keeps the address's text, as if it had been typed; the checkout's
        # fingerprint (double submit, Idempotency-Key) is of that text. Its point is checked
        # against the store's delivery radius, as typed coordinates are.
        saved = await addresses.delivery_point(db, who.user_id, body.address_id)
        if saved is None:
            raise Unprocessable("address_id is not one of your saved addresses")
        delivery_address = saved.line
        if body.fulfilment == "DELIVERY":
            delivery_lat, delivery_lon = saved.lat, saved.lon
    request = CheckoutRequest(
        store_id=body.store_id,
        lines=None
        if body.lines is None
        else tuple((ln.menu_id, ln.quantity, tuple(ln.options)) for ln in body.lines),
        points=body.points,
        fulfilment=body.fulfilment,
        delivery_address=delivery_address,
        delivery_lat=delivery_lat,
        delivery_lon=delivery_lon,
    )
    done = await checkout(
        db,
        redis,
        who.user_id,
        request,
        idempotency_key,
        trace_headers(),
        double_submit_seconds=settings.api.double_submit_seconds,
    )
    response.headers["Location"] = f"/api/v1/orders/{done.order['order_id']}"
    if done.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return done.order


@router.get("/cart", response_model=Cart, summary="The caller's cart, at today's prices")
async def get_cart(db: Pool, who: Customer, services: Services) -> Cart:
    store_id, items = await cart.get(services.redis(), who.user_id)
    lines = []
    if store_id is not None:
        menus = {m["id"]: m for m in await c.menus_of(db, store_id)}
        for menu_id, quantity in sorted(items.items()):
            menu = menus.get(menu_id)
            if menu is not None:  # a menu deleted since it was added drops out
                price = menu["price"]
                lines.append(
                    CartLine(
                        menu_id=menu_id,
                        name=menu["name"],
                        unit_price=price,
                        quantity=quantity,
                        line_total=price * quantity,
                    )
                )
    return Cart(store_id=store_id, items=lines, total=sum(ln.line_total for ln in lines))


@router.put("/cart/items/{menu_id}", response_model=Cart, summary="Set a menu's quantity")
async def put_cart_item(
    menu_id: Id, body: CartItemIn, db: Pool, who: Customer, services: Services
) -> Cart:
    store = await c.get_store(db, body.store_id)
    if store["status"] == "SUSPENDED" and body.quantity:  # taking items out is still fine
        raise StoreSuspended(store["id"])
    if store["status"] not in ("APPROVED", "SUSPENDED"):
        raise Unprocessable("no such store")
    if body.quantity:
        await c.get_menu(db, body.store_id, menu_id)
    await cart.put(services.redis(), who.user_id, body.store_id, menu_id, body.quantity)
    return await get_cart(db, who, services)


@router.delete("/cart", status_code=204, summary="Empty the cart")
async def clear_cart(who: Customer, services: Services) -> None:
    await cart.clear(services.redis(), who.user_id)
