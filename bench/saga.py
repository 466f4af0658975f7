"""Saga throughput and latency on the real broker, against a raw aiokafka pipe as the baseline.

    .venv/bin/python bench/saga.py [--orders 5000] [--workers 1] [--rate 0]

Starts real ``eatcloud.app`` worker processes on topics of their own, stocks a few stores,
then produces ``--orders`` PlaceOrder commands, at once (a burst: capacity) or at ``--rate``
orders/s (latency at a sustained load), with a realistic mix: 1-3 lines, 70 %
of lines on a few hot items, ~5 % declined payments, ~2 % stock-outs. A simulated store
accepts and completes every paid order as soon as it sees it. Measures orders/s to a
terminal state and to PAID, and the latency from command to PAID (p50/p99/max). In the same
run, a raw aiokafka consume->produce pipe on the same broker is the baseline. Needs the local
stack (``make stack-up``). This is a benchmark, not a test: it prints figures.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from eatcloud.agents import SAGA_ONLY_ENV
from eatcloud.cli import faust_worker_argv
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import encode

ROOT = Path(__file__).resolve().parents[1]
STORES, MENUS, HOT = 8, 12, 2
TERMINAL = {"OrderCompleted", "OrderRejected", "OrderCancelled"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_workers(
    count: int, prefix: str, data: Path, bootstrap: str
) -> list[subprocess.Popen[bytes]]:
    procs = []
    for n in range(count):
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "EATCLOUD_WORKER__APP_ID": prefix.rstrip("-"),
            "EATCLOUD_KAFKA__TOPIC_PREFIX": prefix,
            "EATCLOUD_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            **SAGA_ONLY_ENV,
            "EATCLOUD_WORKER__DATA_DIR": str(data / f"worker-{n}"),
        }
        argv = faust_worker_argv("eatcloud.app", "warn", "127.0.0.1", free_port())
        log = (data / f"worker-{n}.log").open("wb")
        procs.append(
            subprocess.Popen(
                argv,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=ROOT,
                start_new_session=True,
            )
        )
    return procs


def make_orders(n: int, rng: random.Random) -> list[r.PlaceOrder]:
    orders = []
    for i in range(n):
        store = f"store-{rng.randrange(STORES)}"
        count = rng.choice((1, 1, 2, 2, 3))
        menus: list[str] = []
        while len(menus) < count:
            hot = rng.random() < 0.7
            menu = f"hot-{rng.randrange(HOT)}" if hot else f"menu-{rng.randrange(MENUS)}"
            if menu not in menus:
                menus.append(menu)
        if rng.random() < 0.02:
            menus[-1] = "sold-out"
        lines = [
            r.OrderLine(
                menu_id=m, quantity=rng.choice((1, 1, 2)), unit_price=rng.randrange(50, 300) * 100
            )
            for m in menus
        ]
        if rng.random() < 0.05:  # amounts ending in 13 are declined by the simulated gateway
            lines[0] = lines[0].model_copy(update={"unit_price": lines[0].unit_price + 13})
            if sum(ln.unit_price * ln.quantity for ln in lines) % 100 != 13:
                lines[0] = lines[0].model_copy(update={"quantity": 1})
        orders.append(
            r.PlaceOrder(
                order_id=f"o-{i}-{uuid.uuid4().hex[:6]}",
                customer_id=f"c-{i % 500}",
                store_id=store,
                lines=tuple(lines),
            )
        )
    return orders


async def send_all(producer: AIOKafkaProducer, prefix: str, records: list[r.Record]) -> None:
    futures = []
    for record in records:
        topic, key = t.route(record)
        futures.append(await producer.send(prefix + topic, encode(record), key=key.encode()))
    await asyncio.gather(*futures)


async def feed(
    producer: AIOKafkaProducer,
    prefix: str,
    orders: list[r.PlaceOrder],
    rate: float,
    sent_at: dict[str, float],
) -> float:
    """Produce the orders all at once (rate 0) or at ``rate`` per second; seconds it took."""
    start = time.perf_counter()
    tick = 0.02
    per_tick = len(orders) if rate <= 0 else max(1, round(rate * tick))
    for n, first in enumerate(range(0, len(orders), per_tick)):
        if rate > 0:
            await asyncio.sleep(max(0.0, start + n * tick - time.perf_counter()))
        chunk = orders[first : first + per_tick]
        now = time.perf_counter()
        for o in chunk:
            sent_at[o.order_id] = now
        await send_all(producer, prefix, list(chunk))
    return time.perf_counter() - start


async def run_saga(args: argparse.Namespace, bootstrap: str) -> dict[str, float]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    data = Path(tempfile.mkdtemp(prefix="eatcloud-bench-"))
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(prefix + name, args.partitions, 1) for name in t.ALL])
    await admin.close()
    procs = start_workers(args.workers, prefix, data, bootstrap)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, acks="all", max_batch_size=256 * 1024
    )
    await producer.start()
    events = AIOKafkaConsumer(
        prefix + t.ORDER_EVENTS,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await events.start()
    try:
        stock = [
            r.AdjustStock(store_id=f"store-{s}", menu_id=m, delta=1_000_000)
            for s in range(STORES)
            for m in [*(f"hot-{h}" for h in range(HOT)), *(f"menu-{k}" for k in range(MENUS))]
        ]
        stock += [
            r.AdjustStock(store_id=f"store-{s}", menu_id="sold-out", delta=0) for s in range(STORES)
        ]
        await send_all(producer, prefix, stock)
        warm = make_orders(20, random.Random(1))
        await send_all(producer, prefix, warm)
        await wait_terminal(events, {o.order_id for o in warm}, producer, prefix, {}, {}, 120)

        orders = make_orders(args.orders, random.Random(42))
        sent_at: dict[str, float] = {}
        paid_at: dict[str, float] = {}
        start = time.perf_counter()
        feeding = asyncio.create_task(feed(producer, prefix, orders, args.rate, sent_at))
        wanted = {o.order_id for o in orders}
        ended = await wait_terminal(events, wanted, producer, prefix, paid_at, sent_at, 600)
        produced = await feeding
        elapsed = time.perf_counter() - start
        latencies = sorted(paid_at[o] - sent_at[o] for o in paid_at)
        last_paid = max(paid_at.values()) - start if paid_at else float("nan")
        return {
            "orders": args.orders,
            "produce_s": produced,
            "paid": len(paid_at),
            "rejected": sum(1 for k in ended.values() if k == "OrderRejected"),
            "terminal_per_s": args.orders / elapsed,
            "paid_per_s": len(paid_at) / last_paid,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
            "max_ms": 1000 * latencies[-1],
        }
    except BaseException:
        print_logs(data)
        raise
    finally:
        await events.stop()
        await producer.stop()
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=60)
        shutil.rmtree(data, ignore_errors=True)


def print_logs(data: Path) -> None:
    for log in sorted(data.glob("*.log")):
        tail = "\n".join(log.read_text().splitlines()[-30:])
        print(f"--- {log.name}:\n{tail}", file=sys.stderr)


async def wait_terminal(
    consumer: AIOKafkaConsumer,
    wanted: set[str],
    producer: AIOKafkaProducer,
    prefix: str,
    paid_at: dict[str, float],
    sent_at: dict[str, float],
    within: float,
) -> dict[str, str]:
    """Consume order events; act as the store on OrderPaid; until every wanted order ended."""
    ended: dict[str, str] = {}
    deadline = time.monotonic() + within
    last_report = time.monotonic()
    while not wanted <= ended.keys():
        if time.monotonic() > deadline:
            raise SystemExit(
                f"only {len(wanted & ended.keys())}/{len(wanted)} orders ended in time"
            )
        batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
        now = time.perf_counter()
        answers: list[r.Record] = []
        for records in batches.values():
            for rec in records:
                event = orjson.loads(rec.value)
                order_id, kind = event["order_id"], event["type"]
                if order_id not in wanted:
                    continue
                if kind == "OrderPaid" and order_id not in paid_at:
                    paid_at[order_id] = now
                    answers += [
                        r.AcceptOrder(order_id=order_id, store_id=event["store_id"]),
                        r.CompleteOrder(order_id=order_id, store_id=event["store_id"]),
                    ]
                elif kind in TERMINAL:
                    ended.setdefault(order_id, kind)
        if answers:
            await send_all(producer, prefix, answers)
        if sent_at and time.monotonic() - last_report > 2:
            last_report = time.monotonic()
            print(f"  ... {len(paid_at)} paid, {len(ended)} ended", file=sys.stderr)
    return ended


async def run_pipe(messages: int, bootstrap: str, partitions: int) -> float:
    """Raw aiokafka: consume from one topic, produce each message to another (msgs/s)."""
    source, sink = f"pipe-in-{uuid.uuid4().hex[:8]}", f"pipe-out-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    await admin.create_topics([NewTopic(source, partitions, 1), NewTopic(sink, partitions, 1)])
    await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    await producer.start()
    payload = encode(make_orders(1, random.Random(3))[0])
    futures = [await producer.send(source, payload, key=str(i).encode()) for i in range(messages)]
    await asyncio.gather(*futures)
    consumer = AIOKafkaConsumer(
        source,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=f"pipe-{uuid.uuid4().hex[:6]}",
    )
    await consumer.start()
    moved = 0
    start = time.perf_counter()
    try:
        while moved < messages:
            batches = await consumer.getmany(timeout_ms=500, max_records=2_000)
            sends = []
            for records in batches.values():
                for rec in records:
                    value = orjson.loads(rec.value)  # decode and re-encode, as an agent would
                    sends.append(await producer.send(sink, orjson.dumps(value), key=rec.key))
            await asyncio.gather(*sends)
            if sends:
                await consumer.commit()
            moved += len(sends)
        return messages / (time.perf_counter() - start)
    finally:
        await consumer.stop()
        await producer.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5_000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--rate", type=float, default=0, help="orders/s to produce at (0: all at once, a burst)"
    )
    parser.add_argument(
        "--bootstrap", default=os.environ.get("EATCLOUD_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    args = parser.parse_args()
    mode = "as one burst" if args.rate <= 0 else f"at {args.rate:.0f}/s"
    print(
        f"machine: {os.cpu_count()} cores; broker {args.bootstrap}; {args.workers} worker(s), "
        f"{args.partitions} partitions; {args.orders} orders produced {mode}"
    )
    saga = await run_saga(args, args.bootstrap)
    pipe = await run_pipe(args.orders * 10, args.bootstrap, args.partitions)
    print(
        f"saga: {saga['terminal_per_s']:.0f} orders/s to a terminal state, "
        f"{saga['paid_per_s']:.0f} orders/s to PAID "
        f"({saga['paid']} paid, {saga['rejected']} rejected)"
    )
    print(
        f"      command -> PAID latency: p50 {saga['p50_ms']:.0f} ms, p99 {saga['p99_ms']:.0f} ms, "
        f"max {saga['max_ms']:.0f} ms "
        f"(the {saga['orders']} commands were produced in {saga['produce_s']:.2f} s)"
    )
    print(f"pipe: {pipe:.0f} msgs/s raw aiokafka consume->produce (decode + encode each)")
    if args.rate <= 0:  # in a burst the saga runs flat out: its rate is its capacity
        ratio = pipe / saga["paid_per_s"]
        print(f"ratio: one order to PAID costs the time of {ratio:.1f} piped messages")


if __name__ == "__main__":
    asyncio.run(main())
