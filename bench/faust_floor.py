"""The floor of the saga's topology: the same hops and messages per order, with no domain code.

    .venv/bin/python bench/faust_floor.py [--orders 8000] [--tables]

Runs a Faust worker (built by ``eatcloud.bootstrap.make_faust_app``, so with the same
settings and patches as the real one) whose agents pass tiny JSON messages along exactly the
path an order takes through the saga, without pydantic, the domain or the ledgers:

    PlaceOrder -> orchestrator -> ReserveStock -> stock -> StockReserved -> orchestrator
    -> AuthorizePayment -> payment -> PaymentAuthorized -> orchestrator -> CommitStock -> stock
    -> StockCommitted -> orchestrator -> OrderPaid;  AcceptOrder, CompleteOrder -> orchestrator

with the same outputs (4 order events, 2 stock events per stock step) and, with ``--tables``,
the same table writes (one per orchestrator step, two per stock step, one per payment). The
orders/s it reaches is what Faust allows this topology on this machine before any of our code
runs: the ceiling the real saga is measured against in docs/benchmarks.md.
"""

from __future__ import annotations

import os
from typing import Any

import orjson

if os.environ.get("FLOOR_PREFIX"):  # imported by `faust -A faust_floor worker`: the app
    from eatcloud.bootstrap import make_faust_app
    from eatcloud.settings import get_settings

    P = os.environ["FLOOR_PREFIX"]
    TABLES = os.environ.get("FLOOR_TABLES") == "1"
    TAKE = int(os.environ.get("FLOOR_TAKE", "0"))

    async def values(stream: Any) -> Any:
        """Each value, from a plain loop or, with FLOOR_TAKE=n, from ``take(n)`` batches."""
        if not TAKE:
            async for value in stream:
                yield value
            return
        async for batch in stream.take(TAKE, within=0.005):
            for value in batch:
                yield value

    app = make_faust_app(get_settings())

    def _topic(name: str) -> Any:
        return app.topic(
            P + name, key_type=bytes, value_type=bytes, key_serializer="raw", value_serializer="raw"
        )

    inbox = app.topic(
        P + "order-commands",
        P + "saga-replies",
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
    )
    stock_commands, payment_commands = _topic("stock-commands"), _topic("payment-commands")
    replies, order_events = _topic("saga-replies"), _topic("order-events")
    stock_events = _topic("stock-events")
    sagas = app.Table(P + "sagas", key_type=str, value_type=bytes)
    stock = app.Table(P + "stock", key_type=str, value_type=bytes)
    payments = app.Table(P + "payments", key_type=str, value_type=bytes)

    NEXT = {
        "PlaceOrder": "ReserveStock",
        "StockReserved": "AuthorizePayment",
        "PaymentAuthorized": "CommitStock",
    }
    EVENTS = {
        "PlaceOrder": "OrderPlaced",
        "StockCommitted": "OrderPaid",
        "AcceptOrder": "OrderAccepted",
        "CompleteOrder": "OrderCompleted",
    }

    @app.agent(inbox)
    async def orchestrator(stream: Any) -> None:
        async for value in values(stream):
            msg = orjson.loads(value)
            order_id, kind = msg["order_id"], msg["type"]
            if TABLES:
                old = sagas.get(order_id)
                state = orjson.loads(old) if old else {"order": msg}
                state["step"] = kind
                sagas[order_id] = orjson.dumps(state)
            out = {**msg, "type": NEXT.get(kind, "")}
            if out["type"] == "AuthorizePayment":
                await payment_commands.send(key=order_id.encode(), value=orjson.dumps(out))
            elif out["type"]:
                await stock_commands.send(key=msg["store_id"].encode(), value=orjson.dumps(out))
            if kind in EVENTS:
                event = orjson.dumps({**msg, "type": EVENTS[kind]})
                await order_events.send(key=order_id.encode(), value=event)

    @app.agent(stock_commands)
    async def stock_agent(stream: Any) -> None:
        async for value in values(stream):
            msg = orjson.loads(value)
            if TABLES:
                ledger = stock.get("ledger/" + msg["store_id"])
                stock["ledger/" + msg["store_id"]] = ledger or b'{"items": {}}'
                stock["order/" + msg["order_id"]] = value
            done = "StockReserved" if msg["type"] == "ReserveStock" else "StockCommitted"
            for _ in range(2):
                await stock_events.send(key=msg["store_id"].encode(), value=value)
            reply = orjson.dumps({**msg, "type": done})
            await replies.send(key=msg["order_id"].encode(), value=reply)

    @app.agent(payment_commands)
    async def payment_agent(stream: Any) -> None:
        async for value in values(stream):
            msg = orjson.loads(value)
            if TABLES:
                payments[msg["order_id"]] = value
            reply = orjson.dumps({**msg, "type": "PaymentAuthorized"})
            await replies.send(key=msg["order_id"].encode(), value=reply)


if __name__ == "__main__":
    import argparse
    import asyncio
    import shutil
    import signal
    import socket
    import subprocess
    import tempfile
    import time
    import uuid
    from pathlib import Path

    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    from eatcloud.cli import faust_worker_argv

    HERE = Path(__file__).resolve().parent
    TOPICS = (
        "order-commands",
        "saga-replies",
        "stock-commands",
        "payment-commands",
        "order-events",
        "stock-events",
    )

    async def run(args: argparse.Namespace) -> None:
        prefix = f"floor-{uuid.uuid4().hex[:8]}-"
        admin = AIOKafkaAdminClient(bootstrap_servers=args.bootstrap)
        await admin.start()
        await admin.create_topics([NewTopic(prefix + n, args.partitions, 1) for n in TOPICS])
        await admin.close()
        data = Path(tempfile.mkdtemp(prefix="eatcloud-floor-"))
        env = {
            **os.environ,
            "PYTHONPATH": f"{HERE}:{HERE.parent}",
            "FLOOR_PREFIX": prefix,
            "FLOOR_TABLES": "1" if args.tables else "0",
            "FLOOR_TAKE": str(args.take),
            "EATCLOUD_WORKER__APP_ID": prefix.rstrip("-"),
            "EATCLOUD_WORKER__DATA_DIR": str(data),
            "EATCLOUD_KAFKA__BOOTSTRAP_SERVERS": args.bootstrap,
        }
        proc = start_worker(env, data)
        producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5)
        consumer = AIOKafkaConsumer(
            prefix + "order-events", bootstrap_servers=args.bootstrap, auto_offset_reset="earliest"
        )
        await producer.start()
        await consumer.start()
        try:

            async def place(ids: list[str]) -> None:
                futures = [
                    await producer.send(
                        prefix + "order-commands",
                        key=i.encode(),
                        value=orjson.dumps(
                            {
                                "type": "PlaceOrder",
                                "order_id": i,
                                "store_id": f"store-{hash(i) % 8}",
                                "lines": [1, 2],
                            }
                        ),
                    )
                    for i in ids
                ]
                await asyncio.gather(*futures)

            async def until_done(ids: set[str], timed: bool) -> float:
                paid: set[str] = set()
                completed: set[str] = set()
                start = time.perf_counter()
                last_paid = start
                while completed < ids:
                    batches = await consumer.getmany(timeout_ms=200, max_records=10_000)
                    answers = []
                    for recs in batches.values():
                        for rec in recs:
                            event = orjson.loads(rec.value)
                            if event["order_id"] not in ids:
                                continue
                            if event["type"] == "OrderPaid":
                                paid.add(event["order_id"])
                                last_paid = time.perf_counter()
                                for kind in ("AcceptOrder", "CompleteOrder"):
                                    answers.append(
                                        await producer.send(
                                            prefix + "order-commands",
                                            key=rec.key,
                                            value=orjson.dumps({**event, "type": kind}),
                                        )
                                    )
                            elif event["type"] == "OrderCompleted":
                                completed.add(event["order_id"])
                    await asyncio.gather(*answers)
                    if timed and time.perf_counter() - start > 600:
                        raise SystemExit("floor: orders did not complete in 600 s")
                return len(paid) / (last_paid - start)

            warm = [f"warm-{n}" for n in range(20)]
            await place(warm)
            await until_done(set(warm), False)
            ids = [f"o-{n}-{uuid.uuid4().hex[:6]}" for n in range(args.orders)]
            placing = asyncio.create_task(place(ids))
            rate = await until_done(set(ids), True)
            await placing
            mode = "one table write per step" if args.tables else "no tables"
            mode += f", take({args.take}) batches" if args.take else ""
            print(
                f"floor ({mode}): {rate:.0f} orders/s to PAID through the saga's 9 hops "
                f"({args.orders} orders, {args.partitions} partitions, 1 worker)"
            )
        finally:
            await consumer.stop()
            await producer.stop()
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
            shutil.rmtree(data, ignore_errors=True)

    def start_worker(env: dict[str, str], data: Path) -> subprocess.Popen[bytes]:
        argv = faust_worker_argv("faust_floor", "warn", "127.0.0.1", free_port())
        log = (data / "worker.log").open("wb")
        return subprocess.Popen(
            argv, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def free_port() -> int:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            return int(sock.getsockname()[1])

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=8_000)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--tables", action="store_true", help="write the tables as the saga does")
    parser.add_argument("--take", type=int, default=0, help="agents read take(n) batches")
    parser.add_argument(
        "--bootstrap", default=os.environ.get("EATCLOUD_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    )
    asyncio.run(run(parser.parse_args()))
