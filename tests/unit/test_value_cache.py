"""The runtime's cache of decoded table values: bounded, the least recently written out first."""

from __future__ import annotations

from typing import Any

from eatcloud.domain.payment import Payment, PaymentStatus
from eatcloud.runtime.adapter import Runtime
from eatcloud.tables import RecordTable
from tests.unit.test_backlog_time import _App, _Consumer


class _Store:
    """The table's store: what a read that misses the cache finds (and how often it looked)."""

    def __init__(self) -> None:
        self.reads: list[str] = []

    def read(self, key: str, partition: int) -> bytes | None:
        self.reads.append(key)
        return None


def _runtime(cached: int) -> tuple[Runtime, RecordTable[Payment], _Store]:
    runtime = Runtime(
        _App(_Consumer(None, None)), prefix="p-", partitions=4, batch=10, within=0.01,
        cached=cached,
    )  # fmt: skip
    table: RecordTable[Payment] = RecordTable("payments", None, Payment)
    store = _Store()
    runtime.tables["payments"] = store  # type: ignore[assignment]  # only ``read`` is used
    return runtime, table, store


def _paid(amount: int) -> Payment:
    return Payment(status=PaymentStatus.AUTHORIZED, amount=amount)


def test_the_value_written_longest_ago_leaves_first() -> None:
    runtime, table, store = _runtime(cached=2)
    for key, amount in (("a", 1), ("b", 2)):
        runtime.remember(table, key, _paid(amount))
    runtime.remember(table, "a", _paid(10))  # rewritten: now the newest
    runtime.remember(table, "c", _paid(3))  # full: "b" goes

    found: dict[str, Any] = {key: runtime.read(table, key, 0) for key in ("a", "b", "c")}

    assert found == {"a": _paid(10), "b": None, "c": _paid(3)}
    assert store.reads == ["b"]


def test_a_cache_of_size_zero_keeps_nothing() -> None:
    runtime, table, store = _runtime(cached=0)
    runtime.remember(table, "a", _paid(1))

    assert runtime.read(table, "a", 0) is None
    assert store.reads == ["a"]
