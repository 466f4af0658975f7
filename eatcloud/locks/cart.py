"""Carts in Redis: one hash per customer, one store per cart, expiring when left alone."""

from __future__ import annotations

from typing import Any

from redis.exceptions import RedisError

from eatcloud.errors import Conflict, InfrastructureError
from eatcloud.locks import script

CART_TTL_SECONDS = 24 * 3600


def _key(customer_id: str) -> str:
    return f"cart:{customer_id}"


async def put(redis: Any, customer_id: str, store_id: str, menu_id: str, quantity: int) -> None:
    try:
        done = await script(redis, "cart_put")(
            keys=[_key(customer_id)], args=[store_id, menu_id, quantity, CART_TTL_SECONDS]
        )
    except RedisError as exc:
        raise InfrastructureError(f"cart store: {exc}") from exc
    if done == -1:
        raise Conflict("the cart holds another store's menus: order those or clear the cart")


async def get(redis: Any, customer_id: str) -> tuple[str | None, dict[str, int]]:
    """(store_id, {menu_id: quantity}); (None, {}) for an empty cart."""
    try:
        raw = await redis.hgetall(_key(customer_id))
    except RedisError as exc:
        raise InfrastructureError(f"cart store: {exc}") from exc
    fields = {k.decode(): v.decode() for k, v in raw.items()}
    store = fields.pop("store", None)
    return store, {k[2:]: int(v) for k, v in fields.items() if k.startswith("m:")}


async def clear(redis: Any, customer_id: str) -> None:
    try:
        await redis.delete(_key(customer_id))
    except RedisError as exc:
        raise InfrastructureError(f"cart store: {exc}") from exc
