"""Per-store figures from the order events on the analytics stream (pure: no I/O).

For each store, over the events seen:
- ``orders``: orders placed; ``orders_per_minute``: placed orders per minute over the last
  ``window`` seconds of event time;
- ``revenue``: final amounts of the orders completed (what the store earned);
- ``average_basket``: the mean final amount of the orders placed;
- ``cancellation_rate`` / ``rejection_rate``: cancelled / rejected orders over the orders that
  ended (completed, cancelled or rejected);
- ``p50_to_accepted``: the median seconds from placed to accepted.
Events are deduplicated by ``event_id``: the stream is at-least-once.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any


@dataclass
class StoreFigures:
    store_id: str
    placed: list[float] = field(default_factory=list)  # event times of OrderPlaced
    baskets: list[int] = field(default_factory=list)
    revenue: int = 0
    completed: int = 0
    cancelled: int = 0
    rejected: int = 0
    to_accepted: list[float] = field(default_factory=list)

    @property
    def orders(self) -> int:
        return len(self.placed)

    @property
    def ended(self) -> int:
        return self.completed + self.cancelled + self.rejected

    def orders_per_minute(self, now: float, window: float = 60.0) -> float:
        return sum(1 for t in self.placed if now - window < t <= now) * 60.0 / window

    @property
    def average_basket(self) -> float | None:
        return statistics.fmean(self.baskets) if self.baskets else None

    @property
    def cancellation_rate(self) -> float | None:
        return self.cancelled / self.ended if self.ended else None

    @property
    def rejection_rate(self) -> float | None:
        return self.rejected / self.ended if self.ended else None

    @property
    def p50_to_accepted(self) -> float | None:
        return statistics.median(self.to_accepted) if self.to_accepted else None


class Analytics:
    """Feed it the stream's records (``{"topic", "event", "headers"}``), shards in any order."""

    def __init__(self) -> None:
        self.stores: dict[str, StoreFigures] = {}
        self.latest = 0.0  # the newest event time seen
        self._seen: set[str] = set()
        self._orders: dict[str, dict[str, Any]] = {}
        self.timeline: dict[str, list[tuple[float, int]]] = defaultdict(list)  # completions

    def feed(self, record: dict[str, Any]) -> None:
        if record.get("topic") != "order-events":
            return
        event = record["event"]
        if event["event_id"] in self._seen:
            return
        self._seen.add(event["event_id"])
        kind, at, order_id = event["type"], float(event["occurred_at"]), event["order_id"]
        self.latest = max(self.latest, at)
        store = self.stores.setdefault(event["store_id"], StoreFigures(event["store_id"]))
        order = self._orders.setdefault(order_id, {})
        if kind == "OrderPlaced":
            store.placed.append(at)
            store.baskets.append(int(event["final_amount"]))
            order.update(placed=at, amount=int(event["final_amount"]))
        elif kind == "OrderAccepted" and "placed" in order:
            # One order's events share a partition key, so one shard, in order.
            store.to_accepted.append(at - order["placed"])
        elif kind == "OrderCompleted":
            store.completed += 1
            amount = order.get("amount", 0)
            store.revenue += amount
            self.timeline[store.store_id].append((at, amount))
        elif kind == "OrderCancelled":
            store.cancelled += 1
        elif kind == "OrderRejected":
            store.rejected += 1
