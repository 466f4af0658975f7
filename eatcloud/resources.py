"""A process's connections (PostgreSQL pool, Redis client), opened on first use, closed at exit.

The API keeps one on its app state; the worker's projections share one. Opening lazily keeps
``create_app`` and agent registration free of I/O: tests build apps for broken settings, and
the readiness probe reports a missing dependency instead of the app failing to start.
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis.asyncio as aioredis

from eatcloud.postgres import create_pool
from eatcloud.settings import Settings


class Resources:
    def __init__(self, settings: Settings, *, pool_size: int = 10) -> None:
        self.settings = settings
        self.pool_size = pool_size
        self._pool: Any = None
        self._redis: aioredis.Redis | None = None
        self._lock = asyncio.Lock()

    async def pool(self) -> Any:
        if self._pool is None:
            async with self._lock:
                if self._pool is None:
                    self._pool = await create_pool(self.settings.postgres, max_size=self.pool_size)
        return self._pool

    def redis(self) -> aioredis.Redis:
        if self._redis is None:
            self._redis = aioredis.Redis.from_url(self.settings.redis.url())
        return self._redis

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
