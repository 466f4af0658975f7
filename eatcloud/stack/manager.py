"""``eatcloud stack up|down|status``: bring the local services up, idempotently, and down again.

``up`` leaves alone anything that already answers (ours from an earlier ``up``, or a service
someone else runs on the same address); ``down`` stops only the processes ``up`` started.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from eatcloud.probes import ProbeResult, probe_all
from eatcloud.settings import Settings
from eatcloud.stack.apt import ensure_packages
from eatcloud.stack.kafka import KafkaService
from eatcloud.stack.kinesis import KinesisEmulatorService
from eatcloud.stack.postgres import PostgresService
from eatcloud.stack.redis import RedisService
from eatcloud.stack.service import LocalService, Say

START_TIMEOUT_SECONDS = {"kafka": 90.0, "postgres": 60.0, "redis": 20.0, "kinesis": 60.0}


def services(settings: Settings, say: Say) -> list[LocalService]:
    return [
        KafkaService(settings, say),
        PostgresService(settings, say),
        RedisService(settings, say),
        KinesisEmulatorService(settings, say),
    ]


def up(settings: Settings, say: Say) -> list[str]:
    """Start every service that does not answer; return the names of those started now."""
    began = time.perf_counter()
    stack = services(settings, say)
    down = [service for service in stack if not service.answers()]
    for service in stack:
        if service not in down:
            owner = "ours" if service.started_pid() else "not started by eatcloud"
            say(f"{service.name}: already up ({owner})")
    ensure_packages([p for service in down for p in service.packages], say)
    for service in down:
        service.install()
    for service in down:  # spawn them all first: they warm up side by side
        say(f"{service.name}: starting")
        service.start()
    for service in down:
        service.wait_until_answers(START_TIMEOUT_SECONDS[service.name])
        say(f"{service.name}: answers")
    for service in stack:
        service.provision()
    say(f"stack up in {time.perf_counter() - began:.1f} s")
    return [service.name for service in down]


def down(settings: Settings, say: Say, only: list[str] | None = None) -> None:
    for service in reversed(services(settings, say)):
        if only is not None and service.name not in only:
            continue
        if service.stop():
            say(f"{service.name}: stopped")
        elif service.answers():
            say(f"{service.name}: left running (not started by eatcloud)")
        else:
            say(f"{service.name}: not running")


@dataclass(frozen=True)
class ServiceStatus:
    probe: ProbeResult
    pid: int | None


def status(settings: Settings) -> list[ServiceStatus]:
    pids = {s.name: s.started_pid() for s in services(settings, lambda _: None)}
    results = asyncio.run(probe_all(settings))
    return [ServiceStatus(result, pids[result.name]) for result in results]
