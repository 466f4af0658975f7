"""Static group membership (what the Helm chart gives each worker): a quick restart rejoins
without a rebalance.

A worker with ``EATCLOUD_KAFKA__GROUP_INSTANCE_ID`` keeps its place in the consumer group
across a restart within the session timeout: the broker hands it the same assignment in the
same generation. Without it, the restart is a leave and a join: a new generation, a rebalance.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from eatcloud.settings import Settings
from tests.integration.workers import WorkerProcess, totals_worker

READY = "Worker ready"  # Faust's recovery logs it once the partitions are assigned and read
JOINED = re.compile(r"Joined group '[^']+' \(generation (\d+)\) with member_id ([\w-]+)")


async def joins(worker: WorkerProcess, count: int, within: float = 90) -> list[tuple[int, str]]:
    """The worker's group joins so far (generation, member id), once there are ``count``."""
    for _ in range(int(within / 0.5)):
        found = [(int(g), m) for g, m in JOINED.findall(worker.log.read_text(errors="replace"))]
        if len(found) >= count:
            return found
        await asyncio.sleep(0.5)
    raise AssertionError(f"fewer than {count} joins\n{worker.tail(60)}")


async def logged(worker: WorkerProcess, text: str, within: float = 90) -> None:
    """Until ``text`` is in the worker's log."""
    for _ in range(int(within / 0.5)):
        if text in worker.log.read_text(errors="replace"):
            return
        await asyncio.sleep(0.5)
    raise AssertionError(f"not logged: {text!r}\n{worker.tail(60)}")


@pytest.mark.parametrize("static", [True, False], ids=["static", "dynamic"])
async def test_a_restarted_worker_rejoins_without_a_rebalance_only_when_static(
    tmp_path: Path, stack: Settings, static: bool
) -> None:
    env = {"EATCLOUD_KAFKA__SESSION_TIMEOUT_SECONDS": "30"}
    if static:
        env["EATCLOUD_KAFKA__GROUP_INSTANCE_ID"] = "worker-0"
    worker = totals_worker(tmp_path, stack.kafka.bootstrap_servers, "membership", **env)
    worker.start()
    try:
        (first,) = await joins(worker, 1)
        await logged(worker, READY)  # settled: assignment received, recovery done
        worker.stop()  # SIGTERM: a static member leaves no LeaveGroup behind
        worker.start()
        _, second = await joins(worker, 2)
    finally:
        worker.stop()
    if static:
        assert first[1].startswith("worker-0-") and second[1].startswith("worker-0-")
        assert second[0] == first[0], (first, second)  # same generation: no rebalance
    else:
        assert second[0] > first[0], (first, second)  # the group rebalanced
