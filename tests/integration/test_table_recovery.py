"""A worker's table survives kill -9: it is rebuilt from its Kafka changelog on restart."""

from __future__ import annotations

import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eatcloud.settings import Settings
from tests.integration.kafka_io import collect, produce
from tests.integration.workers import WorkerProcess

KEYS = [f"total-{i}" for i in range(12)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def totals_worker(tmp_path: Path, settings: Settings) -> Iterator[WorkerProcess]:
    prefix = f"totals-{uuid.uuid4().hex[:10]}"
    worker = WorkerProcess(
        "tests.integration.apps.totals",
        {
            "TOTALS_PREFIX": prefix,
            "EATCLOUD_WORKER__DATA_DIR": str(tmp_path / "worker-data"),
            "EATCLOUD_WORKER__WEB_PORT": str(free_port()),
            "EATCLOUD_KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        },
        tmp_path / "worker.log",
    )
    yield worker
    worker.stop()


def last_seq_per_key(values: list[dict[str, Any]]) -> dict[str, int]:
    seen: dict[str, int] = {}
    for value in values:
        seen[value["key"]] = max(seen.get(value["key"], -1), value["seq"])
    return seen


@pytest.mark.parametrize("lose_local_state", [False, True], ids=["keep-data-dir", "data-dir-lost"])
async def test_table_is_recovered_from_its_changelog_after_kill_9(
    totals_worker: WorkerProcess, settings: Settings, tmp_path: Path, lose_local_state: bool
) -> None:
    bootstrap = settings.kafka.bootstrap_servers
    prefix = totals_worker.env["TOTALS_PREFIX"]
    rounds = 25
    sets = [
        (key, {"op": "set", "value": 1000 * r + i, "seq": r})
        for r in range(rounds)
        for i, key in enumerate(KEYS)
    ]
    expected = {key: 1000 * (rounds - 1) + i for i, key in enumerate(KEYS)}

    totals_worker.start()
    await produce(bootstrap, f"{prefix}-ops", sets)
    done = await collect(
        bootstrap, f"{prefix}-results",
        until=lambda vs: last_seq_per_key(vs) == {k: rounds - 1 for k in KEYS},
        within=90,
    )  # fmt: skip
    assert len(done) >= len(sets), totals_worker.tail()

    totals_worker.kill9()
    if lose_local_state:
        shutil.rmtree(tmp_path / "worker-data")
    totals_worker.start()
    await produce(bootstrap, f"{prefix}-ops", [(k, {"op": "get", "seq": 999}) for k in KEYS])
    answers = await collect(
        bootstrap, f"{prefix}-results",
        until=lambda vs: sum(v["seq"] == 999 for v in vs) >= len(KEYS),
        within=120,
    )  # fmt: skip

    recovered = {v["key"]: v["total"] for v in answers if v["seq"] == 999}
    assert recovered == expected, totals_worker.tail()
    assert totals_worker.alive(), totals_worker.tail()
