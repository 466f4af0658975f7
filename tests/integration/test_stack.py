"""`eatcloud stack` is idempotent and tells the truth about what answers."""

from __future__ import annotations

import os
import subprocess
import sys

from eatcloud.settings import Settings
from eatcloud.stack import manager


def test_stack_up_again_starts_nothing_and_keeps_every_service(settings: Settings) -> None:
    before = {row.probe.name: row.pid for row in manager.status(settings)}
    lines: list[str] = []
    started = manager.up(settings, lines.append)
    after = {row.probe.name: row.pid for row in manager.status(settings)}
    assert started == []
    assert after == before  # the same processes: nothing was restarted
    assert sum("already up" in line for line in lines) == 4, lines


def test_stack_status_lists_every_service_as_answering() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eatcloud.cli", "stack", "status"],
        capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"},
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    for name in ("kafka", "postgres", "redis", "kinesis"):
        assert name in done.stdout
    assert "down" not in done.stdout


def test_stack_status_exits_1_and_says_down_when_a_service_is_missing() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "eatcloud.cli", "stack", "status"],
        capture_output=True, text=True, check=False,
        env={**os.environ, "COLUMNS": "200", "EATCLOUD_REDIS__PORT": "1"},
    )  # fmt: skip
    assert done.returncode == 1, done.stdout
    redis_line = next(line for line in done.stdout.splitlines() if "redis" in line)
    assert "down" in redis_line
