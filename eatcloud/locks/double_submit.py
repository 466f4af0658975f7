"""Double submits: identical checkouts of one customer within a window place one order.

A checkout without an ``Idempotency-Key`` first claims the key of its customer and request
fingerprint. The claim is one Lua script (read, and set when free), so of identical checkouts
at once exactly one gets it and places the order; the others wait while it is pending, then
get that order. Once the order is written the claim becomes ``order:<id>`` for the window. A
checkout that fails gives its claim back, so a refusal never blocks a retry; a claim whose
checkout died expires by itself after ``hold_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from dataclasses import dataclass
from typing import Any

from redis.exceptions import RedisError

from eatcloud.errors import InfrastructureError
from eatcloud.locks import script
from eatcloud.locks.lock import LockBusy

PENDING, ORDER = "pending:", "order:"
# How soon a checkout looks again at an identical one still running (doubling up to the cap).
FIRST_POLL_SECONDS, POLL_CAP_SECONDS = 0.01, 0.1


def key(customer_id: str, fingerprint: str) -> str:
    return f"checkout:recent:{customer_id}:{fingerprint}"


@dataclass(frozen=True)
class Claim:
    """This checkout is the first of its kind in the window: it places the order."""

    key: str
    value: str


@dataclass(frozen=True)
class Earlier:
    """An identical checkout placed this order within the window."""

    key: str
    order_id: str


async def claim(
    redis: Any, customer_id: str, fingerprint: str, hold_ms: int, busy: str
) -> Claim | Earlier:
    """Claim the fingerprint, or the order an identical checkout placed within the window.

    An identical checkout still running is waited for, at most ``hold_ms`` (the claim's own
    expiry); past that the caller gets ``LockBusy(busy)``.
    """
    name, mine = key(customer_id, fingerprint), PENDING + secrets.token_hex(16)
    deadline, pause = time.monotonic() + hold_ms / 1000, FIRST_POLL_SECONDS
    while True:
        try:
            held = await script(redis, "double_submit_claim")(keys=[name], args=[mine, hold_ms])
        except RedisError as exc:
            raise InfrastructureError(f"double-submit guard: {exc}") from exc
        if held is None:
            return Claim(name, mine)
        value = held.decode()
        if value.startswith(ORDER):
            return Earlier(name, value.removeprefix(ORDER))
        if time.monotonic() >= deadline:
            raise LockBusy(busy)
        await asyncio.sleep(pause)
        pause = min(2 * pause, POLL_CAP_SECONDS)


async def record(redis: Any, mine: Claim, order_id: str, window_seconds: float) -> None:
    """Identical checkouts get ``order_id`` for ``window_seconds`` from now.

    The order is written already: a Redis error here must not turn it into an error the
    client retries. The claim then expires by itself.
    """
    window_ms = max(1, round(window_seconds * 1000))
    with contextlib.suppress(RedisError):
        await script(redis, "double_submit_record")(
            keys=[mine.key], args=[mine.value, ORDER + order_id, window_ms]
        )


async def release(redis: Any, mine: Claim) -> None:
    """Give the claim of a checkout that failed back (on a Redis error it expires by itself:
    the checkout's own error matters more)."""
    with contextlib.suppress(RedisError):
        await script(redis, "lock_release")(keys=[mine.key], args=[mine.value])


async def forget(redis: Any, earlier: Earlier) -> None:
    """Drop an earlier order that this checkout must not get (unless the key moved on)."""
    try:
        await script(redis, "lock_release")(keys=[earlier.key], args=[ORDER + earlier.order_id])
    except RedisError as exc:
        raise InfrastructureError(f"double-submit guard: {exc}") from exc
