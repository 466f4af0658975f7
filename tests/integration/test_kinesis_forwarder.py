"""The forwarder against the Kinesis emulator (moto's server): every record once, in order per
key, and a partial failure retried for exactly the failed entries."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict
from typing import Any

import orjson

from eatcloud.kinesis.forwarder import Entry, KinesisForwarder
from eatcloud.kinesis.streams import kinesis_client
from eatcloud.settings import Settings


def new_stream(client: Any, shards: int = 2) -> str:
    name = f"t-fwd-{uuid.uuid4().hex[:8]}"
    client.create_stream(StreamName=name, ShardCount=shards)
    client.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.2})
    return name


def read_all(client: Any, stream: str) -> list[tuple[str, bytes]]:
    """Every record of every shard, each shard in sequence order."""
    out = []
    for shard in client.list_shards(StreamName=stream)["Shards"]:
        iterator = client.get_shard_iterator(
            StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        while iterator:
            page = client.get_records(ShardIterator=iterator, Limit=10_000)
            out += [(r["PartitionKey"], r["Data"]) for r in page["Records"]]
            if not page["Records"]:
                break
            iterator = page.get("NextShardIterator")
    return out


class Throttled:
    """The real client, except that entries ``refuse`` picks come back failed (not put)."""

    def __init__(self, client: Any, refuse: Any) -> None:
        self.client, self.refuse = client, refuse
        self.calls: list[list[bytes]] = []
        self.refused: list[list[bytes]] = []

    def put_records(self, StreamName: str, Records: list[dict[str, Any]]) -> dict[str, Any]:
        n = len(self.calls)
        self.calls.append([r["Data"] for r in Records])
        refused = [r for i, r in enumerate(Records) if self.refuse(n, i)]
        self.refused.append([r["Data"] for r in refused])
        passed = [r for i, r in enumerate(Records) if not self.refuse(n, i)]
        real = (
            self.client.put_records(StreamName=StreamName, Records=passed)["Records"]
            if passed
            else []
        )
        results, it = [], iter(real)
        for i in range(len(Records)):
            results.append(
                {"ErrorCode": "ProvisionedThroughputExceededException", "ErrorMessage": "injected"}
                if self.refuse(n, i)
                else next(it)
            )
        return {
            "FailedRecordCount": sum(1 for r in results if "ErrorCode" in r),
            "Records": results,
        }


def payload(key: str, seq: int) -> bytes:
    return orjson.dumps({"key": key, "seq": seq})


async def test_every_record_arrives_once_in_order_per_key(settings: Settings) -> None:
    client = kinesis_client(settings)
    stream = new_stream(client)
    entries = [Entry(f"order-{k}", payload(f"order-{k}", s)) for s in range(20) for k in range(60)]
    forwarder = KinesisForwarder(client, stream)
    started = time.perf_counter()
    await forwarder.put(entries)
    elapsed = time.perf_counter() - started
    stored = read_all(client, stream)
    assert sorted(data for _, data in stored) == sorted(e.data for e in entries)
    by_key: dict[str, list[int]] = defaultdict(list)
    for key, data in stored:
        by_key[key].append(orjson.loads(data)["seq"])
    assert all(seqs == list(range(20)) for seqs in by_key.values())
    assert forwarder.stats.calls == 20  # one record per key per call: 20 rounds of 60
    print(f"{len(entries)} records in {elapsed:.2f} s")


async def test_a_partial_failure_is_retried_for_exactly_the_failed_entries(
    settings: Settings,
) -> None:
    client = kinesis_client(settings)
    stream = new_stream(client)
    # The first two calls refuse every third entry, as a throttled shard would.
    throttled = Throttled(client, lambda call, i: call < 2 and i % 3 == 0)
    entries = [Entry(f"order-{k}", payload(f"order-{k}", s)) for s in range(3) for k in range(30)]
    forwarder = KinesisForwarder(throttled, stream, base_backoff=0.01)
    await forwarder.put(entries)
    refused_first = set(throttled.refused[0])
    assert refused_first and refused_first <= set(throttled.calls[1])  # retried in the next call
    retried_after_first = set(throttled.calls[1]) & {e.data for e in entries[:30]}
    assert retried_after_first == refused_first  # exactly the failed ones, none that succeeded
    assert forwarder.stats.retried == sum(len(r) for r in throttled.refused)
    stored = read_all(client, stream)
    assert sorted(data for _, data in stored) == sorted(e.data for e in entries)  # once each
    by_key: dict[str, list[int]] = defaultdict(list)
    for key, data in stored:
        by_key[key].append(orjson.loads(data)["seq"])
    assert all(seqs == [0, 1, 2] for seqs in by_key.values())  # order kept despite retries
