"""A Redis lock with an owner token and an expiry, released only by its owner."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from redis.exceptions import RedisError

from eatcloud.errors import Conflict, InfrastructureError
from eatcloud.locks import script


class LockBusy(Conflict):
    """Someone else holds the lock."""

    slug = "lock-busy"


@asynccontextmanager
async def held(redis: Any, key: str, ttl_ms: int, busy: str) -> AsyncIterator[str]:
    """Hold ``key`` for the block, or raise ``Conflict(busy)`` if someone else holds it.

    The expiry bounds how long a crashed holder blocks others; it must exceed the block's
    worst-case duration (checkout's is a few database round trips).
    """
    token = secrets.token_hex(16)
    try:
        got = await redis.set(key, token, nx=True, px=ttl_ms)
    except RedisError as exc:
        raise InfrastructureError(f"lock store: {exc}") from exc
    if not got:
        raise LockBusy(busy)
    try:
        yield token
    finally:
        # On a Redis error the lock expires by itself; the block's outcome matters more.
        with contextlib.suppress(RedisError):
            await script(redis, "lock_release")(keys=[key], args=[token])
