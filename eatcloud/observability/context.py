"""The request id and W3C trace context of the work in progress, in contextvars.

An HTTP request sets them from ``X-Request-ID`` and ``traceparent`` (or makes new ones); they
go into the outbox row's headers, from there into the Kafka headers, the agents' context and
the log lines. Trace context uses OpenTelemetry's API and its W3C propagator, so a real tracer
(an OpenTelemetry SDK) can be plugged in without touching this code. Without an SDK the API's
tracer records nothing, so when a request has no ``traceparent`` we start a trace id ourselves.
Tracing fails open: any error here leaves the request without a trace, never breaks it.
"""

from __future__ import annotations

import logging
import re
import secrets
import uuid
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

request_id: ContextVar[str | None] = ContextVar("request_id", default=None)
order_id: ContextVar[str | None] = ContextVar("order_id", default=None)
_propagator = TraceContextTextMapPropagator()
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def clean_request_id(value: str | None) -> str:
    """The caller's request id when it is sane, else a new one (never trust it into logs raw)."""
    if value and _REQUEST_ID.match(value):
        return value
    return uuid.uuid4().hex


def start_trace(carrier: dict[str, str]) -> Any:
    """Attach the trace context of ``carrier`` (or a new one); returns a token for ``detach``."""
    try:
        ctx = _propagator.extract(carrier)
        if not trace.get_current_span(ctx).get_span_context().is_valid:
            span_context = trace.SpanContext(
                trace_id=int.from_bytes(secrets.token_bytes(16), "big") or 1,
                span_id=int.from_bytes(secrets.token_bytes(8), "big") or 1,
                is_remote=False,
                trace_flags=trace.TraceFlags(trace.TraceFlags.SAMPLED),
            )
            ctx = trace.set_span_in_context(trace.NonRecordingSpan(span_context))
        return otel_context.attach(ctx)
    except Exception:  # fail open: a broken tracer never breaks the work
        log.warning("trace context could not be started", exc_info=True)
        return None


def end_trace(token: Any) -> None:
    if token is not None:
        try:
            otel_context.detach(token)
        except Exception:  # fail open
            log.warning("trace context could not be detached", exc_info=True)


def trace_headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current trace, plus ``x-request-id``."""
    carrier: dict[str, str] = {}
    try:
        _propagator.inject(carrier)
    except Exception:  # fail open
        log.warning("trace context could not be injected", exc_info=True)
    rid = request_id.get()
    if rid:
        carrier["x-request-id"] = rid
    return carrier


def trace_id() -> str | None:
    """The current trace id as 32 hex digits, or None."""
    try:
        span_context = trace.get_current_span().get_span_context()
    except Exception:  # fail open
        return None
    return format(span_context.trace_id, "032x") if span_context.is_valid else None
