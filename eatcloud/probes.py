"""Does each dependency answer? Used by ``GET /api/v1/admin/health`` and ``eatcloud stack status``.

A probe never raises: it returns a ``ProbeResult`` whose ``detail`` says what went wrong, so a
readiness answer can name the dependency that is down and why.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from eatcloud.settings import Settings


@dataclass(frozen=True)
class ProbeResult:
    name: str
    address: str
    ok: bool
    detail: str
    seconds: float


async def probe_kafka(settings: Settings) -> str:
    from aiokafka import AIOKafkaClient

    from eatcloud.streams.connect import client_options

    client = AIOKafkaClient(
        **client_options(settings.kafka),
        request_timeout_ms=int(settings.api.probe_timeout_seconds * 1000),
    )
    try:
        await client.bootstrap()  # a metadata request: the broker really answers Kafka
        brokers = client.cluster.brokers()
        if not brokers:
            raise ConnectionError("metadata lists no broker")
        return f"{len(brokers)} broker(s)"
    finally:
        await client.close()


async def probe_postgres(settings: Settings) -> str:
    import asyncpg

    pg = settings.postgres
    conn = await asyncpg.connect(dsn=pg.dsn(), timeout=settings.api.probe_timeout_seconds)
    try:
        version = await conn.fetchval("SHOW server_version")
        postgis = await conn.fetchval(
            "SELECT extversion FROM pg_extension WHERE extname = 'postgis'"
        )
    finally:
        await conn.close()
    if postgis is None:
        raise LookupError(f"database {pg.database!r} has no postgis extension")
    return f"PostgreSQL {version}, PostGIS {postgis}"


async def probe_redis(settings: Settings) -> str:
    import redis.asyncio as aioredis

    client = aioredis.Redis.from_url(
        settings.redis.url(),
        socket_timeout=settings.api.probe_timeout_seconds,
        **settings.redis.tls_options(),
    )
    try:
        await client.ping()
        info = await client.info("server")
    finally:
        await client.aclose()
    return f"Redis {info.get('redis_version', '?')}"


async def probe_kinesis(settings: Settings) -> str:
    from eatcloud.kinesis.streams import describe_stream

    summary = await asyncio.to_thread(describe_stream, settings)
    return f"stream {settings.kinesis.stream_name} {summary}"


def addresses(settings: Settings) -> dict[str, str]:
    pg, rd = settings.postgres, settings.redis
    return {
        "kafka": settings.kafka.bootstrap_servers,
        "postgres": pg.safe_dsn(),
        "redis": f"redis://{rd.host}:{rd.port}/{rd.db}",
        "kinesis": settings.kinesis.endpoint_url or f"aws:{settings.kinesis.region}",
    }


PROBES: dict[str, Callable[[Settings], Awaitable[str]]] = {
    "kafka": probe_kafka,
    "postgres": probe_postgres,
    "redis": probe_redis,
    "kinesis": probe_kinesis,
}


async def probe(name: str, settings: Settings) -> ProbeResult:
    started = time.perf_counter()
    address = addresses(settings)[name]
    try:
        detail = await asyncio.wait_for(
            PROBES[name](settings), timeout=settings.api.probe_timeout_seconds + 1
        )
        ok = True
    except Exception as exc:  # a probe reports every failure; it never raises
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        ok = False
    return ProbeResult(name, address, ok, detail, time.perf_counter() - started)


async def probe_all(settings: Settings) -> list[ProbeResult]:
    return list(await asyncio.gather(*(probe(name, settings) for name in PROBES)))
