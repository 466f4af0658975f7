"""Log lines as JSON (ts, level, logger, msg, request_id, trace_id, order_id), one per line.

The ids come from the context of the work in progress (``observability.context``): an HTTP
request, or the Kafka message an agent is handling. The same dictConfig serves uvicorn (the
API) and Faust (the worker), so every process writes the same shape.
"""

from __future__ import annotations

import logging
from typing import Any

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
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s: %(message)s "
            "[request_id=%(request_id)s trace_id=%(trace_id)s order_id=%(order_id)s]",
        },
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextIds}},
        "formatters": formatters,
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": settings.log_format,
                "filters": ["context"],
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
