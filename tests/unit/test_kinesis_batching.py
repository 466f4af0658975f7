"""PutRecords calls stay within Kinesis's limits and never carry two records of one key."""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Any

import pytest

from eatcloud.errors import InfrastructureError
from eatcloud.kinesis import forwarder as f


def queues(entries: list[f.Entry]) -> OrderedDict[str, deque[f.Entry]]:
    out: OrderedDict[str, deque[f.Entry]] = OrderedDict()
    for entry in entries:
        out.setdefault(entry.partition_key, deque()).append(entry)
    return out


def test_a_call_holds_at_most_500_records() -> None:
    call = f.next_call(queues([f.Entry(f"k{i}", b"x") for i in range(1_200)]))
    assert len(call) == 500


def test_a_call_holds_at_most_5_mib() -> None:
    big = [f.Entry(f"k{i}", b"x" * 100_000) for i in range(200)]
    call = f.next_call(queues(big))
    assert sum(e.size for e in call) <= f.MAX_CALL_BYTES
    assert len(call) == f.MAX_CALL_BYTES // big[0].size


def test_a_call_holds_one_record_per_key_the_oldest() -> None:
    entries = [f.Entry(k, f"{k}-{n}".encode()) for n in range(3) for k in ("a", "b")]
    assert [e.data for e in f.next_call(queues(entries))] == [b"a-0", b"b-0"]


class FakeKinesis:
    """A put_records that refuses what ``refuse`` says (pure logic under test, no I/O)."""

    def __init__(self, refuse: Any) -> None:
        self.refuse, self.calls, self.stored = refuse, [], []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        self.calls.append([r["Data"] for r in Records])
        results = []
        for record in Records:
            if self.refuse(record, len(self.calls)):
                results.append({"ErrorCode": "ProvisionedThroughputExceededException"})
            else:
                self.stored.append(record["Data"])
                results.append({"SequenceNumber": str(len(self.stored)), "ShardId": "s"})
        return {
            "FailedRecordCount": sum(1 for r in results if "ErrorCode" in r),
            "Records": results,
        }


async def test_oversized_records_are_skipped_and_the_rest_is_put() -> None:
    fake = FakeKinesis(lambda record, call: False)
    forwarder = f.KinesisForwarder(fake, "s", base_backoff=0)
    await forwarder.put([f.Entry("a", b"x" * (f.MAX_RECORD_BYTES + 1)), f.Entry("b", b"ok")])
    assert fake.stored == [b"ok"] and forwarder.stats.oversized == 1


async def test_a_key_that_keeps_failing_gives_up_with_an_infrastructure_error() -> None:
    fake = FakeKinesis(lambda record, call: record["PartitionKey"] == "stuck")
    forwarder = f.KinesisForwarder(fake, "s", max_attempts=3, base_backoff=0)
    with pytest.raises(InfrastructureError, match="still failing"):
        await forwarder.put([f.Entry("ok", b"1"), f.Entry("stuck", b"2")])
    assert fake.stored == [b"1"]
