"""A process's services: the clients it talks to, each typed by the protocol it is used through.

``eatcloud.bootstrap.build(settings)`` fills a ``Services`` with the real clients' openers; the
API, the worker and each operator command receive one. A client opens on first use, and
``close()`` closes what was opened: building is free of I/O, so tests build apps for broken
settings and the readiness probe reports a missing dependency instead of the app failing to
start. The protocols name only the calls the project makes; a row's column values keep the
SQL's types (``Any``), the clients themselves do not.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Generator, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NotRequired, Protocol, Self, TypedDict

from redis.typing import EncodableT, FieldT

from eatcloud.observability.metrics import Metrics
from eatcloud.payments.gateway import PaymentGateway
from eatcloud.settings import Settings

# PostgreSQL (asyncpg).


class Record(Protocol):
    """A row, by column name (``asyncpg.Record``)."""

    def __getitem__(self, key: str, /) -> Any: ...

    def keys(self) -> Iterable[str]: ...


class Queries(Protocol):
    async def execute(self, query: str, *args: object) -> str: ...

    async def fetch(self, query: str, *args: object) -> list[Record]: ...

    async def fetchrow(self, query: str, *args: object) -> Record | None: ...

    async def fetchval(self, query: str, *args: object) -> Any: ...


class Connection(Queries, Protocol):
    def transaction(self) -> AbstractAsyncContextManager[object]: ...

    async def add_listener(self, channel: str, callback: Callable[..., object]) -> None: ...

    async def remove_listener(self, channel: str, callback: Callable[..., object]) -> None: ...

    def add_termination_listener(self, callback: Callable[..., object]) -> None: ...

    def remove_termination_listener(self, callback: Callable[..., object]) -> None: ...

    def is_closed(self) -> bool: ...


class Acquiring(Protocol):
    """``pool.acquire()``: ``async with`` it, or await it and ``release`` the connection."""

    def __await__(self) -> Generator[object, None, Connection]: ...

    async def __aenter__(self) -> Connection: ...

    async def __aexit__(self, *exc: object) -> None: ...


class Pool(Queries, Protocol):
    def acquire(self) -> Acquiring: ...

    async def release(self, connection: Connection) -> None: ...

    async def close(self) -> None: ...


# Redis (redis.asyncio).


class RedisPipeline(Protocol):
    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> object: ...

    def hset(self, name: str, *, mapping: Mapping[FieldT, EncodableT]) -> object: ...

    def hmget(self, name: str, keys: Sequence[str]) -> object: ...

    def hincrby(self, name: str, key: str, amount: int = 1) -> object: ...

    def expire(self, name: str, time: int) -> object: ...

    async def execute(self) -> list[Any]: ...


class Redis(Protocol):
    def pipeline(self, transaction: bool = True) -> RedisPipeline: ...

    def exists(self, *names: str) -> Awaitable[int]: ...

    def ping(self) -> Awaitable[object]: ...

    def delete(self, *names: str) -> Awaitable[int]: ...

    def hgetall(self, name: str) -> Awaitable[dict[bytes | str, bytes | str]]: ...

    def hmget(self, name: str, keys: Sequence[str]) -> Awaitable[list[bytes | str | None]]: ...

    def hdel(self, name: str, *keys: str) -> Awaitable[int]: ...

    def set(
        self, name: str, value: str, *, nx: bool = False, px: int | None = None
    ) -> Awaitable[bool | str | bytes | None]: ...

    def register_script(self, script: str) -> object: ...

    async def aclose(self) -> None: ...


# Kafka (aiokafka): the producer of the outbox relay and the DLQ replay, and the consumers of
# what runs on a consumer group of its own (the Kinesis forwarder). Faust's own producer and
# consumers stay Faust's; operator commands that read topics make their own consumers.


class Producer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send(
        self,
        topic: str,
        value: bytes | None = None,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Sequence[tuple[str, bytes]] | None = None,
    ) -> Awaitable[object]:
        """Queue the record; the awaitable it returns is the broker's acknowledgement."""
        ...

    async def partitions_for(self, topic: str) -> set[int]: ...


class ConsumerRecord(Protocol):
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


class Consumer(Protocol):
    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def getmany(
        self, *partitions: Any, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[Any, list[ConsumerRecord]]: ...

    async def commit(self) -> None: ...


# Kinesis (a boto3 client): the calls we make and the parts of their answers we read.


class StreamSummary(TypedDict):
    StreamStatus: str
    OpenShardCount: int


class DescribeStreamSummaryOutput(TypedDict):
    StreamDescriptionSummary: StreamSummary


class Shard(TypedDict):
    ShardId: str


class ListShardsOutput(TypedDict):
    Shards: list[Shard]


class GetShardIteratorOutput(TypedDict):
    ShardIterator: str


class KinesisRecord(TypedDict):
    Data: bytes
    PartitionKey: str


class GetRecordsOutput(TypedDict):
    Records: list[KinesisRecord]
    NextShardIterator: NotRequired[str]
    MillisBehindLatest: NotRequired[int]


class PutRecordsResultEntry(TypedDict, total=False):
    SequenceNumber: str
    ShardId: str
    ErrorCode: str
    ErrorMessage: str


class PutRecordsOutput(TypedDict):
    Records: list[PutRecordsResultEntry]


class KinesisErrors(Protocol):
    @property
    def ResourceInUseException(self) -> type[Exception]: ...  # boto3's name


class Kinesis(Protocol):
    @property
    def exceptions(self) -> KinesisErrors: ...

    def create_stream(self, *, StreamName: str, ShardCount: int) -> object: ...

    def describe_stream_summary(self, *, StreamName: str) -> DescribeStreamSummaryOutput: ...

    def list_shards(self, *, StreamName: str) -> ListShardsOutput: ...

    def get_shard_iterator(
        self, *, StreamName: str, ShardId: str, ShardIteratorType: str
    ) -> GetShardIteratorOutput: ...

    def get_records(self, *, ShardIterator: str, Limit: int) -> GetRecordsOutput: ...

    def put_records(self, *, StreamName: str, Records: list[KinesisRecord]) -> PutRecordsOutput: ...

    def close(self) -> None: ...


# The clock.


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch."""
        ...


class SystemClock:
    def now(self) -> float:
        return time.time()


@dataclass(eq=False)
class Services:
    """What a process talks to. ``pool()``, ``redis()``, ``producer()`` and ``kinesis()`` open
    their client on first use (a failed open is not kept: the next call tries again)."""

    settings: Settings
    gateway: PaymentGateway
    metrics: Metrics
    clock: Clock
    open_pool: Callable[[], Awaitable[Pool]]
    open_redis: Callable[[], Redis]
    open_producer: Callable[[], Producer]  # needs a running event loop (aiokafka)
    # A consumer of these topics in this group, committing only when told (at-least-once).
    open_consumer: Callable[[Sequence[str], str], Consumer]
    open_kinesis: Callable[[], Kinesis]
    _pool: Pool | None = field(default=None, init=False, repr=False)
    _redis: Redis | None = field(default=None, init=False, repr=False)
    _producer: Producer | None = field(default=None, init=False, repr=False)
    _kinesis: Kinesis | None = field(default=None, init=False, repr=False)
    _opening_pool: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)
    _opening_producer: asyncio.Lock = field(default_factory=asyncio.Lock, init=False, repr=False)

    async def pool(self) -> Pool:
        if self._pool is None:
            async with self._opening_pool:
                if self._pool is None:
                    self._pool = await self.open_pool()
        return self._pool

    def redis(self) -> Redis:
        if self._redis is None:
            self._redis = self.open_redis()
        return self._redis

    async def producer(self) -> Producer:
        """The producer, started."""
        if self._producer is None:
            async with self._opening_producer:
                if self._producer is None:
                    producer = self.open_producer()
                    try:
                        await producer.start()
                    except BaseException:
                        await producer.stop()
                        raise
                    self._producer = producer
        return self._producer

    def kinesis(self) -> Kinesis:
        if self._kinesis is None:
            self._kinesis = self.open_kinesis()
        return self._kinesis

    async def close(self) -> None:
        """Close every client that was opened (the next use opens it again)."""
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self._pool is not None:
            await self._pool.close()
            self._pool = None
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None
        if self._kinesis is not None:
            self._kinesis.close()
            self._kinesis = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
