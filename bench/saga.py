"""Saga throughput, latency, CPU and correctness on the real broker, with a raw pipe baseline.

    .venv/bin/python bench/saga.py [--orders 5000] [--rate 0] [--workers 1] [--partitions 4]
                                   [--stores 200] [--items 20]
    # another checkout (a git worktree): its own code runs in the workers
    cd /tmp/base && PYTHONPATH=/tmp/base /work/main/.venv/bin/python /work/main/bench/saga.py

Starts real worker processes (``faust -A eatcloud.app worker``, saga agents only) of the
checkout whose ``eatcloud`` this interpreter imports, on topics of their own. Stocks
``--stores`` x ``--items`` menu items with AdjustStock (the most wanted hot items scarce, so
~2 % of orders are refused), then produces ``--orders`` PlaceOrder commands at once (a burst:
capacity) or at ``--rate`` orders/s (latency at a steady load): 1-3 lines, 70 % of orders at
10 hot stores, ~5 % declined by the simulated gateway (amounts ending in 13). A simulated
store accepts and completes each order as soon as it sees OrderPaid. Records are produced as
the checkout's outbox relay would (``eatcloud.runtime.wire.encode_batches`` if it has one).

Measures orders/s to a terminal state and to PAID, command -> PAID latency and the workers'
CPU per order, and counts the saga Timeouts the workers sent (none is due when every
participant answers: each is a stale one); checks that no item was oversold and that every
order ended exactly once. A raw
aiokafka consume->produce pipe in the same run is the baseline. Prints readable lines, then one
JSON line. Needs the local stack (``make stack-up``). A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Coroutine, Iterable, Sequence
from pathlib import Path
from typing import Any

import _common as common
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

import eatcloud
from eatcloud.agents import SAGA_ONLY_ENV
from eatcloud.cli import faust_worker_argv
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import encode

ROOT = Path(eatcloud.__file__).resolve().parents[1]  # the checkout the workers run
HOT_STORES, PLENTY = 10, 1_000_000
TERMINAL = {"OrderCompleted", "OrderRejected", "OrderCancelled"}
LEVELS = {"menu_id", "on_hand"}  # a stock event, or a line of one, that tells an item's levels
Key = tuple[str, str]  # (store_id, menu_id)
Wire = Callable[[Sequence[r.Record], int], list[tuple[str, int | None, bytes | None, bytes]]]


def _wire() -> Wire | None:
    # Only the imported checkout's own module: for a module missing there, the editable
    # install's finder would hand out the installed checkout's.
    if not (ROOT / "eatcloud" / "runtime" / "wire.py").exists():
        return None
    try:
        from eatcloud.runtime.wire import encode_batches
    except ImportError:
        return None
    return encode_batches  # type: ignore[no-any-return]


ENCODE_BATCHES = _wire()
WIRE = "batches" if ENCODE_BATCHES else "single"


async def produce(
    producer: AIOKafkaProducer, prefix: str, records: Sequence[r.Record], partitions: int = 4
) -> None:
    """Send records as the checkout's relay does: its wire batches, else one per message."""
    sent = []
    if ENCODE_BATCHES is not None:
        for topic, partition, key, value in ENCODE_BATCHES(records, partitions):
            sent.append(await producer.send(prefix + topic, value, key=key, partition=partition))
    else:
        for record in records:
            topic, key = t.route(record)
            headers = [("event_id", record.event_id.encode())]
            value = encode(record)
            sent.append(await producer.send(prefix + topic, value, key.encode(), headers=headers))
    await asyncio.gather(*sent)


def start_workers(args: argparse.Namespace, prefix: str, data: Path) -> list[subprocess.Popen[Any]]:
    procs = []
    for n in range(args.workers):
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "EATCLOUD_WORKER__APP_ID": prefix.rstrip("-"),
            "EATCLOUD_KAFKA__TOPIC_PREFIX": prefix,
            "EATCLOUD_KAFKA__TOPIC_PARTITIONS": str(args.partitions),
            "EATCLOUD_KAFKA__BOOTSTRAP_SERVERS": args.bootstrap,
            **SAGA_ONLY_ENV,
            "EATCLOUD_WORKER__DATA_DIR": str(data / f"worker-{n}"),
        }
        argv = faust_worker_argv("eatcloud.app", "warn", "127.0.0.1", common.free_port())
        log = (data / f"worker-{n}.log").open("wb")
        options = {"cwd": ROOT, "stdout": log, "stderr": log, "start_new_session": True}
        procs.append(subprocess.Popen(argv, env=env, **options))
    return procs


def make_orders(n: int, stores: int, items: int, seed: int, tag: str) -> list[r.PlaceOrder]:
    """70 % of the orders (so of the lines) at the hot stores; 5 % of amounts ending in 13."""
    rng, hot, orders = random.Random(seed), min(HOT_STORES, stores), []
    for i in range(n):
        hot_one = hot == stores or rng.random() < 0.7
        store = f"store-{rng.randrange(hot) if hot_one else rng.randrange(hot, stores)}"
        menus = rng.sample(range(items), min(items, rng.choice((1, 1, 2, 2, 3))))
        lines = [[f"menu-{m}", rng.choice((1, 1, 2)), rng.randrange(50, 300) * 100] for m in menus]
        if rng.random() < 0.05:  # the simulated gateway declines amounts ending in 13
            lines[0][1:] = [1, lines[0][2] + 13]
        orders.append(
            r.PlaceOrder(
                order_id=f"{tag}-{i}-{uuid.uuid4().hex[:6]}",
                customer_id=f"c-{i % 500}",
                store_id="warm" if tag == "warm" else store,
                lines=tuple(r.OrderLine(menu_id=m, quantity=q, unit_price=p) for m, q, p in lines),
            )
        )
    return orders


def refusals(orders: Iterable[r.PlaceOrder], stock: dict[Key, int]) -> int:
    """Orders refused for stock if served in this order (declined ones give their units back)."""
    left, refused = dict(stock), 0
    for o in orders:
        if any(left[(o.store_id, ln.menu_id)] < ln.quantity for ln in o.lines):
            refused += 1
        elif o.total_amount % 100 != 13:
            for ln in o.lines:
                left[(o.store_id, ln.menu_id)] -= ln.quantity
    return refused


def plan_stock(orders: list[r.PlaceOrder], stores: int, items: int) -> dict[Key, int]:
    """Plenty of everything, but a third of their demand for the most wanted items, until 2 %
    of the orders would be refused."""
    stock = {(f"store-{s}", f"menu-{m}"): PLENTY for s in range(stores) for m in range(items)}
    stock |= {("warm", f"menu-{m}"): PLENTY for m in range(items)}
    demand: Counter[Key] = Counter()
    for o in orders:
        demand.update({(o.store_id, ln.menu_id): ln.quantity for ln in o.lines})
    for key, units in demand.most_common():
        if refusals(orders, stock) >= 0.02 * len(orders):
            break
        stock[key] = max(1, units // 3)
    return stock


class Observer:
    """Reads order-events (and acts as the store) and stock-events, deduplicated by event_id."""

    def __init__(self, producer: AIOKafkaProducer, prefix: str, partitions: int) -> None:
        self.producer, self.prefix, self.partitions = producer, prefix, partitions
        self.sessions: set[int] = set()  # the workers' (each leads a session)
        self.tasks: set[asyncio.Task[None]] = set()
        self.seen: set[str] = set()
        self.redelivered = 0
        self.paid_at: dict[str, float] = {}
        self.paid_ids: dict[str, set[str]] = defaultdict(set)
        self.ends: dict[str, dict[str, str]] = defaultdict(dict)  # order -> event_id -> type
        self.reasons: dict[str, str] = {}
        self.ledger: dict[Key, tuple[int, int, int]] = {}  # last known (on_hand, reserved, sold)
        self.wanted: set[str] = set()
        self.left, self.last_end, self.cpu_end = 0, 0.0, 0.0

    def fresh(self, batches: dict[Any, list[Any]]) -> list[tuple[str, dict[str, Any]]]:
        """(event_id, event) of the records, without those seen before (at least once)."""
        found = []
        for rec in (rec for records in batches.values() for rec in records):
            event = orjson.loads(rec.value)
            event_id = event.get("event_id") or dict(rec.headers).get("event_id", b"").decode()
            if event_id in self.seen:
                self.redelivered += 1
            else:
                self.seen.add(event_id)
                found.append((event_id, event))
        return found

    async def pump_orders(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
            now, answers = time.perf_counter(), []
            for event_id, event in self.fresh(batches):
                order_id, kind = event["order_id"], event["type"]
                if kind == "OrderPaid":
                    self.paid_ids[order_id].add(event_id)
                    if order_id not in self.paid_at:
                        self.paid_at[order_id] = now
                        ids = {"order_id": order_id, "store_id": event["store_id"]}
                        answers += [r.AcceptOrder(**ids), r.CompleteOrder(**ids)]
                elif kind in TERMINAL:
                    first = not self.ends[order_id]
                    self.ends[order_id][event_id] = kind
                    if kind == "OrderRejected":
                        self.reasons.setdefault(order_id, event.get("reason", "?"))
                    if first and order_id in self.wanted:
                        self.left, self.last_end = self.left - 1, now
                        if self.left == 0:
                            self.cpu_end = common.cpu_seconds(self.sessions)
            if answers:  # in the background: the store does not hold up the reading
                self.spawn(produce(self.producer, self.prefix, answers, self.partitions))

    async def pump_stock(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100, max_records=10_000)
            for _, event in self.fresh(batches):
                lines = event.get("lines")
                if not isinstance(lines, list) or not all(x.keys() >= LEVELS for x in lines):
                    lines = [event] if event.keys() >= LEVELS else []
                for x in lines:  # a StockLevelChanged, or a line of a StockLevelsChanged
                    key = (x.get("store_id", event["store_id"]), x["menu_id"])
                    self.ledger[key] = (x["on_hand"], x.get("reserved", 0), x.get("sold", 0))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(lambda d: d.cancelled() or d.exception() or self.tasks.discard(d))

    async def until(self, what: str, done: Callable[[], bool], within: float, start: float) -> None:
        """Until ``done()``; a failed task fails the run; progress every 2 s if ``start``."""
        shown = time.monotonic()
        deadline = shown + within
        while not done():
            for task in [task for task in self.tasks if task.done()]:
                task.result()
            if time.monotonic() > deadline:
                raise SystemExit(f"timed out waiting for {what}")
            if start and time.monotonic() - shown > 2:
                shown, elapsed = time.monotonic(), time.perf_counter() - start
                paid, ended = len(self.wanted & self.paid_at.keys()), len(self.wanted) - self.left
                print(f"  {elapsed:6.1f} s: {paid} paid, {ended} ended", file=sys.stderr)
            await asyncio.sleep(0.05)

    async def ended(self, wanted: Collection[str], within: float, start: float = 0) -> None:
        self.wanted = set(wanted)
        self.left = sum(1 for o in wanted if not self.ends.get(o))
        await self.until("orders to end", lambda: self.left == 0, within, start)

    async def drain_stock(self, consumer: AIOKafkaConsumer) -> None:
        """Read stock-events to their current end (after a moment for the last sends)."""
        await asyncio.sleep(1)
        deadline = time.monotonic() + 120
        for tp, end in (await consumer.end_offsets(list(consumer.assignment()))).items():
            while await consumer.position(tp) < end:
                if time.monotonic() > deadline:
                    raise SystemExit("timed out reading stock-events to their end")
                await asyncio.sleep(0.1)

    async def timeouts(self, bootstrap: str) -> int:
        """The saga ``Timeout`` commands the workers sent (to ``order-commands``): none is due
        in a run where every participant answers, so each one is a deadline that fired on a
        reply that was only queued (a stale timeout)."""
        consumer = common.consumer(bootstrap, self.prefix + t.ORDER_COMMANDS)
        await consumer.start()
        try:
            await consumer.getmany(timeout_ms=500)  # joins its partitions
            ends = await consumer.end_offsets(list(consumer.assignment()))
            await consumer.seek_to_beginning()
            found = 0
            deadline = time.monotonic() + 120
            while any([await consumer.position(tp) < end for tp, end in ends.items()]):
                if time.monotonic() > deadline:
                    raise SystemExit("timed out reading order-commands to their end")
                for records in (await consumer.getmany(timeout_ms=200)).values():
                    for rec in records:
                        found += rec.value.count(b'"type":"Timeout"')
            return found
        finally:
            await consumer.stop()

    def oversold(self, stock: dict[Key, int], orders: Iterable[r.PlaceOrder]) -> int:
        """Items whose last ledger is off, or whose paid orders took more than their stock."""
        ledger = self.ledger.items()
        bad = {k for k, (h, res, sold) in ledger if min(h, res) < 0 or sold > stock.get(k, 0)}
        taken: Counter[Key] = Counter()
        for o in orders:
            cancelled = "OrderCancelled" in self.ends[o.order_id].values()
            if o.order_id in self.paid_at and not cancelled:
                taken.update({(o.store_id, ln.menu_id): ln.quantity for ln in o.lines})
        return len(bad | {k for k, n in taken.items() if n > stock[k]})

    def duplicates(self) -> int:
        """Orders with two different terminal events, or both paid and rejected."""
        paid, ends = self.paid_at.keys(), self.ends.items()
        return sum(len(e) > 1 or (o in paid and "OrderRejected" in e.values()) for o, e in ends)


async def feed(
    producer: AIOKafkaProducer, prefix: str, args: argparse.Namespace, orders: list[r.PlaceOrder]
) -> dict[str, float]:
    """Produce the orders at once (rate 0) or at ``args.rate`` per second: when each was sent."""
    start, sent_at = time.perf_counter(), {}
    step = len(orders) if args.rate <= 0 else max(1, round(args.rate * 0.02))
    for first in range(0, len(orders), step):
        if args.rate > 0:
            await asyncio.sleep(max(0.0, start + first / args.rate - time.perf_counter()))
        chunk, now = orders[first : first + step], time.perf_counter()
        sent_at.update((o.order_id, now) for o in chunk)
        await produce(producer, prefix, chunk, args.partitions)
    return sent_at


async def run_saga(args: argparse.Namespace) -> dict[str, Any]:
    prefix = f"bench-{uuid.uuid4().hex[:8]}-"
    orders = make_orders(args.orders, args.stores, args.items, 42, "o")
    warm = make_orders(20, args.stores, args.items, 1, "warm")
    stock = plan_stock(orders, args.stores, args.items)
    await common.create_topics(
        args.bootstrap, [prefix + name for name in t.ALL], args.partitions, prefix
    )
    data = Path(tempfile.mkdtemp(prefix="eatcloud-bench-"))
    procs = start_workers(args, prefix, data)
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5, acks="all")
    orders_in = common.consumer(args.bootstrap, prefix + t.ORDER_EVENTS)
    stock_in = common.consumer(args.bootstrap, prefix + t.STOCK_EVENTS)
    obs = Observer(producer, prefix, args.partitions)
    obs.sessions = {p.pid for p in procs}
    try:
        for client in (producer, orders_in, stock_in):
            await client.start()
        obs.spawn(obs.pump_orders(orders_in))
        obs.spawn(obs.pump_stock(stock_in))
        adjust = [r.AdjustStock(store_id=s, menu_id=m, delta=q) for (s, m), q in stock.items()]
        await produce(producer, prefix, adjust, args.partitions)
        await obs.until("the stock", lambda: obs.ledger.keys() >= stock.keys(), 180, 0)
        await produce(producer, prefix, warm, args.partitions)
        await obs.ended([o.order_id for o in warm], 120)

        start, cpu_start = time.perf_counter(), common.cpu_seconds(obs.sessions)
        feeding = asyncio.create_task(feed(producer, prefix, args, orders))
        within = 600 + (args.orders / args.rate if args.rate > 0 else 0)
        await obs.ended([o.order_id for o in orders], within, start)
        sent_at = await feeding
        await obs.drain_stock(stock_in)
        paid = {o: at for o, at in obs.paid_at.items() if o in sent_at}
        latencies = sorted(at - sent_at[o] for o, at in paid.items()) or [float("nan")]
        return {
            "orders": args.orders,
            "orders_per_s": args.orders / (obs.last_end - start),
            "paid_per_s": len(paid) / (max(paid.values(), default=float("nan")) - start),
            "cpu_ms_per_order": 1000 * (obs.cpu_end - cpu_start) / args.orders,
            "p50_ms": 1000 * statistics.median(latencies),
            "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
            "max_ms": 1000 * latencies[-1],
            "oversold": obs.oversold(stock, [*warm, *orders]),
            "duplicates": obs.duplicates(),
            "timeouts": await obs.timeouts(args.bootstrap),
            "paid": len(paid),
            "double_paid": sum(1 for ids in obs.paid_ids.values() if len(ids) > 1),
            "redelivered": obs.redelivered,
            "reasons": Counter(obs.reasons.get(o.order_id, "") for o in orders),
            "scarce_items": sum(1 for q in stock.values() if q < PLENTY),
            "produce_s": max(sent_at.values()) - start,
            "cpu_s": obs.cpu_end - cpu_start,
            "measured_s": obs.last_end - start,
        }
    except BaseException:
        common.print_logs(data)
        raise
    finally:
        for task in obs.tasks:
            task.cancel()
        for client in (orders_in, stock_in, producer):
            await client.stop()
        common.stop(procs)
        shutil.rmtree(data, ignore_errors=True)
        # the workers' own topics too: their app id is the prefix
        await common.drop_topics(args.bootstrap, prefix)


def report(args: argparse.Namespace, s: dict[str, Any], pipe: float, commit: str) -> None:
    n, reasons = args.orders, s.pop("reasons")
    reasons.pop("", None)  # not rejected
    refused, declined = reasons.pop("out_of_stock", 0), reasons.pop("card_declined", 0)
    print(
        f"saga: {s['orders_per_s']:.0f} orders/s to a terminal state, {s['paid_per_s']:.0f}/s to"
        f" PAID; {s['paid']} paid, {refused} out of stock ({100 * refused / n:.1f} %, "
        f"{s['scarce_items']} scarce items), {declined} declined ({100 * declined / n:.1f} %)"
        + (f", other rejections: {dict(reasons)}" if reasons else "")
    )
    print(
        f"      command -> PAID: p50 {s['p50_ms']:.0f} ms, p99 {s['p99_ms']:.0f} ms, max "
        f"{s['max_ms']:.0f} ms; the commands were produced in {s['produce_s']:.2f} s"
    )
    print(
        f"      workers' CPU: {s['cpu_ms_per_order']:.2f} ms/order ({s['cpu_s']:.1f} s in "
        f"{s['measured_s']:.1f} s); oversold items: {s['oversold']}; orders ended twice: "
        f"{s['duplicates']}, paid twice: {s['double_paid']}; redelivered: {s['redelivered']}; "
        f"saga timeouts sent: {s['timeouts']}"
    )
    ratio = s["orders_per_s"] / (pipe / 8)
    print(f"pipe: {pipe:.0f} msgs/s raw aiokafka consume->produce (decode + encode each)")
    print(f"ratio: orders/s / (pipe msgs/s / 8) = {ratio:.3f}")
    result = {k: round(v, 2) for k, v in s.items()} | {"pipe_msgs_per_s": round(pipe)}
    result |= dict(ratio=round(ratio, 3), refused=refused, declined=declined, rate=args.rate)
    result |= dict(workers=args.workers, partitions=args.partitions, stores=args.stores)
    result |= dict(items=args.items, commit=commit, wire=WIRE)
    print(orjson.dumps(result).decode(), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=5_000)
    parser.add_argument("--rate", type=float, default=0, help="orders/s (0: all at once, a burst)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--stores", type=int, default=200)
    parser.add_argument("--items", type=int, default=20, help="menu items per store")
    bootstrap = os.environ.get("EATCLOUD_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    parser.add_argument("--bootstrap", default=bootstrap)
    args = parser.parse_args()
    git = ["git", "-C", str(ROOT), "describe", "--always", "--dirty"]
    commit = subprocess.run(git, capture_output=True, text=True).stdout.strip() or "?"
    wire = "eatcloud.runtime.wire.encode_batches" if ENCODE_BATCHES else "one record per message"
    print(f"eatcloud: {eatcloud.__file__} ({commit}); wire: {wire}")
    mode = "as one burst" if args.rate <= 0 else f"at {args.rate:g}/s"
    print(
        f"machine: {os.cpu_count()} cores; broker {args.bootstrap}; {args.workers} worker(s), "
        f"{args.partitions} partitions; {args.stores} stores x {args.items} items; "
        f"{args.orders} orders produced {mode}"
    )
    saga = asyncio.run(run_saga(args))
    payload = encode(make_orders(1, 1, 3, 3, "pipe")[0])
    messages = max(20_000, 10 * args.orders)
    pipe = asyncio.run(common.run_pipe(messages, args.bootstrap, args.partitions, payload))
    report(args, saga, pipe, commit)


if __name__ == "__main__":
    main()
