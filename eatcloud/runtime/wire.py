"""The batch envelope: many records of one destination partition in one Kafka record.

Between our own agents (relay -> orchestrator -> participants -> orchestrator) one Kafka record
carries the commands or replies of many orders that go to the same partition, so Faust's cost
per consumed and produced record (about 100 µs each) is paid once per batch, not per order::

    {"type": "Batch", "items": [{"h": {"traceparent": "..."}, "v": {<record>}}, ...]}

Each item keeps its own trace headers (``h``), so a batch never mixes up whose request caused
what. A plain record (one JSON object with its headers on the Kafka record) is still read as a
batch of one: producers that send one record at a time (tests, operators' tools, older relays)
keep working. The public topics (the event topics) never carry batches.

A batch goes to an explicit partition: the one Kafka's default partitioner (murmur2 of the
key, ``topics.partition_for``) gives each of its items' keys, so a batch and a plain record for
the same key meet in the same partition, and so in the same table partition. ``Envelopes``
does the grouping for every producer of batches: the runtime's units, the outbox relay and
the benchmarks.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import orjson

from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from eatcloud.streams.codec import encode
from eatcloud.streams.topics import partition_for

_MARK = b'{"type":"Batch"'
Headers = dict[str, str]


@dataclass(frozen=True, slots=True)
class Item:
    """One record of a batch, still encoded, and the trace headers it carries."""

    value: bytes
    headers: Headers


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


class Envelopes:
    """Encoded records grouped by destination (topic, partition), in the order they came."""

    __slots__ = ("groups",)

    def __init__(self) -> None:
        # (topic, partition) -> (the key of its first record, [(value, headers)])
        self.groups: dict[tuple[str, int], tuple[bytes, list[tuple[bytes, Headers]]]] = {}

    def add(self, topic: str, key: bytes, partitions: int, value: bytes, headers: Headers) -> None:
        where = (topic, partition_for(key, partitions))
        group = self.groups.get(where)
        if group is None:
            self.groups[where] = (key, [(value, headers)])
        else:
            group[1].append((value, headers))

    def records(self) -> list[tuple[str, int, bytes, bytes]]:
        """``(topic, partition, key, envelope)`` to send, each envelope under Kafka's record
        limit. The key (the first item's) is informative: send to the partition given."""
        return [
            (topic, partition, key, envelope)
            for (topic, partition), (key, items) in self.groups.items()
            for envelope in chunks(items)
        ]


def encode_batches(
    records: Sequence[r.Record], partitions: int, headers: Headers | None = None
) -> list[tuple[str, int, bytes, bytes]]:
    """The records as ``Envelopes.records()`` (topics unprefixed): for the benchmarks, which
    feed the saga the way the relay and the agents do."""
    envelopes = Envelopes()
    for record in records:
        topic, key = t.route(record)
        envelopes.add(topic, key.encode(), partitions, encode(record), headers or {})
    return envelopes.records()
