"""Helpers of the benchmarks that run real workers: ports, CPU of processes, Kafka plumbing,
and the raw aiokafka pipe that serves as their baseline."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Collection
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from eatcloud.streams import topics as t

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds(sessions: Collection[int]) -> float:
    """User + system CPU of every process in these sessions, reaped children included."""
    ticks = 0
    for entry in os.scandir("/proc"):
        try:
            raw = Path(entry.path, "stat").read_bytes() if entry.name.isdigit() else b""
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()  # fields[0] is field 3 in proc(5)
        if fields and int(fields[3]) in sessions:
            ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / CLOCK_TICKS


def stop(procs: Collection[subprocess.Popen[bytes]]) -> None:
    """Stop processes started with ``start_new_session=True``, their children too."""
    for proc in procs:
        os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def print_logs(data: Path) -> None:
    for log in sorted(data.glob("*.log")):
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        print(f"--- {log.name}:\n{tail}", file=sys.stderr)


def consumer(bootstrap: str, topic: str, group_id: str | None = None) -> AIOKafkaConsumer:
    """A consumer from the start of ``topic``; without a group, of all its partitions."""
    options = {"auto_offset_reset": "earliest", "enable_auto_commit": False}
    return AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group_id, **options)


async def create_topics(
    bootstrap: str, names: Collection[str], partitions: int, prefix: str = ""
) -> None:
    """Topics as the worker declares them (the event log keeps every event, or the worker
    refuses to run): ``names`` are full names, ``prefix`` what to strip to find their kind."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [
                NewTopic(name, partitions, 1, topic_configs=t.configs(name.removeprefix(prefix)))
                for name in names
            ]
        )
    finally:
        await admin.close()


async def drop_topics(bootstrap: str, prefix: str) -> None:
    """Delete the topics whose names start with ``prefix``."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        mine = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()


async def run_pipe(messages: int, bootstrap: str, partitions: int, payload: bytes) -> float:
    """Raw aiokafka: consume from one topic, produce each message to another (msgs/s)."""
    prefix = f"pipe-{uuid.uuid4().hex[:8]}-"
    source, sink = prefix + "in", prefix + "out"
    await create_topics(bootstrap, (source, sink), partitions)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=5, acks="all")
    reader = consumer(bootstrap, source, group_id=prefix)
    try:
        await producer.start()
        sent = [await producer.send(source, payload, b"%d" % i) for i in range(messages)]
        await asyncio.gather(*sent)
        await reader.start()
        moved, start = 0, time.perf_counter()
        while moved < messages:
            batches = await reader.getmany(timeout_ms=500, max_records=2_000)
            sends = []
            for rec in (rec for recs in batches.values() for rec in recs):
                value = orjson.loads(rec.value)  # decode and re-encode, as an agent would
                sends.append(await producer.send(sink, orjson.dumps(value), key=rec.key))
            await asyncio.gather(*sends)
            if sends:
                await reader.commit()
            moved += len(sends)
        return messages / (time.perf_counter() - start)
    finally:
        await reader.stop()
        await producer.stop()
        await drop_topics(bootstrap, prefix)
