"""Run the real EatCloud worker on the real broker with topics of its own, and talk to it."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from eatcloud.agents import SAGA_ONLY_ENV, stock
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import encode
from tests.integration.workers import WorkerProcess, free_port
from tests.integration.workers import unique_prefix as unique_prefix  # re-exported for tests

TERMINAL = {"OrderCompleted", "OrderCancelled", "OrderRejected"}


def saga_worker(
    tmp_path: Path, bootstrap: str, prefix: str, name: str = "worker", **env: str
) -> WorkerProcess:
    """A worker of ``eatcloud.app`` with its own app id, topic prefix, data folder and port."""
    return WorkerProcess(
        "eatcloud.app",
        {
            "EATCLOUD_WORKER__APP_ID": prefix.rstrip("-"),
            "EATCLOUD_KAFKA__TOPIC_PREFIX": prefix,
            "EATCLOUD_WORKER__DATA_DIR": str(tmp_path / f"{name}-data"),
            "EATCLOUD_WORKER__WEB_PORT": str(free_port()),
            "EATCLOUD_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
            **SAGA_ONLY_ENV,
            **env,
        },
        tmp_path / f"{name}.log",
    )


def order(
    store: str = "store-1",
    lines: Iterable[tuple[str, int, int]] = (("menu-1", 1, 10_000),),
    customer: str = "customer-1",
    points: int = 0,
    order_id: str | None = None,
) -> r.PlaceOrder:
    return r.PlaceOrder(
        order_id=order_id or f"order-{uuid.uuid4().hex[:12]}",
        customer_id=customer,
        store_id=store,
        lines=tuple(r.OrderLine(menu_id=m, quantity=q, unit_price=p) for m, q, p in lines),
        points=points,
    )


@dataclass
class Bus:
    """Sends records to the worker's topics and reads what it writes back."""

    bootstrap: str
    prefix: str
    producer: AIOKafkaProducer | None = None
    seen: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    consumers: dict[str, AIOKafkaConsumer] = field(default_factory=dict)

    async def start(self) -> None:
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, linger_ms=2, acks="all")
        await self.producer.start()

    async def stop(self) -> None:
        if self.producer is not None:
            await self.producer.stop()
        for consumer in self.consumers.values():
            await consumer.stop()

    async def send(self, *records: r.Record, raw: bytes | None = None, topic: str = "") -> None:
        assert self.producer is not None
        futures = []
        for record in records:
            name, key = t.route(record)
            futures.append(
                await self.producer.send(
                    self.prefix + name,
                    encode(record),
                    key=key.encode(),
                    headers=[("event_id", record.event_id.encode())],
                )
            )
        if raw is not None:
            futures.append(await self.producer.send(self.prefix + topic, raw, key=b"poison"))
        await asyncio.gather(*futures)

    async def _poll(self, topic: str) -> list[dict[str, Any]]:
        name = self.prefix + topic
        consumer = self.consumers.get(name)
        if consumer is None:
            consumer = AIOKafkaConsumer(
                name,
                bootstrap_servers=self.bootstrap,
                auto_offset_reset="earliest",
                enable_auto_commit=False,
                metadata_max_age_ms=1000,
            )
            await consumer.start()
            self.consumers[name] = consumer
        batches = await consumer.getmany(timeout_ms=300, max_records=10_000)
        for records in batches.values():
            for rec in records:
                try:
                    value = orjson.loads(rec.value or b"null")
                except orjson.JSONDecodeError:
                    value = None
                value = value if isinstance(value, dict) else {}
                if value.get("type") == "Batch":  # the saga's own topics carry batches
                    for item in value["items"]:
                        message = item["v"]
                        raw = orjson.dumps(message)
                        message["_headers"] = {"event_id": message["event_id"], **item["h"]}
                        message["_raw"] = raw
                        self.seen[topic].append(message)
                    continue
                headers = {k: v.decode() for k, v in rec.headers or ()}
                if value.get("type") == "StockLevelsChanged":  # one line each, as readers see
                    lines = r.stock_lines([r.StockLevelsChanged.model_validate(value)])
                    for line in lines:
                        line_value = line.model_dump(mode="json")
                        line_value.update(_headers=headers, _raw=rec.value)
                        self.seen[topic].append(line_value)
                    continue
                value["_headers"] = headers
                value["_raw"] = rec.value
                self.seen[topic].append(value)
        return self.seen[topic]

    async def wait(
        self, topic: str, until: Callable[[list[dict[str, Any]]], bool], within: float = 60
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + within
        while True:
            values = await self._poll(topic)
            if until(values):
                return values
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{topic}: condition not met within {within:.0f} s; "
                    f"last 5 of {len(values)}: {[_brief(v) for v in values[-5:]]}"
                )

    async def history(self, order_ids: Iterable[str], within: float = 60) -> dict[str, list[str]]:
        """Wait until each order has a terminal event; its event types, in order."""
        wanted = set(order_ids)

        def done(values: list[dict[str, Any]]) -> bool:
            ended = {v["order_id"] for v in values if v.get("type") in TERMINAL}
            return wanted <= ended

        values = await self.wait(t.ORDER_EVENTS, done, within)
        by_order: dict[str, list[str]] = defaultdict(list)
        for value in values:
            if value.get("order_id") in wanted:
                by_order[value["order_id"]].append(value["type"])
        return dict(by_order)

    async def outcomes(
        self, order_ids: Iterable[str], ends: set[str], within: float = 60
    ) -> dict[str, dict[str, Any]]:
        """Wait until each order has one of the ``ends`` events; that event per order."""
        wanted = set(order_ids)

        def reached(values: list[dict[str, Any]]) -> bool:
            return wanted <= {v["order_id"] for v in values if v.get("type") in ends}

        values = await self.wait(t.ORDER_EVENTS, reached, within)
        found: dict[str, dict[str, Any]] = {}
        for value in values:
            if value.get("type") in ends and value.get("order_id") in wanted:
                found.setdefault(value["order_id"], value)
        return found

    async def adjust(self, *adjustments: r.AdjustStock, within: float = 30) -> None:
        """Send stock adjustments and wait until the saga's agent applied them: orders for
        the store travel on another topic (``order-commands``), so one sent right after could
        otherwise be decided first, against an empty shelf."""
        await self.send(*adjustments)
        applied = {_line(a, 0) for a in adjustments}
        await self.wait(
            t.STOCK_EVENTS, lambda vs: applied <= {v.get("event_id") for v in vs}, within
        )

    async def ledger(self, store_id: str, menu_id: str, within: float = 30) -> dict[str, Any]:
        """The item's ledger as the stock agent holds it now (read back through a 0 adjust)."""
        probe = r.AdjustStock(store_id=store_id, menu_id=menu_id, delta=0, reason="probe")
        await self.send(probe)
        answer = _line(probe, 0)
        values = await self.wait(
            t.STOCK_EVENTS, lambda vs: any(v.get("event_id") == answer for v in vs), within
        )
        return next(v for v in values if v.get("event_id") == answer)

    async def wait_for(self, order_id: str, event_type: str, within: float = 60) -> dict[str, Any]:
        values = await self.wait(
            t.ORDER_EVENTS,
            lambda vs: any(v.get("order_id") == order_id and v["type"] == event_type for v in vs),
            within,
        )
        return next(v for v in values if v.get("order_id") == order_id and v["type"] == event_type)


def _line(command: r.Record, n: int) -> str:
    """The id of the ``n``-th line of the stock event a stock command causes."""
    return r.line_id(stock.levels_id(command.event_id), n)


def _brief(value: dict[str, Any]) -> str:
    return f"{value.get('type')}({value.get('order_id') or value.get('menu_id')})"
