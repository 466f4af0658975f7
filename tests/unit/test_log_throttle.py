"""A dependency's repeated warnings: once, then a bounded rate with a count, then "stopped"."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from eatcloud.observability.logging import Throttle


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@contextmanager
def captured(throttle: Throttle) -> Iterator[list[str]]:
    """What the aiokafka and eatcloud.runtime loggers write through ``throttle``."""
    seen: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            seen.append(f"{record.name}: {record.getMessage()}")

    handler = Keep()
    handler.addFilter(throttle)
    loggers = [logging.getLogger(name) for name in ("aiokafka", "eatcloud.runtime")]
    saved = [(lg.handlers, lg.propagate, lg.level) for lg in loggers]
    for logger in loggers:
        logger.handlers, logger.propagate = [handler], False
        logger.setLevel(logging.INFO)
    try:
        yield seen
    finally:
        for logger, (handlers, propagate, level) in zip(loggers, saved, strict=True):
            logger.handlers, logger.propagate = handlers, propagate
            logger.setLevel(level)


@pytest.fixture
def setup() -> Iterator[tuple[Throttle, Clock, list[str]]]:
    clock = Clock()
    throttle = Throttle(every=10, quiet=5, clock=clock)
    with captured(throttle) as seen:
        yield throttle, clock, seen


def test_a_repeated_client_warning_is_shown_once_then_counted_then_said_to_stop(
    setup: tuple[Throttle, Clock, list[str]],
) -> None:
    _, clock, seen = setup
    kafka = logging.getLogger("aiokafka")
    for n in range(1_000):  # 100 a second for 10 s
        clock.now = n / 100
        kafka.error("Unable connect to %r: %s", "127.0.0.1:9092", "refused")
    clock.now = 10.0
    kafka.error("Unable connect to %r: %s", "127.0.0.1:9092", "refused")
    assert seen == [
        "aiokafka: Unable connect to '127.0.0.1:9092': refused",
        "aiokafka: Unable connect to '127.0.0.1:9092': refused"
        " [999 more like this in the last 10 s]",
    ]
    clock.now = 16.0  # quiet for 6 s: the next record of any kind ends the burst
    logging.getLogger("eatcloud.runtime").info("unit done")
    assert seen[2:] == [
        "aiokafka: stopped: 'Unable connect to %r: %s' came 1001 times in 10 s (the last 6 s ago)",
        "eatcloud.runtime: unit done",
    ]


def test_our_own_warnings_and_other_kinds_are_never_held_back(
    setup: tuple[Throttle, Clock, list[str]],
) -> None:
    _, clock, seen = setup
    ours, kafka = logging.getLogger("eatcloud.runtime"), logging.getLogger("aiokafka")
    for n in range(3):
        clock.now = n / 10
        ours.warning("poison message %s", n)
        kafka.warning("first kind")
        kafka.warning("second kind %s", n)
        kafka.info("an info line %s", n)
    assert seen == [
        "eatcloud.runtime: poison message 0",
        "aiokafka: first kind",
        "aiokafka: second kind 0",
        "aiokafka: an info line 0",
        "eatcloud.runtime: poison message 1",
        "aiokafka: an info line 1",
        "eatcloud.runtime: poison message 2",
        "aiokafka: an info line 2",
    ]


def test_a_burst_is_said_to_stop_even_when_nothing_else_is_logged_after_it() -> None:
    """A worker that goes quiet after an outage: the sweeper thread writes the line."""
    throttle = Throttle(every=10, quiet=0.2)  # the real clock
    with captured(throttle) as seen:
        kafka = logging.getLogger("aiokafka")
        for _ in range(3):
            kafka.error("Unable connect to %r", "127.0.0.1:9092")
        deadline = time.monotonic() + 10
        while len(seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        while throttle.sweeper is not None and time.monotonic() < deadline:
            time.sleep(0.05)
    assert seen[0] == "aiokafka: Unable connect to '127.0.0.1:9092'"
    assert seen[1].startswith("aiokafka: stopped: 'Unable connect to %r' came 3 times"), seen
    assert len(seen) == 2, seen
    assert throttle.sweeper is None  # no burst open: the thread has ended
