"""The HTTP edge and the outbox relay, each against its bare baseline on the same box.

    .venv/bin/python bench/edge.py [--seconds 10] [--concurrency 32] [--rows 20000]

1. ``POST /api/v1/orders`` (auth, rate limit, lock, prices, stock gate, order + outbox in one
   transaction) on a real uvicorn, against a bare FastAPI endpoint that parses a JSON body and
   answers JSON, on another uvicorn: requests/s and latency, and the ratio.
2. The outbox relay draining ``--rows`` rows to Kafka, against raw aiokafka producing the same
   payloads with the same settings: events/s, and the ratio.

``EDGE_PROFILE=FILE`` also records a py-spy profile of the API during its run (py-spy must be
on PATH). Needs the local stack (``make stack-up``); installs ``wrk`` (a Debian package) when
missing. Each server is one uvicorn process, and wrk shares the same 2 cores, so compare the
ratios, not the absolutes.
The rate limits are raised for the run (they would otherwise be what is measured).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eatcloud.agents.relay import OutboxRelay  # noqa: E402
from eatcloud.api.security import hash_password  # noqa: E402
from eatcloud.locks import gate  # noqa: E402
from eatcloud.postgres import create_pool  # noqa: E402
from eatcloud.postgres.outbox import enqueue  # noqa: E402
from eatcloud.postgres.users import create_user  # noqa: E402
from eatcloud.settings import Settings  # noqa: E402
from eatcloud.stack.apt import ensure_packages  # noqa: E402
from eatcloud.streams import records as r  # noqa: E402
from tests.integration.databases import fresh_database  # noqa: E402
from tests.integration.workers import free_port  # noqa: E402

BARE_APP = """
from fastapi import FastAPI
from pydantic import BaseModel

class Line(BaseModel):
    menu_id: str
    quantity: int

class Order(BaseModel):
    store_id: str
    lines: list[Line]
    delivery_address: str

app = FastAPI()

@app.post("/orders", status_code=202)
async def orders(body: Order) -> dict[str, object]:
    return {"order_id": "x", "status": "PENDING", "lines": [ln.model_dump() for ln in body.lines]}
"""
PASSWORD = "benchmark password"


def serve(argv: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv, env={**os.environ, **env}, stdout=out, stderr=subprocess.STDOUT, cwd=ROOT
        )


async def wait_up(url: str) -> None:
    async with httpx.AsyncClient() as client:
        for _ in range(150):
            try:
                if (await client.get(url)).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise SystemExit(f"{url} did not come up")


def wrk(
    url: str, path: str, bodies: list[tuple[str, str]], seconds: int, connections: int, data: Path
) -> dict[str, float]:
    """Run wrk (1 thread) against ``url``, cycling through (JSON body, bearer token) pairs."""
    # The requests are formatted in init(): only then does wrk know the Host header (uvicorn
    # answers 400 to an HTTP/1.1 request without one).
    script = ["local requests = {}", "init = function(args)"]
    for n, (body, token) in enumerate(bodies, start=1):
        headers = '{["Content-Type"] = "application/json", ["Authorization"] = "Bearer ' + token
        script.append(f"  requests[{n}] = wrk.format('POST', '{path}', {headers}\"}}, [[{body}]])")
    script += [
        "end",
        "local i = 0",
        "request = function()",
        "  i = i % #requests + 1",
        "  return requests[i]",
        "end",
    ]
    lua = data / f"wrk-{uuid.uuid4().hex[:6]}.lua"
    lua.write_text("\n".join(script))
    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(lua), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    figures = {"rps": 0.0, "p50": 0.0, "p99": 0.0, "non2xx": 0.0, "requests": 0.0}
    for line in out.splitlines():
        words = line.split()
        if line.startswith("Requests/sec:"):
            figures["rps"] = float(words[1])
        elif words[:1] in (["50%"], ["99%"]):
            figures["p" + words[0][:-1]] = _ms(words[1])
        elif line.startswith("Non-2xx"):
            figures["non2xx"] = float(words[-1])
        elif "requests in" in line:
            figures["requests"] = float(words[0])
    return figures


def _ms(value: str) -> float:
    for unit, factor in (("ms", 1.0), ("us", 0.001), ("s", 1000.0)):
        if value.endswith(unit):
            return float(value[: -len(unit)]) * factor
    return float(value)


def describe(name: str, f: dict[str, float]) -> str:
    return (
        f"{name}: {f['rps']:,.0f} requests/s, p50 {f['p50']:.1f} ms, p99 {f['p99']:.1f} ms "
        f"({f['requests']:,.0f} requests, {f['non2xx']:,.0f} not 2xx)"
    )


async def bench_http(db: Settings, args: argparse.Namespace, data: Path) -> None:
    pool = await create_pool(db.postgres, max_size=4)
    api_port, bare_port = free_port(), free_port()
    env = {
        "PYTHONPATH": str(ROOT),
        "EATCLOUD_POSTGRES__DATABASE": db.postgres.database,
        "EATCLOUD_API__PORT": str(api_port),
        "EATCLOUD_LOG_LEVEL": "WARNING",
        "EATCLOUD_RATE_LIMIT__CHECKOUT_BURST": "1000000",
        # wrk sends each customer's few bodies over and over: every one must place an order.
        "EATCLOUD_API__DOUBLE_SUBMIT_SECONDS": "0",
        "EATCLOUD_RATE_LIMIT__LOGIN_BURST": "1000000",
        "EATCLOUD_RATE_LIMIT__ADDRESS_LOGIN_BURST": "1000000",
        "EATCLOUD_RATE_LIMIT__PASSWORD_BURST": "1000000",
        "EATCLOUD_AUTH__HASHING_QUEUE": "100000",  # wrk's connections all wait their turn
    }
    (data / "bare_app.py").write_text(BARE_APP)
    api = serve([sys.executable, "-m", "eatcloud.cli", "api"], env, data / "api.log")
    bare = serve(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "bare_app:app",
            "--port",
            str(bare_port),
            "--log-level",
            "warning",
            "--no-access-log",
            "--app-dir",
            str(data),
        ],
        {},
        data / "bare.log",
    )
    url = f"http://127.0.0.1:{api_port}"
    try:
        await wait_up(f"{url}/health/live")
        await wait_up(f"http://127.0.0.1:{bare_port}/docs")
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            suffix = uuid.uuid4().hex[:6]
            admin_email = f"admin-{suffix}@bench.test"
            await create_user(pool, admin_email, await hash_password(PASSWORD), "ADMIN", "A")

            async def token(email: str, role: str | None) -> str:
                if role:
                    await client.post(
                        "/api/v1/auth/signup",
                        json={"email": email, "password": PASSWORD, "name": "B", "role": role},
                    )
                login = await client.post(
                    "/api/v1/auth/login", json={"email": email, "password": PASSWORD}
                )
                return str(login.json()["access_token"])

            admin = {"Authorization": f"Bearer {await token(admin_email, None)}"}
            manager = {
                "Authorization": f"Bearer {await token(f'm-{suffix}@bench.test', 'MANAGER')}"
            }
            await client.post(
                "/api/v1/admin/categories", json={"code": "BENCH", "name": "B"}, headers=admin
            )
            store = (
                await client.post(
                    "/api/v1/stores",
                    json={"name": "Bench", "category_code": "BENCH", "lat": 1, "lon": 1},
                    headers=manager,
                )
            ).json()
            await client.post(f"/api/v1/admin/stores/{store['id']}/approve", headers=admin)
            menus = [
                (
                    await client.post(
                        f"/api/v1/stores/{store['id']}/menus",
                        json={"name": f"M{i}", "price": 1000 + i},
                        headers=manager,
                    )
                ).json()["id"]
                for i in range(3)
            ]
            # Known, ample stock for every menu: the gate's full path runs.
            redis = aioredis.Redis.from_url(db.redis.url())
            stock = [
                r.StockLevelChanged(
                    store_id=store["id"],
                    menu_id=menu,
                    change=r.StockChange.ADJUSTED,
                    quantity=10**6,
                    on_hand=10**6,
                    reserved=0,
                    sold=0,
                )
                for menu in menus
            ]
            await gate.apply_all(redis, stock)
            await redis.aclose()
            customers = [
                await token(f"c{i}-{suffix}@bench.test", "CUSTOMER")
                for i in range(args.concurrency * 4)
            ]
        bodies = [
            (
                orjson.dumps(
                    {
                        "store_id": store["id"],
                        "delivery_address": "1 Bench St",
                        "lines": [{"menu_id": menus[i % 3], "quantity": 1 + i % 2}],
                    }
                ).decode(),
                customers[i % len(customers)],
            )
            for i in range(len(customers) * 4)
        ]
        bare_url = f"http://127.0.0.1:{bare_port}"
        c = args.concurrency
        wrk(bare_url, "/orders", bodies, 2, c, data)  # warm both servers first
        wrk(url, "/api/v1/orders", bodies, 2, c, data)
        bare_f = wrk(bare_url, "/orders", bodies, args.seconds, c, data)
        profiler = None
        if os.environ.get("EDGE_PROFILE"):  # py-spy on the API while wrk loads it
            py_spy = ["py-spy", "record", "-r", "200", "-d", str(args.seconds), "-f", "raw"]
            py_spy += ["-o", os.environ["EDGE_PROFILE"], "-p", str(api.pid)]
            profiler = serve(py_spy, {}, data / "py-spy.log")
        api_f = wrk(url, "/api/v1/orders", bodies, args.seconds, c, data)
        if profiler is not None:
            profiler.wait()
        orders = await pool.fetchval("SELECT count(*) FROM orders")
        print(describe("bare FastAPI JSON endpoint", bare_f))
        print(describe("POST /api/v1/orders       ", api_f))
        print(f"  ({orders:,} orders and their outbox rows written in all, warm-up included)")
        if api_f["non2xx"]:
            print("  (the not-2xx are 409s: a customer whose previous checkout held its lock)")
        print(
            f"ratio: checkout runs at {100 * api_f['rps'] / bare_f['rps']:.0f} % of the bare "
            "endpoint (target >= 50 %)"
        )
    finally:
        for proc in (api, bare):
            proc.terminate()
            proc.wait(timeout=30)
        await pool.close()


async def bench_relay(db: Settings, rows: int) -> None:
    bootstrap = db.kafka.bootstrap_servers
    prefix = f"bench-relay-{uuid.uuid4().hex[:6]}-"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics(
        [NewTopic(prefix + "order-commands", 4, 1), NewTopic(prefix + "raw", 4, 1)]
    )
    await admin.close()
    pool = await create_pool(db.postgres, max_size=4)
    records = [
        r.CancelOrder(order_id=f"o-{i}", by=r.Actor.CUSTOMER, reason="bench") for i in range(rows)
    ]
    async with pool.acquire() as conn:
        for first in range(0, rows, 1000):
            async with conn.transaction():
                for record in records[first : first + 1000]:
                    await enqueue(
                        conn, record, aggregate_type="order", headers={"x-request-id": "bench"}
                    )
    settings = {
        "bootstrap_servers": bootstrap,
        "acks": "all",
        "linger_ms": 5,
        "enable_idempotence": True,
    }
    producer = AIOKafkaProducer(**settings)
    await producer.start()
    try:
        relay = OutboxRelay(pool, producer, topic_prefix=prefix)
        started = time.perf_counter()
        while await relay.publish_once():
            pass
        relay_rate = relay.published / (time.perf_counter() - started)
        payloads = [record.model_dump_json().encode() for record in records]
        started = time.perf_counter()
        acks = [
            await producer.send(
                prefix + "raw",
                p,
                key=f"o-{i}".encode(),
                headers=[("event_id", b"x"), ("x-request-id", b"bench")],
            )
            for i, p in enumerate(payloads)
        ]
        await asyncio.gather(*acks)
        raw_rate = rows / (time.perf_counter() - started)
    finally:
        await producer.stop()
        await pool.close()
    print(
        f"outbox relay: {relay_rate:,.0f} events/s ({rows} rows, batches of {relay.batch}; "
        f"target >= 5,000)"
    )
    print(f"raw aiokafka produce: {raw_rate:,.0f} events/s (same producer settings)")
    print(f"ratio: the relay runs at {100 * relay_rate / raw_rate:.0f} % of raw produce")


async def main() -> None:
    os.environ.setdefault("EATCLOUD_AUTH__JWT_SECRET", secrets.token_urlsafe(48))  # the API's
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10, help="wrk duration per endpoint")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    ensure_packages(["wrk"], print)  # a C load generator: it leaves the CPU to the servers
    print(
        f"machine: {os.cpu_count()} cores; wrk with 1 thread and {args.concurrency} connections, "
        f"{args.seconds} s per endpoint; relay {args.rows} rows"
    )
    settings = Settings()
    with tempfile.TemporaryDirectory(prefix="eatcloud-edge-") as tmp:
        async with fresh_database(settings) as db:
            await bench_http(db, args, Path(tmp))
            await bench_relay(db, args.rows)


if __name__ == "__main__":
    asyncio.run(main())
