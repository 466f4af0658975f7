"""ASGI middleware: every request gets a request id and a trace context, echoed back."""

from __future__ import annotations

import logging
import time
from typing import Any

from eatcloud.observability import context
from eatcloud.observability.metrics import Metrics

log = logging.getLogger("eatcloud.api.access")


class RequestContext:
    """Sets ``X-Request-ID`` (kept or made) and ``traceparent`` for the request and the reply."""

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        rid = context.clean_request_id(headers.get("x-request-id"))
        rid_token = context.request_id.set(rid)
        oid_token = context.order_id.set(None)
        carrier = {k: headers[k] for k in ("traceparent", "tracestate") if k in headers}
        trace_token = context.start_trace(carrier)
        echo = [(b"x-request-id", rid.encode())]
        traceparent = context.trace_headers().get("traceparent")
        if traceparent:
            echo.append((b"traceparent", traceparent.encode()))

        status = 500
        started = time.perf_counter()

        async def send_with_ids(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *echo]
            await send(message)

        try:
            await self.app(scope, receive, send_with_ids)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            bundle = self.metrics
            bundle.http_requests.labels(route, scope["method"], str(status)).inc()
            bundle.http_seconds.labels(route, scope["method"]).observe(elapsed)
            log.info(
                "%s %s %d %.1fms request_id=%s trace_id=%s order_id=%s",
                scope["method"],
                scope["path"],
                status,
                1000 * elapsed,
                rid,
                context.trace_id(),
                context.order_id.get(),
            )
            context.end_trace(trace_token)
            context.request_id.reset(rid_token)
            context.order_id.reset(oid_token)
