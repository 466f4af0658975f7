"""Reads every shard of the analytics stream, from LATEST or TRIM_HORIZON."""

from __future__ import annotations

from typing import Any, Literal

import orjson
from botocore.exceptions import BotoCoreError, ClientError

from eatcloud.errors import InfrastructureError
from eatcloud.resources import Kinesis

Start = Literal["LATEST", "TRIM_HORIZON"]


class StreamReader:
    def __init__(self, client: Kinesis, stream: str, start: Start = "LATEST") -> None:
        self.client = client
        self.stream = stream
        try:
            shards = client.list_shards(StreamName=stream)["Shards"]
            self.iterators: dict[str, str | None] = {
                shard["ShardId"]: client.get_shard_iterator(
                    StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType=start
                )["ShardIterator"]
                for shard in shards
            }
        except (BotoCoreError, ClientError) as exc:
            raise InfrastructureError(f"kinesis stream {stream}: {exc}") from exc
        self.behind_ms = 0

    def poll(self) -> list[dict[str, Any]]:
        """One round over the shards: the records each has now (decoded JSON)."""
        out: list[dict[str, Any]] = []
        behind = 0
        for shard, iterator in self.iterators.items():
            if iterator is None:  # a closed shard, read to its end
                continue
            try:
                page = self.client.get_records(ShardIterator=iterator, Limit=10_000)
            except (BotoCoreError, ClientError) as exc:
                raise InfrastructureError(f"kinesis get_records: {exc}") from exc
            self.iterators[shard] = page.get("NextShardIterator")
            behind = max(behind, int(page.get("MillisBehindLatest", 0)))
            for record in page["Records"]:
                try:
                    out.append(orjson.loads(record["Data"]))
                except orjson.JSONDecodeError:
                    continue  # not ours: the stream may carry other producers' records
        self.behind_ms = behind
        return out

    def read_to_end(self) -> list[dict[str, Any]]:
        """Everything from the start position up to now."""
        out: list[dict[str, Any]] = []
        while True:
            page = self.poll()
            out += page
            if not page and self.behind_ms == 0:
                return out
