"""Checkout: turn a customer's request into an order row and its PlaceOrder, or a clear refusal.

The order of the checks is the point:
1. the ``Idempotency-Key`` first: a replay gets the stored answer and does nothing else;
   without a key, the same body from the same customer within the double-submit window
   (``eatcloud.locks.double_submit``) gets the first order's stored answer the same way, so
   a double-click places one order;
2. one checkout per customer at a time (a Redis lock with a token and an expiry): two
   different checkouts at once get 409 instead of a second order;
3. server-side prices: the store's live menus and the options chosen on each line
   (``eatcloud.domain.options``), never the client's numbers (an approved store:
   a suspended one is refused with 409 ``store-suspended``), and the store's own terms
   (``eatcloud.store_rules``): open now (409 ``store-closed``), its minimum amount (422
   ``below-minimum``) and, for a DELIVERY that gives its coordinates, its delivery radius
   (422 ``outside-delivery-area``);
4. the hot-path stock gate (Redis Lua): sold-out lines get 409 before anything is written
   (stock is per menu: the gate gets each menu once, its lines' quantities summed);
5. the order row and its outbox row in one transaction; the gate's holds are given back if
   that transaction fails.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from eatcloud.domain import options
from eatcloud.errors import Conflict, NotFound, Unprocessable
from eatcloud.locks import cart, double_submit, gate
from eatcloud.locks.lock import held
from eatcloud.observability import context
from eatcloud.observability.metrics import metrics
from eatcloud.postgres import outbox
from eatcloud.store_rules import check_delivery, check_minimum, check_open
from eatcloud.streams import records as r

LOCK_TTL_MS = 10_000
BUSY = "another checkout of yours is in progress; retry in a moment"
# The largest order the platform takes, in minor units (a business limit well inside bigint;
# a bigger cart is refused with 422 before anything is held or written).
MAX_ORDER_TOTAL = 100_000_000


_SINCE_COORDINATES = ("delivery_lat", "delivery_lon")


# A requested line: (menu_id, quantity, chosen option choice ids).
Line = tuple[str, int, tuple[str, ...]]


@dataclass(frozen=True)
class CheckoutRequest:
    store_id: str | None
    lines: tuple[Line, ...] | None  # None: from the cart
    points: int
    fulfilment: str
    delivery_address: str | None
    # The delivery point, checked against the store's radius; None: the text address only
    # (no radius check), as before coordinates existed.
    delivery_lat: float | None = None
    delivery_lon: float | None = None

    def fingerprint(self) -> str:
        # Coordinates count only when given, so a request without them keeps the fingerprint
        # it had before they existed (an Idempotency-Key replayed across the upgrade).
        fields = {
            k: v for k, v in self.__dict__.items() if v is not None or k not in _SINCE_COORDINATES
        }
        if self.lines is not None:  # likewise a line without options: (menu_id, quantity)
            fields["lines"] = [(m, q, *([sorted(o)] if o else [])) for m, q, o in self.lines]
        body = orjson.dumps(fields, option=orjson.OPT_SORT_KEYS)
        return hashlib.sha256(body).hexdigest()


@dataclass(frozen=True)
class Checkout:
    order: dict[str, Any]
    replayed: bool


class SoldOut(Conflict):
    slug = "sold-out"

    def __init__(self, menu_id: str, available: int) -> None:
        super().__init__(f"menu {menu_id} is sold out (available: {max(available, 0)})")
        self.extensions = {"menu_id": menu_id, "available": max(available, 0)}


class StoreSuspended(Conflict):
    """An admin has suspended the store: it takes no orders until it is reactivated. (A store
    that is PENDING or REJECTED is unknown to customers: 404.)"""

    slug = "store-suspended"

    def __init__(self, store_id: str) -> None:
        super().__init__(f"store {store_id} is suspended and takes no orders")
        self.extensions = {"store_id": store_id}


@asynccontextmanager
async def _customer_lock(redis: Any, customer_id: str) -> AsyncIterator[None]:
    """One checkout per customer at a time; how long it held the lock goes to the metrics."""
    async with held(redis, f"lock:checkout:{customer_id}", LOCK_TTL_MS, BUSY):
        started = time.perf_counter()
        try:
            yield
        finally:
            metrics().checkout_lock_held_seconds.observe(time.perf_counter() - started)


async def checkout(
    pool: Any,
    redis: Any,
    customer_id: str,
    request: CheckoutRequest,
    idempotency_key: str | None,
    headers: dict[str, str],
    *,
    double_submit_seconds: float,
) -> Checkout:
    """Place the order, or replay the one this request already placed: the one of its
    ``Idempotency-Key``, or without a key, the one of an identical request (same customer, same
    fingerprint) within ``double_submit_seconds`` (0: none)."""
    fingerprint = request.fingerprint()
    if idempotency_key:
        if done := await _replay(pool, customer_id, idempotency_key, fingerprint):
            return done
    elif double_submit_seconds > 0:
        return await _once_per_window(
            pool, redis, customer_id, request, fingerprint, headers, double_submit_seconds
        )
    return await _place(pool, redis, customer_id, request, idempotency_key, fingerprint, headers)


async def _once_per_window(
    pool: Any,
    redis: Any,
    customer_id: str,
    request: CheckoutRequest,
    fingerprint: str,
    headers: dict[str, str],
    window_seconds: float,
) -> Checkout:
    """The first of identical checkouts within the window places the order; the others get
    its stored answer, replayed."""
    while not isinstance(
        mine := await double_submit.claim(redis, customer_id, fingerprint, LOCK_TTL_MS, BUSY),
        double_submit.Claim,
    ):
        # An identical checkout placed an order within the window: this request gets its
        # answer, unless it is no repeat of it (then that order is forgotten, and it claims).
        if done := await _earlier(pool, redis, customer_id, request, mine.order_id):
            return done
        await double_submit.forget(redis, mine)
    try:
        done = await _place(pool, redis, customer_id, request, None, fingerprint, headers)
    except BaseException:
        await double_submit.release(redis, mine)
        raise
    await double_submit.record(redis, mine, done.order["order_id"], window_seconds)
    return done


async def _earlier(
    pool: Any, redis: Any, customer_id: str, request: CheckoutRequest, order_id: str
) -> Checkout | None:
    """The stored answer of an identical checkout's order, if this request repeats it.

    A checkout of the cart empties it, so its double-click finds the cart empty; a cart filled
    again since is a new order, though the request's body is the same.
    """
    if request.lines is None and (await cart.get(redis, customer_id))[1]:
        return None
    response = await pool.fetchval(
        "SELECT response FROM orders WHERE id = $1 AND customer_id = $2",
        uuid.UUID(order_id),
        uuid.UUID(customer_id),
    )
    return None if response is None else Checkout(response, replayed=True)


async def _place(
    pool: Any,
    redis: Any,
    customer_id: str,
    request: CheckoutRequest,
    idempotency_key: str | None,
    fingerprint: str,
    headers: dict[str, str],
) -> Checkout:
    async with _customer_lock(redis, customer_id):
        if idempotency_key and (
            done := await _replay(pool, customer_id, idempotency_key, fingerprint)
        ):
            return done
        store_id, lines, from_cart = await _lines(redis, customer_id, request)
        place = await _priced(pool, customer_id, store_id, lines, request)
        context.order_id.set(place.order_id)  # the request's log lines name the new order
        per_menu = [(s.menu_id, s.quantity) for s in place.stock_lines]
        refusal = await gate.admit(redis, place.order_id, store_id, per_menu)
        if refusal is not None:
            raise SoldOut(refusal.menu_id, refusal.available)
        try:
            order = await _record(pool, place, request, idempotency_key, fingerprint, headers)
        except BaseException:
            await gate.give_back(redis, place.order_id)
            raise
        if from_cart:
            await cart.clear(redis, customer_id)
        return Checkout(order, replayed=False)


async def _replay(pool: Any, customer_id: str, key: str, fingerprint: str) -> Checkout | None:
    row = await pool.fetchrow(
        "SELECT request_hash, response FROM orders WHERE customer_id = $1 AND idempotency_key = $2",
        uuid.UUID(customer_id),
        key,
    )
    if row is None:
        return None
    if row["request_hash"] != fingerprint:
        raise Unprocessable("this Idempotency-Key was used with a different request body")
    return Checkout(row["response"], replayed=True)


async def _lines(
    redis: Any, customer_id: str, request: CheckoutRequest
) -> tuple[str, list[Line], bool]:
    """The requested lines (merged once priced, ``_priced``), the store and whether they came
    from the cart (which holds no options: menu_id -> quantity)."""
    if request.lines is not None:
        if request.store_id is None:
            raise Unprocessable("store_id is required with explicit lines")
        return request.store_id, list(request.lines), False
    store_id, items = await cart.get(redis, customer_id)
    if store_id is None or not items:
        raise Unprocessable("the cart is empty")
    if request.store_id is not None and request.store_id != store_id:
        raise Unprocessable("store_id does not match the cart's store")
    return store_id, [(m, q, ()) for m, q in sorted(items.items())], True


async def _priced(
    pool: Any,
    customer_id: str,
    store_id: str,
    lines: list[Line],
    request: CheckoutRequest,
) -> r.PlaceOrder:
    try:
        sid = uuid.UUID(store_id)
        menu_ids = [uuid.UUID(m) for m, _, _ in lines]
    except ValueError as exc:
        raise Unprocessable("store_id and menu ids must be UUIDs") from exc
    # The store and the ordered menus in one round trip (a store row with no menu rows when
    # none of them matches).
    rows = await pool.fetch(
        """SELECT s.id, s.status, s.is_open, s.time_zone, s.hours, s.closed_dates,
                  s.min_order_amount, m.id AS menu_id, m.price, m.available, m.option_groups
           FROM stores s LEFT JOIN menus m
             ON m.store_id = s.id AND m.id = ANY($2::uuid[]) AND m.deleted_at IS NULL
           WHERE s.id = $1""",
        sid,
        menu_ids,
    )
    if rows and rows[0]["status"] == "SUSPENDED":
        raise StoreSuspended(store_id)
    if not rows or rows[0]["status"] != "APPROVED":
        raise NotFound("no such store")
    check_open(rows[0])
    menus = {str(row["menu_id"]): row for row in rows if row["menu_id"] is not None}
    order_lines = _order_lines(menus, lines, from_cart=request.lines is None)
    total = sum(line.unit_price * line.quantity for line in order_lines)
    if total > MAX_ORDER_TOTAL:
        raise Unprocessable(f"the order's total ({total}) is over the limit of {MAX_ORDER_TOTAL}")
    check_minimum(rows[0], total)
    if request.fulfilment == "DELIVERY" and request.delivery_lat is not None:
        assert request.delivery_lon is not None  # the API takes both or neither
        await check_delivery(pool, rows[0], request.delivery_lat, request.delivery_lon)
    if request.points > total:
        raise Unprocessable(f"points ({request.points}) may not exceed the total ({total})")
    return r.PlaceOrder(
        order_id=str(uuid.uuid4()),
        customer_id=customer_id,
        store_id=store_id,
        lines=order_lines,
        points=request.points,
        order_type=r.OrderType(request.fulfilment),
    )


def _order_lines(
    menus: dict[str, Any], lines: list[Line], *, from_cart: bool
) -> tuple[r.OrderLine, ...]:
    """The priced order lines: each line's unit price is its menu's price plus its chosen
    options' deltas; lines of one menu with the same options (by the names and price they
    come to) merge, with different ones (one large, one small) they stay apart."""
    merged: dict[tuple[str, tuple[str, ...], int], int] = {}
    for menu_id, quantity, chosen in lines:
        if menu_id not in menus:
            raise Unprocessable(f"menu {menu_id} is not on this store's menu")
        menu = menus[menu_id]
        if not menu["available"]:
            raise Conflict(f"menu {menu_id} is not available right now")
        if from_cart and options.requires_choice(menu["option_groups"]):
            raise Unprocessable(f"choose options for {menu_id}: order it with lines")
        delta, names = options.choose(menu["option_groups"], chosen, menu_id)
        key = (menu_id, names, menu["price"] + delta)
        merged[key] = merged.get(key, 0) + quantity
    return tuple(
        r.OrderLine(menu_id=m, quantity=q, unit_price=price, options=names)
        for (m, names, price), q in sorted(merged.items())
    )


async def _record(
    pool: Any,
    place: r.PlaceOrder,
    request: CheckoutRequest,
    idempotency_key: str | None,
    fingerprint: str,
    headers: dict[str, str],
) -> dict[str, Any]:
    order = {
        "order_id": place.order_id,
        "status": "PENDING",
        "store_id": place.store_id,
        "lines": [line.model_dump() for line in place.lines],
        "total": place.total_amount,
        "points": place.points,
        "final_amount": place.final_amount,
        "fulfilment": request.fulfilment,
    }
    # One statement, so one round trip and atomic by itself: the order row, its outbox row,
    # and the NOTIFY that wakes the relay when it commits.
    try:
        await pool.execute(
            f"""WITH new_order AS (
                  INSERT INTO orders (id, customer_id, store_id, lines, total, points,
                      final_amount, fulfilment, delivery_address, idempotency_key, request_hash,
                      response)
                  VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12) RETURNING id),
                new_row AS (
                  INSERT INTO outbox {outbox.COLUMNS}
                  SELECT $13, $14, $15, $16, $17, $18, $19 FROM new_order RETURNING id)
                SELECT pg_notify('{outbox.CHANNEL}', '') FROM new_row""",
            uuid.UUID(place.order_id),
            uuid.UUID(place.customer_id),
            uuid.UUID(place.store_id),
            order["lines"],
            place.total_amount,
            place.points,
            place.final_amount,
            request.fulfilment,
            request.delivery_address,
            idempotency_key,
            fingerprint,
            order,
            *outbox.row(place, "order", headers),
        )
    except asyncpg.UniqueViolationError as exc:
        # The same key committed by a checkout whose lock had expired: it wins.
        raise Conflict("this Idempotency-Key was just used; retry to get its order") from exc
    return order
