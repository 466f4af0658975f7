"""ASGI middleware: every request gets a request id and a trace context, echoed back; the
edge guard limits bodies, refuses NUL characters and adds security headers to every answer."""

from __future__ import annotations

import logging
import time
from typing import Any

import orjson

from eatcloud.api.errors import problem
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


# On every answer. The API serves JSON only; the Swagger UI under /docs gets a policy of its own
# (its page runs one inline script, its assets are served by the API itself).
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
]
API_POLICY = b"default-src 'none'; frame-ancestors 'none'"
DOCS_POLICY = (
    b"default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    b"img-src 'self' data:; frame-ancestors 'none'"
)
_WITH_BODY = {"POST", "PUT", "PATCH", "DELETE"}


class _TooLarge(Exception):
    pass


class EdgeGuard:
    """What every request passes before the application sees it.

    - A body over ``max_body_bytes`` is refused with 413 before it is parsed: at once when its
      ``Content-Length`` says so, else as soon as the bytes read pass the limit (chunked).
    - A NUL character in the path, the query or a JSON string of the body is refused with 422
      (PostgreSQL cannot store it, Redis keys and logs should not carry it).
    - Security headers go on every answer (``SECURITY_HEADERS`` and a Content-Security-Policy).
    """

    def __init__(self, app: Any, max_body_bytes: int, docs_paths: tuple[str, ...] = ()) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.docs_paths = docs_paths

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        policy = DOCS_POLICY if any(map(path.startswith, self.docs_paths)) else API_POLICY

        async def send_secured(message: Any) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in SECURITY_HEADERS if k not in present]
                if b"content-security-policy" not in present:
                    extra.append((b"content-security-policy", policy))
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        if "\x00" in path or b"%00" in scope["query_string"] or b"\x00" in scope["query_string"]:
            await _nul(scope, receive, send_secured)
            return
        if scope["method"] not in _WITH_BODY:
            await self.app(scope, receive, send_secured)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            await self._too_large(scope, receive, send_secured)
            return
        try:
            body, last = await self._read(receive)
        except _TooLarge:
            await self._too_large(scope, receive, send_secured)
            return
        if _has_nul(body):
            await _nul(scope, receive, send_secured)
            return
        replayed = False

        async def replay() -> Any:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {**last, "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send_secured)

    async def _read(self, receive: Any) -> tuple[bytes, Any]:
        """The whole body (at most ``max_body_bytes``) and its last message."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks), {"type": "http.request"}
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks), message

    async def _too_large(self, scope: Any, receive: Any, send: Any) -> None:
        answer = problem(
            413,
            f"The request body is larger than {self.max_body_bytes} bytes.",
            slug="body-too-large",
        )
        await answer(scope, receive, send)


async def _nul(scope: Any, receive: Any, send: Any) -> None:
    answer = problem(
        422,
        "The request contains a NUL character; no name, term or identifier may hold one.",
        slug="nul-character",
    )
    await answer(scope, receive, send)


def _has_nul(body: bytes) -> bool:
    """Whether a JSON body holds a NUL in some string (or key). The cheap test first: a NUL
    can reach a JSON string only as the escape ``\\u0000`` (a raw one is invalid JSON)."""
    if b"\\u0000" not in body and b"\x00" not in body:
        return False
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return b"\x00" in body  # not JSON: the schema check answers 422 anyway
    return _holds_nul(document)


def _holds_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_holds_nul(k) or _holds_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_nul(v) for v in value)
    return False
