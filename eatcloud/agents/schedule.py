"""What is due when, for the timers: one deadline per key, in a heap pruned lazily.

The saga timer keeps the deadlines of the sagas a worker owns, the stock timer the expiry of
the reservations it holds. Both are fed by their agent as state changes and rebuilt from
their table after each rebalance (``stale``), since partitions may have moved.
"""

from __future__ import annotations

import heapq
import itertools
from typing import Any, Generic, TypeVar

K = TypeVar("K")
P = TypeVar("P")


class Schedule(Generic[K, P]):
    """``key -> (at, payload)``; a key set again replaces its older deadline in O(log n)."""

    def __init__(self) -> None:
        self._current: dict[K, tuple[float, P]] = {}
        self.heap: list[tuple[float, int, K]] = []
        self._order = itertools.count()  # ties never compare keys
        self.stale = True

    def set(self, key: K, at: float, payload: P) -> None:
        self._current[key] = (at, payload)
        heapq.heappush(self.heap, (at, next(self._order), key))

    def cancel(self, key: K) -> None:
        self._current.pop(key, None)

    def clear(self) -> None:
        self._current.clear()
        self.heap.clear()
        self.stale = False

    def pop_passed(self, now: float) -> list[tuple[K, P, float]]:
        """Every key whose current deadline has passed, once, oldest first."""
        passed = []
        while self.heap and self.heap[0][0] <= now:
            at, _, key = heapq.heappop(self.heap)
            current = self._current.get(key)
            if current is not None and current[0] == at:
                del self._current[key]
                passed.append((key, current[1], at))
        return passed

    def watch(self, app: Any) -> None:
        """Mark the schedule stale whenever this worker is assigned partitions."""

        async def on_assigned(*_: Any, **__: Any) -> None:
            self.stale = True

        app.on_partitions_assigned.connect(on_assigned)


def timers_may_run(app: Any) -> bool:
    """Timers read tables: not while a rebalance or a table recovery is under way."""
    return not app.rebalancing and bool(app.tables.recovery.completed.is_set())
