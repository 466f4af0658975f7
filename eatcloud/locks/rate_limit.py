"""Rate limits (a Redis Lua token bucket per subject), shared by every API replica."""

from __future__ import annotations

import math
from typing import Any

from redis.exceptions import RedisError

from eatcloud.errors import InfrastructureError, RateLimited
from eatcloud.locks import script


async def take(redis: Any, bucket: str, capacity: int, per_minute: float) -> None:
    """Take a token from ``bucket``, or raise ``RateLimited`` with the seconds to wait."""
    try:
        admitted, wait_ms = await script(redis, "token_bucket")(
            keys=[f"rl:{bucket}"], args=[capacity, per_minute / 60]
        )
    except RedisError as exc:
        raise InfrastructureError(f"rate limiter: {exc}") from exc
    if not admitted:
        raise RateLimited(
            "too many requests; slow down", retry_after=max(1, math.ceil(wait_ms / 1000))
        )
