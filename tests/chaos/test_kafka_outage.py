"""A broker outage under a running worker: logged briefly, survived, and recovered from.

The worker runs on a Kafka broker of the test's own (the shared one is left alone), takes an
order to PAID, loses its broker for 20 s, and takes the next order to PAID once the broker is
back. During the outage the Kafka clients repeat the same warnings thousands of times a second
(a worker once wrote 59 MB in 35 s); the log must say it once, then at a bounded rate with a
count, and say when it stopped.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from eatcloud.settings import Settings
from eatcloud.stack.kafka import KafkaService
from eatcloud.streams import records as r
from tests.e2e.platform import eventually
from tests.integration.saga_harness import Bus, order, saga_worker, unique_prefix
from tests.integration.workers import free_port

OUTAGE_SECONDS = 20


class PrivateBroker:
    """A single-node broker on free ports, its data in ``folder``, the stack's jars.

    Started and stopped by a short-lived child process, as ``eatcloud stack up`` does, so the
    broker is never this test process's child (no zombie to reap, no stray ``Popen``)."""

    def __init__(self, stack: Settings, folder: Path) -> None:
        self.bootstrap = f"127.0.0.1:{free_port()}"
        self.env = {
            **os.environ,
            "EATCLOUD_STACK__DATA_DIR": str(folder),
            "EATCLOUD_KAFKA__BOOTSTRAP_SERVERS": self.bootstrap,
            "EATCLOUD_STACK__KAFKA_CONTROLLER_PORT": str(free_port()),
        }
        shared = KafkaService(stack, say=lambda *_: None).libs
        assert shared.exists(), f"the stack's Kafka jars are not at {shared}: run `make stack-up`"
        libs = folder / "kafka" / shared.name
        libs.parent.mkdir(parents=True, exist_ok=True)
        libs.symlink_to(shared, target_is_directory=True)

    async def _do(self, *steps: str) -> None:
        script = (
            "from eatcloud.settings import Settings\n"
            "from eatcloud.stack.kafka import KafkaService\n"
            "broker = KafkaService(Settings(), print)\n" + "".join(f"broker.{s}\n" for s in steps)
        )
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", script], env=self.env, timeout=180
        )
        assert done.returncode == 0, f"private broker: {steps} failed"

    async def start(self) -> None:
        await self._do("start()", "wait_until_answers(120)")

    async def stop(self) -> None:
        await self._do("stop()")


@pytest.mark.faults
async def test_a_broker_outage_is_logged_briefly_and_the_worker_carries_on(
    stack: Settings, tmp_path: Path
) -> None:
    broker = PrivateBroker(stack, tmp_path / "stack")
    await broker.start()
    bootstrap = broker.bootstrap
    prefix = unique_prefix("outage")
    worker = saga_worker(tmp_path, bootstrap, prefix)
    bus = Bus(bootstrap, prefix)
    try:
        worker.start()
        await bus.start()
        store, menu = "store-outage", "menu-outage"
        await bus.adjust(r.AdjustStock(store_id=store, menu_id=menu, delta=10))
        before = order(store, [(menu, 1, 10_000)])
        await bus.send(before)
        await bus.wait_for(before.order_id, "OrderPaid", within=120)

        logged = worker.log.stat().st_size
        await broker.stop()
        await asyncio.sleep(OUTAGE_SECONDS)
        outage = worker.log.read_bytes()[logged:]
        assert worker.proc is not None and worker.proc.poll() is None, worker.tail(40)

        await broker.start()
        after = order(store, [(menu, 1, 10_000)])
        await bus.send(after)
        await bus.wait_for(after.order_id, "OrderPaid", within=120)

        async def written_since() -> str:
            return worker.log.read_bytes()[logged:].decode(errors="replace")

        # The throttle's sweeper says a burst stopped once it has been quiet for 10 s.
        since = await eventually(written_since, lambda text: "stopped:" in text, within=30)

        lines = outage.decode(errors="replace").splitlines()
        assert len(outage) < 40_000 and len(lines) < 80, (
            f"{len(lines)} lines, {len(outage)} bytes in {OUTAGE_SECONDS} s of outage:\n"
            + "\n".join(lines[:20])
        )
        assert "stopped:" in since, worker.tail(40)
    finally:
        await bus.stop()
        worker.stop()
        await broker.stop()
