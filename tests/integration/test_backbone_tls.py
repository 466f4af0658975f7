"""PostgreSQL's and Redis's TLS settings reach the clients the composition root builds.

The local stack's servers speak plain text only, so a client told to insist on TLS must be
refused by them; told nothing, it connects as before. (Kafka's TLS and SASL settings are
checked in tests/unit/test_backbone_security.py: no broker here speaks SASL_SSL.)
"""

from __future__ import annotations

import certifi
import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from eatcloud.bootstrap import build
from eatcloud.settings import Settings


def _with(settings: Settings, group: str, **changes: object) -> Settings:
    return settings.model_copy(update={group: getattr(settings, group).model_copy(update=changes)})


async def test_a_pool_that_insists_on_tls_is_refused_by_a_plain_postgresql(
    settings: Settings,
) -> None:
    for tls in ({"sslmode": "require"}, {"sslmode": "verify-full", "sslrootcert": certifi.where()}):
        async with build(_with(settings, "postgres", **tls)) as services:
            with pytest.raises(ConnectionError, match="SSL"):
                await services.pool()
    async with build(_with(settings, "postgres", sslmode="disable")) as services:
        pool = await services.pool()
        assert await pool.fetchval("SELECT 1") == 1


async def test_a_redis_client_on_tls_is_refused_by_a_plain_redis(settings: Settings) -> None:
    async with build(_with(settings, "redis", tls=True)) as services:
        with pytest.raises((RedisConnectionError, RedisTimeoutError)):  # no TLS answer comes
            await services.redis().ping()
    async with build(settings) as services:
        assert await services.redis().ping()
