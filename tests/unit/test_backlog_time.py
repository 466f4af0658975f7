"""How far a worker has read a partition, for the saga timer (``Runtime.backlog_time``)."""

from __future__ import annotations

import time
from typing import Any

from faust.types import TP

from eatcloud.runtime.adapter import Runtime


class _Signal:
    def connect(self, receiver: Any) -> None:
        pass


class _Consumer:
    def __init__(self, highwater: int | None, committed: int | None) -> None:
        self._highwater = highwater
        self._committed_offset = {TP("p-saga-replies", 0): committed}

    def highwater(self, tp: TP) -> int | None:
        return self._highwater


class _App:
    def __init__(self, consumer: _Consumer) -> None:
        self.consumer = consumer
        self.on_partitions_revoked = _Signal()
        self.on_partitions_assigned = _Signal()


def runtime(highwater: int | None, committed: int | None) -> Runtime:
    app = _App(_Consumer(highwater, committed))
    return Runtime(app, prefix="p-", partitions=4, batch=10, within=0.01, cached=10)


def test_a_partition_read_to_its_end_since_the_rebalance_is_caught_up() -> None:
    """No record came since the partition was assigned and none waits: deadlines may fire
    (a reply that never comes must still time out)."""
    before = time.time()
    assert runtime(highwater=7, committed=7).backlog_time("saga-replies", 0) >= before
    assert runtime(highwater=0, committed=None).backlog_time("saga-replies", 0) >= before


def test_records_waiting_past_the_committed_offset_hold_the_deadlines_back() -> None:
    assert runtime(highwater=9, committed=7).backlog_time("saga-replies", 0) == 0.0


def test_after_processing_it_is_the_time_of_the_last_record_until_the_end_is_reached() -> None:
    rt = runtime(highwater=9, committed=0)
    rt.position[("saga-replies", 0)] = (5, 1_700_000_000_000)  # offset, timestamp in ms
    assert rt.backlog_time("saga-replies", 0) == 1_700_000_000.0
    rt.position[("saga-replies", 0)] = (8, 1_700_000_001_000)
    assert rt.backlog_time("saga-replies", 0) >= time.time() - 1
