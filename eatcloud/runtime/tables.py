"""Direct access to a Faust table's store and changelog, by partition, for the adapter.

Faust's own path costs about 120 µs per write here (a ``FutureMessage``, the changelog
``send_soon`` through its producer buffer, a callback and one RocksDB write of the persisted
offset per record) and its reads look only in the partition of the "current event", which is
meaningless for a unit made of records from several partitions. The adapter writes each key
once per unit: the value into the store of the partition it belongs to, and the same bytes
straight to that changelog partition through the producer; once the broker has acknowledged
the whole unit, it records the highest changelog offset of each partition as the store's
persisted offset, once per partition instead of once per record (``persisted``), which is
what Faust reads at start-up to replay only the changelog records its store does not have.
The key and value encodings are Faust's own (JSON key, raw bytes), so Faust's recovery,
standby replicas and ``faust tables`` read them as before.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from faust.types import TP

# RocksDB's memory, by the properties that report it: memtables fill up to
# ``write_buffer_size`` x ``max_write_buffer_number`` per database before they are flushed,
# the block cache up to its size; both are bounded by the worker's rocksdb_* settings.
ROCKSDB_MEMORY = {
    "memtables": "rocksdb.cur-size-all-mem-tables",
    "block_cache": "rocksdb.block-cache-usage",
    "table_readers": "rocksdb.estimate-table-readers-mem",
}


class TableIO:
    def __init__(self, runtime: Any, table: Any) -> None:
        self.runtime = runtime
        self.table = table
        self._changelog: str | None = None

    @property
    def changelog(self) -> str:
        """The changelog topic's name (known once the app is configured)."""
        if self._changelog is None:
            self._changelog = self.table.changelog_topic.get_topic_name()
        return self._changelog

    def key(self, key: str) -> bytes:
        encoded: bytes = self.table.data._encode_key(key)
        # A copy of exactly its size: orjson (Faust's JSON) hands back a 38-byte key in a 4 KiB
        # allocation, and the store's key index keeps up to ``table_key_index_size`` (1,000)
        # keys per table: 16 MB of a soak worker's heap was these buffers (tracemalloc).
        return bytes(memoryview(encoded))

    def read(self, key: str, partition: int) -> bytes | None:
        store = self.table.data
        if hasattr(store, "_db_for_partition"):  # RocksDB: one database per partition
            value: bytes | None = store._db_for_partition(partition).get(self.key(key))
            return value
        found: bytes | None = store.data.get(key)  # memory:// keeps keys and values as they are
        return found

    async def write(self, key: str, value: bytes | None, partition: int) -> Awaitable[Any]:
        """Set (None: delete) the key in the store and send its changelog record; the
        record's acknowledgement (its metadata carries the changelog offset)."""
        store = self.table.data
        encoded = self.key(key)
        if hasattr(store, "_db_for_partition"):
            db = store._db_for_partition(partition)
            if value is None:
                db.delete(encoded)
                store._key_index.pop(encoded, None)
            else:
                db.put(encoded, value)
                store._key_index[encoded] = partition
        elif value is None:
            store.data.pop(key, None)
        else:
            store.data[key] = value
        ack: Awaitable[Any] = await self.runtime.sink.produce(
            self.changelog, encoded, value, partition, None
        )
        return ack

    def rocksdb_memory(self) -> dict[str, int]:
        """What RocksDB holds in memory for this table's open partitions, by kind (RocksDB's
        own figures); empty for a memory:// store."""
        totals: dict[str, int] = {}
        for db in list(getattr(self.table.data, "_dbs", {}).values()):
            for kind, name in ROCKSDB_MEMORY.items():
                value = db.property_int_value(name)
                totals[kind] = totals.get(kind, 0) + (value or 0)
        return totals

    def persisted(self, partition: int, offset: int) -> None:
        """The store holds every changelog record of ``partition`` up to ``offset``."""
        self.table.data.set_persisted_offset(TP(self.changelog, partition), offset)
