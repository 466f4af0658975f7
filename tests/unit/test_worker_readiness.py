"""The worker's readiness rule (what the chart's readiness probe reads)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from eatcloud.agents.telemetry import readiness


def worker(completed: bool, in_recovery: bool = False, rebalancing: bool = False) -> object:
    done = asyncio.Event()
    if completed:
        done.set()
    recovery = SimpleNamespace(completed=done, in_recovery=in_recovery)
    return SimpleNamespace(tables=SimpleNamespace(recovery=recovery), rebalancing=rebalancing)


def test_a_worker_is_ready_only_after_recovery_and_outside_a_rebalance() -> None:
    assert readiness(worker(completed=False)) == (False, "recovering tables")
    assert readiness(worker(completed=True, in_recovery=True)) == (False, "recovering tables")
    assert readiness(worker(completed=True, rebalancing=True)) == (False, "rebalancing")
    assert readiness(worker(completed=True)) == (True, "ready")
