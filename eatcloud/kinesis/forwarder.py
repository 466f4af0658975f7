"""Events to Kinesis with PutRecords: bounded calls, retries of the failed entries only, order
kept per partition key.

- A call carries at most 500 records and 5 MiB (data plus partition keys), the PutRecords
  limits; a record over 1 MiB can never be put and is reported, not retried.
- Order per key: a call carries at most one record per partition key (the oldest one not yet
  put). A record whose entry failed stays first in its key's queue and goes again with the
  next call, so nothing of that key overtakes it. Keys are order ids (store ids for stock),
  so a batch of events spreads over many keys and calls stay full.
- Retries: the entries the response marks failed (throttling, internal errors) are retried
  with exponential backoff; after ``max_attempts`` calls without progress the forwarder gives
  up with ``InfrastructureError``, and the agent's batch is redelivered (at-least-once).
- Back-pressure: ``put`` returns when every record is in the stream; the agent takes its next
  batch only then, so nothing buffers without bound.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict, deque
from collections.abc import Iterable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from eatcloud.errors import InfrastructureError
from eatcloud.observability.metrics import Metrics
from eatcloud.observability.metrics import metrics as process_metrics
from eatcloud.resources import Kinesis, KinesisRecord

log = logging.getLogger(__name__)

MAX_RECORDS = 500
MAX_CALL_BYTES = 5 * 1024 * 1024
MAX_RECORD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class Entry:
    partition_key: str
    data: bytes

    @property
    def size(self) -> int:
        return len(self.data) + len(self.partition_key.encode())


@dataclass
class PutStats:
    calls: int = 0
    records: int = 0
    retried: int = 0
    oversized: int = 0


def next_call(queues: OrderedDict[str, deque[Entry]]) -> list[Entry]:
    """The oldest pending record of each key, within the PutRecords limits (pure)."""
    call: list[Entry] = []
    size = 0
    for queue in queues.values():
        entry = queue[0]
        if len(call) == MAX_RECORDS or size + entry.size > MAX_CALL_BYTES:
            break
        call.append(entry)
        size += entry.size
    return call


class KinesisForwarder:
    def __init__(
        self,
        client: Kinesis,
        stream: str,
        *,
        max_attempts: int = 8,
        base_backoff: float = 0.1,
        max_backoff: float = 5.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.client = client
        self.stream = stream
        self.metrics = metrics or process_metrics()
        self.max_attempts = max_attempts
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.stats = PutStats()

    async def put(self, entries: Iterable[Entry]) -> None:
        """Put every entry, in order per key; InfrastructureError if Kinesis keeps refusing."""
        queues: OrderedDict[str, deque[Entry]] = OrderedDict()
        for entry in entries:
            if entry.size > MAX_RECORD_BYTES:
                self.stats.oversized += 1
                log.error(
                    "kinesis: record of %d bytes for key %s is over the 1 MiB limit; skipped",
                    entry.size,
                    entry.partition_key,
                )
                continue
            queues.setdefault(entry.partition_key, deque()).append(entry)
        stalled = 0
        while queues:
            call = next_call(queues)
            failed = await self._put_records(call)
            for entry, error in zip(call, failed, strict=True):
                if error is None:
                    queue = queues[entry.partition_key]
                    queue.popleft()
                    if not queue:
                        del queues[entry.partition_key]
                else:
                    self.metrics.kinesis_failures.labels(error).inc()
            if any(failed):
                retried = sum(1 for error in failed if error)
                self.stats.retried += retried
                stalled = stalled + 1 if retried == len(call) else 0
                if stalled >= self.max_attempts:
                    raise InfrastructureError(
                        f"kinesis: {retried} records still failing after {stalled} calls"
                    )
                delay = min(self.max_backoff, self.base_backoff * 2 ** min(stalled, 10))
                await asyncio.sleep(delay)

    async def _put_records(self, call: list[Entry]) -> list[str | None]:
        """One PutRecords call; the error code of each entry (None when it was put)."""
        records: list[KinesisRecord] = [
            {"Data": e.data, "PartitionKey": e.partition_key} for e in call
        ]
        try:
            response = await asyncio.to_thread(
                self.client.put_records, StreamName=self.stream, Records=records
            )
        except (BotoCoreError, ClientError) as exc:
            log.warning("kinesis: PutRecords failed as a whole (%s); retrying", exc)
            return ["call_failed"] * len(call)
        self.stats.calls += 1
        results = response["Records"]
        errors = [result.get("ErrorCode") for result in results]
        put = sum(1 for error in errors if error is None)
        self.stats.records += put
        self.metrics.kinesis_records.inc(put)
        return errors
