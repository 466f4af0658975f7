"""Open-loop end-to-end benchmark: HTTP checkout -> outbox -> worker saga -> read model.

    .venv/bin/python bench/e2e.py [--start 20] [--step 20] [--step-seconds 20] [--max-rate 400]
        [--max-seconds 900] [--customers 200] [--stores 20] [--p99-bound-ms 2000]

Starts a fresh database, one real worker (saga, outbox relay, projections; Kinesis off) on
topics of its own, and the API as one uvicorn process, all on 127.0.0.1. Sets up customers and
approved stores (a manager each, menus with ample stock, a few hot items), then offers orders
at a constant rate per step (open loop: each ``POST /api/v1/orders`` is fired on schedule
whatever the answers; one that finds all ``--connections`` busy is dropped and counted), with
1-3 lines and ~5 % of orders priced to be declined by the simulated gateway. A simulated store
accepts each order through the API once the read model shows it PAID. ``order_view`` is polled
every ``--poll-ms``: the 202 -> PAID latency is when the read model shows it (+- one poll).

Each step runs ``--step-seconds`` and then waits for its orders to settle. The rate steps up
until a step falls short (accepted < 90 % of offered, errors > 1 %, p99 202 -> PAID over the
bound, or > 1 % of its orders unsettled), ``--max-rate`` or ``--max-seconds``. Progress goes to
stderr; one JSON line to stdout. Needs the local stack (``make stack-up``). The load generator
shares the machine's cores with everything else: compare runs, not absolutes.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import orjson
import redis.asyncio as aioredis

sys.path.append(str(Path(__file__).resolve().parents[1]))  # PYTHONPATH (a worktree) goes first

import _common as common

import eatcloud
from eatcloud.api.security import Authenticator, Role, hash_password
from eatcloud.postgres import create_pool
from eatcloud.postgres.users import create_user
from eatcloud.settings import Settings
from tests.integration.api_harness import Api, approved_store, bearer
from tests.integration.databases import fresh_database
from tests.integration.saga_harness import saga_worker, unique_prefix
from tests.integration.workers import ROOT as HARNESS_ROOT
from tests.integration.workers import ApiProcess, WorkerProcess

CHECKOUT = Path(eatcloud.__file__).resolve().parents[1]  # worker and API run from here too
HOT_STORES, LATE_S, STOCK = 3, 0.02, 1_000_000
PAID = {"PAID", "ACCEPTED", "COMPLETED"}


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass
class Store:
    id: str
    manager: dict[str, str]
    menus: list[str]  # priced in whole units (x00); menus[0] is hot in the first stores
    decline: str  # priced to end in the gateway's decline cents


@dataclass
class Order:
    store: Store
    declining: bool
    answered: float  # when its 202 came
    paid: float = 0.0
    outcome: str = ""


@dataclass
class Step:
    rate: int
    seconds: float
    offered: int = 0
    late: int = 0
    dropped: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    http_ms: list[float] = field(default_factory=list)
    orders: list[Order] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        paid = sorted(1000 * (o.paid - o.answered) for o in self.orders if o.paid)
        rejected = [o for o in self.orders if o.outcome and not o.paid]
        return {
            "offered_per_s": round(self.offered / self.seconds, 1),
            "accepted_per_s": round(self.statuses["202"] / self.seconds, 1),
            "errors": sum(n for code, n in self.statuses.items() if code != "202"),
            "error_statuses": {k: n for k, n in self.statuses.items() if k != "202"},
            "late": self.late,
            "dropped": self.dropped,
            "paid": len(paid),
            "declined": sum(o.declining for o in rejected),
            "rejected_other": sum(not o.declining for o in rejected),
            "unsettled": sum(not o.outcome for o in self.orders),
            "http_p50_ms": pct(sorted(self.http_ms), 0.5),
            "http_p99_ms": pct(sorted(self.http_ms), 0.99),
            "p50_ms": pct(paid, 0.5),
            "p99_ms": pct(paid, 0.99),
            "max_ms": round(paid[-1], 1) if paid else None,
        }


def pct(sorted_ms: list[float], q: float) -> float | None:
    return round(sorted_ms[int(q * (len(sorted_ms) - 1))], 1) if sorted_ms else None


class Bench:
    def __init__(self, args: argparse.Namespace, url: str, pool: Any, decline_cents: int) -> None:
        self.args, self.pool, self.decline_cents = args, pool, decline_cents
        limits = httpx.Limits(max_connections=args.connections)
        self.client = httpx.AsyncClient(base_url=url, limits=limits, timeout=30)
        self.store_client = httpx.AsyncClient(base_url=url, timeout=30)  # the stores' own pool
        self.rng = random.Random(42)
        self.customers: list[dict[str, str]] = []
        self.stores: list[Store] = []
        self.pending: dict[str, Order] = {}
        self.inflight = self.sent = 0
        self.accepts: Counter[str] = Counter()
        self.accepting = asyncio.Semaphore(8)
        self.background: set[asyncio.Task[None]] = set()

    async def close(self) -> None:
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.client.aclose()
        await self.store_client.aclose()

    def spawn(self, coro: Any) -> asyncio.Task[None]:
        task = asyncio.create_task(coro)
        self.background.add(task)
        task.add_done_callback(self.background.discard)
        return task

    def basket(self) -> tuple[Store, bool, dict[str, Any]]:
        rng = self.rng
        hot = rng.random() < 0.5  # half of the orders go for a hot item
        store = self.stores[rng.randrange(HOT_STORES if hot else len(self.stores))]
        menus = rng.sample(store.menus[1:], rng.choice((1, 1, 2, 2, 3)))
        if hot:
            menus[0] = store.menus[0]
        lines = [{"menu_id": m, "quantity": rng.choice((1, 1, 2))} for m in menus]
        declining = rng.random() < self.args.declines
        if declining:  # the one line not in whole units: the amount ends in the decline cents
            lines[-1] = {"menu_id": store.decline, "quantity": 1}
        body = {"store_id": store.id, "lines": lines, "delivery_address": "1 Bench St"}
        return store, declining, body

    async def checkout(self, step: Step, due: float, customer: dict[str, str]) -> None:
        store, declining, body = self.basket()
        try:
            got = await self.client.post(
                "/api/v1/orders", json=body, headers=bearer(customer["access_token"])
            )
        except httpx.HTTPError as exc:
            step.statuses[type(exc).__name__] += 1
            return
        finally:
            self.inflight -= 1
        now = time.perf_counter()
        step.statuses[str(got.status_code)] += 1
        if got.status_code == 202:
            step.http_ms.append(1000 * (now - due))
            order = Order(store, declining, now)
            step.orders.append(order)
            self.pending[got.json()["order_id"]] = order

    async def run_step(self, step: Step) -> None:
        """Fire ``rate`` checkouts a second for ``seconds``, on schedule; wait for the answers."""
        start, interval = time.perf_counter(), 1 / step.rate
        requests: set[asyncio.Task[None]] = set()
        for i in range(round(step.rate * step.seconds)):
            due = start + i * interval
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            elif -delay > LATE_S:
                step.late += 1
            step.offered += 1
            if self.inflight >= self.args.connections:
                step.dropped += 1  # no free connection: it cannot be sent on time
                continue
            self.inflight += 1
            self.sent += 1
            customer = self.customers[self.sent % len(self.customers)]  # round robin
            task = asyncio.create_task(self.checkout(step, due, customer))
            requests.add(task)
            task.add_done_callback(requests.discard)
            if i % (2 * step.rate) == 0 and i:
                say(
                    f"  {step.rate}/s t={i * interval:.0f}s offered={step.offered} "
                    f"202={step.statuses['202']} in-flight={self.inflight} "
                    f"awaiting-PAID={len(self.pending)} dropped={step.dropped}"
                )
        await asyncio.gather(*requests)

    async def settle(self, step: Step, poller: asyncio.Task[None], within: float) -> None:
        deadline = time.perf_counter() + within
        while time.perf_counter() < deadline and any(not o.outcome for o in step.orders):
            if poller.done():
                poller.result()  # raises what stopped it
                raise RuntimeError("the order_view poller stopped")
            await asyncio.sleep(0.1)

    async def poll(self) -> None:
        """Watch order_view for orders past PENDING; the store accepts the paid ones."""
        while True:
            await asyncio.sleep(self.args.poll_ms / 1000)
            if not self.pending:
                continue
            rows = await self.pool.fetch(
                "SELECT order_id, status FROM order_view"
                " WHERE order_id = ANY($1::text[]) AND status <> 'PENDING'",
                list(self.pending),
            )
            now = time.perf_counter()
            for row in rows:
                order = self.pending.pop(row["order_id"])
                order.outcome = row["status"]
                if order.outcome in PAID:
                    order.paid = now
                    self.spawn(self.accept(row["order_id"], order.store))

    async def accept(self, order_id: str, store: Store) -> None:
        async with self.accepting:
            try:
                got = await self.store_client.post(
                    f"/api/v1/stores/{store.id}/orders/{order_id}/accept",
                    headers=bearer(store.manager["access_token"]),
                )
                self.accepts[str(got.status_code)] += 1
            except httpx.HTTPError as exc:
                self.accepts[type(exc).__name__] += 1


def verdict(s: dict[str, Any], args: argparse.Namespace) -> str:
    """Why the platform did not keep up with this step ("" when it did)."""
    offered, accepted = s["offered_per_s"], s["accepted_per_s"]
    if accepted < 0.9 * offered:
        return f"accepted {accepted}/s < 90 % of offered {offered}/s"
    if s["errors"] > 0.01 * offered * args.step_seconds:
        return f"{s['errors']} errors {s['error_statuses']}"
    if s["unsettled"] > 0.01 * accepted * args.step_seconds:
        return f"{s['unsettled']} orders neither PAID nor rejected after {args.settle_seconds} s"
    if s["p99_ms"] is not None and s["p99_ms"] > args.p99_bound_ms:
        return f"p99 202 -> PAID {s['p99_ms']} ms > {args.p99_bound_ms} ms"
    return ""


async def setup(bench: Bench, db: Settings, redis: Any, sessions: list[str]) -> None:
    """Customers, an admin and approved stores with stocked menus; sessions go in ``sessions``."""
    args, pool = bench.args, bench.pool
    long_lived = db.auth.model_copy(update={"access_ttl_seconds": 86_400})
    auth = Authenticator(long_lived, redis, db.signing_key())
    password_hash = await hash_password("benchmark password")  # one argon2 hash for everyone

    async def account(role: str, n: int) -> dict[str, str]:
        email = f"{role.lower()}-{n}@e2e.bench"
        user = await create_user(pool, email, password_hash, role, f"{role.title()} {n}")
        pair = await auth.open_session(str(user.id), Role(role))  # what a login does
        sessions.append("auth:session:" + pair.refresh_token.partition(".")[0])
        return {"id": str(user.id), "access_token": pair.access_token}

    admin = await account("ADMIN", 0)
    bench.customers = [await account("CUSTOMER", n) for n in range(args.customers)]
    api = Api(bench.store_client, db, pool, redis)
    prices = [1000 + 100 * k for k in range(args.menus)]

    async def store(n: int) -> Store:
        manager = await account("MANAGER", n)
        made = await approved_store(api, manager, admin, name=f"Bench {n}", category="BENCH")
        menus = []
        for k, price in enumerate([*prices, 1000 + bench.decline_cents]):
            got = await api.client.post(
                f"/api/v1/stores/{made['id']}/menus",
                json={"name": f"Menu {k}", "price": price, "initial_stock": STOCK},
                headers=bearer(manager["access_token"]),
            )
            assert got.status_code == 201, got.text
            menus.append(got.json()["id"])
        return Store(str(made["id"]), manager, menus[:-1], menus[-1])

    bench.stores = [await store(n) for n in range(args.stores)]
    want = args.stores * (args.menus + 1)
    for _ in range(600):  # the stock reaches the read model (and the gate) through the worker
        if await pool.fetchval("SELECT count(*) FROM stock_view") == want:
            return
        await asyncio.sleep(0.2)
    raise RuntimeError(f"the stock of {want} menus never reached stock_view")


async def measure(bench: Bench, poller: asyncio.Task[None], started: float) -> dict[str, Any]:
    args = bench.args
    warm = Step(rate=5, seconds=2)
    await bench.run_step(warm)
    await bench.settle(warm, poller, 120)
    if any(not o.outcome for o in warm.orders) or not warm.orders:
        raise RuntimeError(f"warm-up orders did not settle: {warm.summary()}")
    say(f"warm-up: {warm.summary()}")
    steps: list[dict[str, Any]] = []
    peak: dict[str, Any] | None = None
    stopped_by, rate = "max-rate", args.start
    while rate <= args.max_rate:
        if time.monotonic() - started + args.step_seconds > args.max_seconds:
            stopped_by = "max-seconds"
            break
        say(f"step {len(steps) + 1}: {rate} orders/s for {args.step_seconds} s")
        step = Step(rate=rate, seconds=args.step_seconds)
        await bench.run_step(step)
        await bench.settle(step, poller, args.settle_seconds)
        summary = {"rate": rate, **step.summary()}
        why = verdict(summary, args)
        steps.append({**summary, "kept_up": not why})
        say(f"  -> {orjson.dumps(summary).decode()}{'  FAIL: ' + why if why else ''}")
        if why:
            stopped_by = why
            break
        peak, rate = summary, rate + args.step
    best = peak or (steps[0] if steps else {})
    return {
        "bench": "e2e",
        "peak_offered_per_s": best.get("offered_per_s"),
        "peak_accepted_per_s": best.get("accepted_per_s"),
        "p50_ms": best.get("p50_ms"),
        "p99_ms": best.get("p99_ms"),
        "max_ms": best.get("max_ms"),
        "peak_kept_up": peak is not None,
        "stopped_by": stopped_by,
        "steps": steps,
        "store_accepts": dict(bench.accepts),
        "cores": os.cpu_count(),
        "customers": args.customers,
        "stores": args.stores,
    }


@dataclass
class Running:
    """The platform a benchmark drives: its processes, its database and the load's state."""

    bench: Bench
    worker: WorkerProcess
    api: ApiProcess
    db: Settings
    redis: Any
    poller: asyncio.Task[None]
    folder: Path


@asynccontextmanager
async def running_platform(
    args: argparse.Namespace, name: str, **worker_env: str
) -> AsyncIterator[Running]:
    """A fresh database, one worker (saga, relay, projections; ``worker_env`` on top) on
    topics of its own and one API process, set up with customers and stocked stores, and the
    read-model poller running. Everything is stopped and dropped when the block ends."""
    # The API and this process (it opens the customers' sessions) sign with one key.
    os.environ.setdefault("EATCLOUD_AUTH__JWT_SECRET", secrets.token_urlsafe(48))
    settings = Settings()
    decline_cents = settings.payment.decline_cents
    if decline_cents == 0:
        raise SystemExit("EATCLOUD_PAYMENT__DECLINE_CENTS=0 would decline every order")
    bootstrap, prefix = settings.kafka.bootstrap_servers, unique_prefix(name)
    quiet = {"EATCLOUD_LOG_LEVEL": "WARNING"}
    if HARNESS_ROOT.resolve() != CHECKOUT:  # the harness launches processes from its checkout
        raise SystemExit(f"eatcloud from {CHECKOUT} but tests/ from {HARNESS_ROOT}: set PYTHONPATH")
    say(f"checkout {CHECKOUT}; topics {prefix}*")
    with tempfile.TemporaryDirectory(prefix=f"eatcloud-{name}-") as tmp:
        async with fresh_database(settings) as db:
            worker: WorkerProcess = saga_worker(
                Path(tmp),
                bootstrap,
                prefix,
                EATCLOUD_POSTGRES__DATABASE=db.postgres.database,
                EATCLOUD_WORKER__OUTBOX_RELAY="true",
                EATCLOUD_WORKER__PROJECTIONS="true",
                **{**quiet, **worker_env},
            )
            api = ApiProcess(
                db.postgres.database,
                Path(tmp) / "api.log",
                EATCLOUD_RATE_LIMIT__CHECKOUT_BURST="1000000000",
                EATCLOUD_RATE_LIMIT__CHECKOUT_PER_MINUTE="1000000000",
                # A customer's random basket may repeat within seconds: still a new order.
                EATCLOUD_API__DOUBLE_SUBMIT_SECONDS="0",
                **quiet,
            )
            pool = await create_pool(db.postgres, max_size=4)
            redis = aioredis.Redis.from_url(db.redis.url())
            bench = Bench(args, api.url, pool, decline_cents)
            sessions: list[str] = []
            try:
                worker.start()
                await asyncio.to_thread(api.start, 60.0)
                say(f"api {api.url}; setting up")
                await setup(bench, db, redis, sessions)
                poller = bench.spawn(bench.poll())
                say(f"{args.customers} customers, {args.stores} stores ready")
                yield Running(bench, worker, api, db, redis, poller, Path(tmp))
            except Exception:
                api_log = api.log.read_text()[-3000:] if api.log.exists() else ""
                say(f"--- worker log:\n{worker.tail(40)}\n--- api log:\n{api_log}")
                raise
            finally:
                await bench.close()
                await asyncio.to_thread(api.stop)
                await asyncio.to_thread(worker.stop)
                if sessions:
                    await redis.delete(*sessions)
                await redis.aclose()
                await pool.close()
                await common.drop_topics(bootstrap, prefix)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    async with running_platform(args, "e2ebench") as platform:
        say("warming up")
        return await measure(platform.bench, platform.poller, started)


def add_platform_arguments(parser: argparse.ArgumentParser) -> None:
    """What shapes the platform and its customers (bench/e2e.py and bench/soak.py)."""
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--stores", type=int, default=20)
    parser.add_argument("--menus", type=int, default=6, help="per store (+1 priced to decline)")
    parser.add_argument("--declines", type=float, default=0.05, help="share of orders")
    parser.add_argument("--connections", type=int, default=200, help="client pool size")
    parser.add_argument("--poll-ms", type=float, default=50)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start", type=int, default=20, help="first rate, orders/s")
    parser.add_argument("--step", type=int, default=20, help="rate increase per step")
    parser.add_argument("--step-seconds", type=float, default=20)
    parser.add_argument("--max-rate", type=int, default=400)
    parser.add_argument("--max-seconds", type=float, default=900, help="whole run, set-up too")
    parser.add_argument("--settle-seconds", type=float, default=30)
    parser.add_argument("--p99-bound-ms", type=float, default=2000)
    add_platform_arguments(parser)
    args = parser.parse_args()
    if args.stores < HOT_STORES or args.menus < 4 or args.start < 1 or args.step < 1:
        parser.error(f"needs --stores >= {HOT_STORES}, --menus >= 4, --start and --step >= 1")
    await report_when_done(run(args), args.max_seconds + 120)


async def report_when_done(work: Awaitable[dict[str, Any]], within: float) -> None:
    """Run a benchmark (SIGTERM cancels it, which cleans up) and print its one JSON line."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    result = await asyncio.wait_for(work, within)
    print(orjson.dumps(result).decode(), flush=True)


def entry(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """``asyncio.run(main())``; Ctrl-C or SIGTERM exits 130 once everything is cleaned up."""
    try:
        asyncio.run(main())
    except (KeyboardInterrupt, asyncio.CancelledError):
        say("interrupted: stopped and cleaned up")
        sys.exit(130)


if __name__ == "__main__":
    entry(main)
