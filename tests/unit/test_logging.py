"""Log lines are JSON with the ids of the work in progress."""

from __future__ import annotations

import io
import logging
import logging.config

import orjson

from eatcloud.observability import context
from eatcloud.observability.logging import log_format, logging_config
from eatcloud.settings import Settings


def _capture(settings: Settings) -> tuple[logging.Logger, io.StringIO]:
    config = logging_config(settings)
    stream = io.StringIO()
    config["handlers"]["default"]["stream"] = stream
    config["root"]["handlers"] = []
    config["loggers"]["eatcloud.test.log"] = {"handlers": ["default"], "propagate": False}
    logging.config.dictConfig(config)
    return logging.getLogger("eatcloud.test.log"), stream


def test_a_log_line_is_json_with_request_trace_and_order_ids() -> None:
    logger, stream = _capture(Settings(log_format="json"))
    rid = context.request_id.set("req-42")
    oid = context.order_id.set("order-7")
    trace = context.start_trace(
        {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    )
    try:
        logger.info("paid %s", "order-7")
    finally:
        context.end_trace(trace)
        context.request_id.reset(rid)
        context.order_id.reset(oid)
    line = orjson.loads(stream.getvalue().splitlines()[-1])
    assert line["msg"] == "paid order-7" and line["level"] == "INFO"
    assert line["logger"] == "eatcloud.test.log"
    assert (line["request_id"], line["order_id"]) == ("req-42", "order-7")
    assert line["trace_id"] == "0af7651916cd43dd8448eb211c80319c"
    assert "ts" in line


def test_outside_any_request_the_ids_are_null_and_a_bad_traceparent_is_ignored() -> None:
    logger, stream = _capture(Settings(log_format="json"))
    trace = context.start_trace({"traceparent": "garbage"})
    try:
        logger.warning("no context")
        fresh = context.trace_id()
    finally:
        context.end_trace(trace)
    line = orjson.loads(stream.getvalue().splitlines()[-1])
    assert line["request_id"] is None and line["order_id"] is None
    assert fresh is not None and len(fresh) == 32  # a new trace was started instead


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_auto_format_is_short_text_on_a_terminal_and_json_otherwise() -> None:
    auto = Settings(log_format="auto")
    assert log_format(auto, _Terminal()) == "text"
    assert log_format(auto, io.StringIO()) == "json"
    assert log_format(Settings(log_format="json"), _Terminal()) == "json"
    assert log_format(Settings(log_format="text"), io.StringIO()) == "text"


def test_a_text_line_is_short_and_names_only_the_ids_that_are_set() -> None:
    logger, stream = _capture(Settings(log_format="text"))
    oid = context.order_id.set("order-7")
    try:
        logger.info("paid")
    finally:
        context.order_id.reset(oid)
    logger.info("idle")
    paid, idle = stream.getvalue().splitlines()[-2:]
    assert paid.endswith("INFO  eatcloud.test.log: paid  order_id=order-7")
    assert idle.endswith("INFO  eatcloud.test.log: idle")
    assert len(paid.split(" ", 1)[0]) == len("07:14:26")  # the time of day, no date
