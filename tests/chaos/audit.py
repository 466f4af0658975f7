"""What a chaos test checks once the dust settles: every order ended once, the stores' stock
ledgers are exact and the payment gateway charged only what was kept.

Reads what a ``Bus`` has seen. At-least-once: a copy of an event (same ``event_id``) may come
again and counts once; two events of different ids for one order's outcome are a fault.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from eatcloud.payments.gateway import journal_entries
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from tests.integration.saga_harness import TERMINAL, Bus

DECIDED = {"OrderPaid", "OrderRejected"}


def stores_on_every_partition(partitions: int) -> list[str]:
    """A store id for each partition of ``order-commands``, in partition order: a burst for
    them keeps every partition (and so every worker of a group) busy."""
    found: dict[int, str] = {}
    n = 0
    while len(found) < partitions:
        found.setdefault(t.partition_for(f"store-{n}".encode(), partitions), f"store-{n}")
        n += 1
    return [found[p] for p in range(partitions)]


@dataclass
class Orders:
    """The order events seen for ``ids``: per order, each distinct event (by id) and its type."""

    ids: set[str]
    events: dict[str, dict[str, str]] = field(default_factory=lambda: defaultdict(dict))

    @classmethod
    def seen_by(cls, bus: Bus, ids: Iterable[str]) -> Orders:
        orders = cls(set(ids))
        for event in bus.seen[t.ORDER_EVENTS]:
            if event.get("order_id") in orders.ids:
                orders.events[event["order_id"]][event["event_id"]] = event["type"]
        return orders

    def with_type(self, kind: str) -> set[str]:
        return {o for o, events in self.events.items() if kind in events.values()}

    def check_each_ended_once(self) -> None:
        """One decision (paid or rejected) and one terminal event per order, by id."""
        for order_id in self.ids:
            kinds = Counter(self.events.get(order_id, {}).values())
            decided = sum(kinds[k] for k in DECIDED)
            ended = sum(kinds[k] for k in TERMINAL)
            assert decided == 1, f"{order_id}: {decided} decisions: {dict(kinds)}"
            assert ended == 1, f"{order_id}: {ended} terminal events: {dict(kinds)}"


async def complete(bus: Bus, store_of: dict[str, str], order_ids: Iterable[str]) -> None:
    """The stores accept and complete these (paid) orders."""
    commands: list[r.Record] = []
    for order_id in order_ids:
        store = store_of[order_id]
        commands += [
            r.AcceptOrder(order_id=order_id, store_id=store),
            r.CompleteOrder(order_id=order_id, store_id=store),
        ]
    await bus.send(*commands)


async def check_ledger(bus: Bus, store: str, menu: str, baseline: int, sold: int) -> None:
    """Nothing held, nothing oversold, and the units conserved: on hand + sold = baseline."""
    ledger = await bus.ledger(store, menu)
    levels = {k: ledger[k] for k in ("on_hand", "reserved", "sold")}
    assert levels == {"on_hand": baseline - sold, "reserved": 0, "sold": sold}, (store, levels)


def check_gateway(journal: Path, completed: set[str]) -> None:
    """Every call the gateway received, repeats included: within one worker process (a run)
    the payment agent asked at most once per order to authorize (its payment record answers
    a repeated command); across runs the gateway answered every later ask as a repeat, so no
    order was authorized twice; every approved charge was undone unless the order completed."""
    asked: Counter[tuple[object, str]] = Counter()  # (worker process, order): authorize calls
    fresh: Counter[str] = Counter()
    approved: set[str] = set()
    undone: set[str] = set()
    for call in journal_entries(journal):
        order_id = str(call["order_id"])
        if call["op"] == "authorize":
            asked[call["pid"], order_id] += 1
            fresh[order_id] += not call["repeat"]
            if call.get("approved"):
                approved.add(order_id)
        elif call["op"] in {"void", "refund"}:
            undone.add(order_id)
    again = sorted(key for key, n in asked.items() if n > 1)
    assert not again, f"the payment agent asked twice in one run (pid, order): {again[:10]}"
    twice = sorted(o for o, n in fresh.items() if n > 1)
    assert not twice, f"authorized twice at the gateway: {twice[:10]}"
    kept = approved - undone
    assert kept == completed, (sorted(kept - completed)[:10], sorted(completed - kept)[:10])
