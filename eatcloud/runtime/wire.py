"""The batch envelope: many records of one destination partition in one Kafka record.

Between our own agents (relay -> orchestrator -> participants -> orchestrator) one Kafka record
carries the commands or replies of many orders that go to the same partition, so Faust's cost
per consumed and produced record (about 100 µs each) is paid once per batch, not per order::

    {"type": "Batch", "items": [{"h": {"traceparent": "..."}, "v": {<record>}}, ...]}

Each item keeps its own trace headers (``h``), so a batch never mixes up whose request caused
what. A plain record (one JSON object with its headers on the Kafka record) is still read as a
batch of one: producers that send one record at a time (tests, operators' tools, older relays)
keep working. The public topics (``order-events``, ``stock-events``) never carry batches.

A batch goes to an explicit partition: the one Kafka's default partitioner (murmur2 of the
key) gives each of its items' keys, so a batch and a plain record for the same key meet in
the same partition, and so in the same table partition.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson
from aiokafka.partitioner import murmur2

from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import encode

_MARK = b'{"type":"Batch"'
Headers = dict[str, str]


@dataclass(frozen=True, slots=True)
class Item:
    """One record of a batch, still encoded, and the trace headers it carries."""

    value: bytes
    headers: Headers


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner (and Faust's) picks for ``key``."""
    hashed: int = murmur2(key)
    return (hashed & 0x7FFFFFFF) % partitions


def is_batch(value: bytes | None) -> bool:
    return value is not None and value.startswith(_MARK)


def pack(items: Iterable[tuple[bytes, Headers]]) -> bytes:
    """One envelope holding these encoded records (each a JSON object) and their headers."""
    body = [{"h": headers, "v": orjson.Fragment(value)} for value, headers in items]
    return orjson.dumps({"type": "Batch", "items": body})


def chunks(items: list[tuple[bytes, Headers]], limit: int = 256 * 1024) -> list[bytes]:
    """``items`` as envelopes of at most about ``limit`` bytes (Kafka refuses records > 1 MB)."""
    out, start, size = [], 0, 0
    for n, (value, _) in enumerate(items):
        if size and size + len(value) > limit:
            out.append(pack(items[start:n]))
            start, size = n, 0
        size += len(value) + 64
    out.append(pack(items[start:]))
    return out


def unpack(value: bytes) -> list[Item]:
    """The items of an envelope, each re-encoded on its own (for decoding and dead letters).

    Raises ``ValueError`` for an envelope that is not one (the caller dead-letters it whole).
    """
    try:
        body = orjson.loads(value)
        items = body["items"]
        return [Item(orjson.dumps(item["v"]), dict(item.get("h") or {})) for item in items]
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a batch envelope: {exc}") from exc


def encode_batches(
    records: Sequence[r.Record], partitions: int, headers: Headers | None = None
) -> list[tuple[str, int, bytes, bytes]]:
    """The records as envelopes, one per (topic, partition): ``(topic, partition, key, value)``.

    Topics are unprefixed. The key of an envelope is its first item's key (informative only:
    the partition is explicit). For the outbox relay and the benchmarks, which feed the saga
    the way the agents feed each other.
    """
    groups: dict[tuple[str, int], list[tuple[bytes, Headers]]] = {}
    keys: dict[tuple[str, int], bytes] = {}
    for record in records:
        topic, key = t.route(record)
        key_bytes = key.encode()
        where = (topic, partition_for(key_bytes, partitions))
        keys.setdefault(where, key_bytes)
        groups.setdefault(where, []).append((encode(record), headers or {}))
    return [(topic, p, keys[(topic, p)], pack(items)) for (topic, p), items in groups.items()]
