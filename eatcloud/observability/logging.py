"""Log lines as JSON (ts, level, logger, msg, request_id, trace_id, order_id), one per line,
or short lines for a person reading a terminal (``log_format``: json, text, or auto = text when
standard error is a terminal, JSON otherwise: what a log shipper or a test reads).

The ids come from the context of the work in progress (``observability.context``): an HTTP
request, or the Kafka message an agent is handling. The same dictConfig serves uvicorn (the
API) and Faust (the worker), so every process writes the same shape.

A dependency outage is logged once, then at a bounded rate with a count, and once more when
it stops (``Throttle``): during a broker outage the Kafka clients repeat the same warning
thousands of times a second (a worker wrote 59 MB in 35 s).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TextIO

from eatcloud.observability import context
from eatcloud.settings import Settings

_FIELDS = ("request_id", "trace_id", "order_id")


class ContextIds(logging.Filter):
    """Adds request_id, trace_id and order_id to every record (unless it already has them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "request_id", None) is None:
            record.request_id = context.request_id.get()
        if getattr(record, "trace_id", None) is None:
            record.trace_id = context.trace_id()
        if getattr(record, "order_id", None) is None:
            record.order_id = context.order_id.get()
        return True


# The clients of our dependencies: their repeated warnings are throttled, ours never are.
THROTTLED = ("aiokafka", "kafka", "faust", "mode", "asyncpg", "redis", "botocore", "urllib3")
_SUMMARY = "throttle_summary"  # marks the filter's own "stopped" lines


@dataclass
class _Burst:
    first: float  # when the first record of the burst was let through
    last: float  # when the last record (let through or not) came
    shown: float  # when a record was last let through
    held: int = 0  # records held back since ``shown``
    total: int = 1  # records in the burst


class Throttle(logging.Filter):
    """Lets the first WARNING-or-worse record of a kind (logger and message template) from a
    dependency's client through, then one per ``every`` seconds saying how many were held
    back, and, once none has come for ``quiet`` seconds, a line saying the burst stopped.
    The "stopped" line is written by the next record that passes through this filter, or by
    a sweeper thread that runs while a burst is open, whichever comes first: a worker that
    has gone quiet after an outage still says it ended. Thread-safe: Faust's consumer thread
    logs too."""

    def __init__(
        self, every: float = 10.0, quiet: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__()
        self.every, self.quiet, self.clock = every, quiet, clock
        self.bursts: dict[tuple[str, str], _Burst] = {}
        self.lock = threading.Lock()
        self.sweeper: threading.Thread | None = None  # runs while ``bursts`` is not empty

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        with self.lock:
            stopped = self._ended(now)
            keep = self._admit(record, now)
        self._say_stopped(stopped, now)
        return keep

    def sweep(self) -> bool:
        """Write the "stopped" line of every burst that has ended; whether any is still open
        (the sweeper thread stops when none is)."""
        now = self.clock()
        with self.lock:
            stopped = self._ended(now)
            open_bursts = bool(self.bursts)
            if not open_bursts:
                self.sweeper = None
        self._say_stopped(stopped, now)
        return open_bursts

    def _ended(self, now: float) -> list[tuple[tuple[str, str], _Burst]]:
        ended = [k for k, b in self.bursts.items() if now - b.last >= self.quiet]
        return [(kind, self.bursts.pop(kind)) for kind in ended]

    def _say_stopped(self, stopped: list[tuple[tuple[str, str], _Burst]], now: float) -> None:
        for (name, template), burst in stopped:
            if burst.total > 1:
                logging.getLogger(name).warning(
                    "stopped: %r came %d times in %.0f s (the last %.0f s ago)",
                    template[:200],
                    burst.total,
                    burst.last - burst.first,
                    now - burst.last,
                    extra={_SUMMARY: True},
                )

    def _admit(self, record: logging.LogRecord, now: float) -> bool:
        if (
            record.levelno < logging.WARNING
            or not record.name.startswith(THROTTLED)
            or getattr(record, _SUMMARY, False)
        ):
            return True
        kind = (record.name, str(record.msg))
        burst = self.bursts.get(kind)
        if burst is None:
            self.bursts[kind] = _Burst(now, now, now)
            if self.sweeper is None:  # under ``lock``, as is the sweeper's own exit
                self.sweeper = threading.Thread(
                    target=_sweep, args=(weakref.ref(self),), name="log-throttle", daemon=True
                )
                self.sweeper.start()
            return True
        burst.last, burst.total = now, burst.total + 1
        if now - burst.shown < self.every:
            burst.held += 1
            return False
        if burst.held:
            held = f"{burst.held} more like this in the last {now - burst.shown:.0f} s"
            record.msg = f"{record.msg} [{held}]"
        burst.shown, burst.held = now, 0
        return True


def _sweep(throttle: weakref.ReferenceType[Throttle]) -> None:
    """The sweeper thread: looks for ended bursts a few times per ``quiet`` period, until no
    burst is open (or the filter is gone: it holds the filter only between looks)."""
    while (found := throttle()) is not None and found.sweep():
        pause = max(found.quiet / 4, 0.05)
        del found
        time.sleep(pause)


class ShortText(logging.Formatter):
    """``07:14:26 INFO  eatcloud.agents.relay: published 12 rows  order_id=...``: the time of
    day, the level, the logger and the message, then the request and order ids that are set
    (the trace id, 32 hex digits on every line, is left to the JSON format)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-5s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [
            f"{name}={value}"
            for name in ("request_id", "order_id")
            if (value := getattr(record, name, None))
        ]
        return f"{line}  {' '.join(ids)}" if ids else line


def log_format(settings: Settings, stream: TextIO | None = None) -> Literal["json", "text"]:
    """The format the settings ask for; for ``auto``, text when ``stream`` (standard error)
    is a terminal, JSON otherwise."""
    if settings.log_format != "auto":
        return settings.log_format
    stream = sys.stderr if stream is None else stream
    try:
        return "text" if stream.isatty() else "json"
    except (AttributeError, ValueError):  # a replaced or closed stream: not a terminal
        return "json"


def logging_config(settings: Settings) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for every EatCloud process."""
    formatters: dict[str, Any] = {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(message)s "
            + " ".join(f"%({name})s" for name in _FIELDS),
            "rename_fields": {
                "asctime": "ts",
                "levelname": "level",
                "name": "logger",
                "message": "msg",
            },
        },
        "text": {"()": ShortText},
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextIds}, "throttle": {"()": Throttle}},
        "formatters": formatters,
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": log_format(settings),
                "filters": ["throttle", "context"],
            }
        },
        "root": {"level": settings.log_level.upper(), "handlers": ["default"]},
        "loggers": {
            # Per-message DEBUG chatter that costs the worker measurable time (docs/benchmarks).
            "aiokafka": {"level": "INFO"},
            "faust.topics": {"level": "INFO"},
            "uvicorn.access": {"level": "WARNING"},
        },
    }
