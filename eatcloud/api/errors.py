"""Every error the API returns is an RFC 9457 problem+json body; status codes are decided here.

A dependency outage is 503 with ``Retry-After``, never 401 or 500: the client's request and
credentials are fine and the same request will succeed once the dependency is back. Adapters
raise ``InfrastructureError``; what a driver raises on its own (asyncpg lets a refused
connection through as ``OSError``, for one) is classified by
``eatcloud.outages.unavailable_dependency``, which the worker uses too.
"""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import orjson
from asyncpg.exceptions import CharacterNotInRepertoireError, UntranslatableCharacterError
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from eatcloud.checkout import SoldOut
from eatcloud.errors import (
    Busy,
    Conflict,
    EatCloudError,
    Forbidden,
    InfrastructureError,
    NotFound,
    RateLimited,
    Unauthorized,
    Unprocessable,
)
from eatcloud.locks.lock import LockBusy
from eatcloud.observability.metrics import Metrics
from eatcloud.outages import DRIVER_ERRORS, unavailable_dependency

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
TYPE_BASE = "https://eatcloud.dev/problems/"
# When a 503's client should try again. Pools replace dead connections on their next use, so
# the first retry after the dependency is back succeeds.
RETRY_AFTER_SECONDS = 5


def problem(
    status: int,
    detail: str | None = None,
    *,
    slug: str | None = None,
    headers: dict[str, str] | None = None,
    **extensions: Any,
) -> Response:
    """A problem+json response; ``extensions`` become extra members of the body. A 503 always
    says when to come back (``Retry-After``)."""
    if status == 503:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS), **(headers or {})}
    phrase = HTTPStatus(status).phrase
    body: dict[str, Any] = {
        "type": TYPE_BASE + (slug or phrase.lower().replace(" ", "-")),
        "title": phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    body.update(extensions)
    return json_response(body, status, media_type=PROBLEM_JSON, headers=headers)


def json_response(
    body: Any,
    status: int = 200,
    *,
    media_type: str = "application/json",
    headers: dict[str, str] | None = None,
) -> Response:
    """A JSON response serialised by orjson, for bodies that are not a response model."""
    return Response(orjson.dumps(body), status_code=status, media_type=media_type, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors = [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
        for err in exc.errors()
    ]
    return problem(
        422, "The request does not match the schema.", slug="validation-error", errors=errors
    )


# Domain errors by class: the one place that decides their HTTP status.
_STATUS: list[tuple[type[EatCloudError], int, str]] = [
    (Unauthorized, 401, "unauthorized"),
    (Forbidden, 403, "forbidden"),
    (NotFound, 404, "not-found"),
    (Conflict, 409, "conflict"),
    (Unprocessable, 422, "unprocessable"),
    (RateLimited, 429, "rate-limited"),
    (InfrastructureError, 503, "dependency-unavailable"),
    (Busy, 503, "busy"),
]


async def _eatcloud_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, EatCloudError)
    found = next(((st, sl) for kind, st, sl in _STATUS if isinstance(exc, kind)), None)
    if found is None:
        return await _unexpected_error(request, exc)
    status, slug = found
    _count(exc, request.app.state.services.metrics)
    headers: dict[str, str] = {}
    if isinstance(exc, Unauthorized):
        headers["WWW-Authenticate"] = "Bearer"
    if isinstance(exc, RateLimited | Busy):
        headers["Retry-After"] = str(exc.retry_after)
    if isinstance(exc, InfrastructureError):
        cause = exc.__cause__
        what = unavailable_dependency(cause) if cause is not None else None
        return _unavailable(request, exc, what or "dependency")
    # An error may name its own problem type and add members (e.g. which menu is sold out).
    slug = getattr(exc, "slug", slug)
    extensions: dict[str, Any] = getattr(exc, "extensions", {})
    return problem(status, str(exc) or None, slug=slug, headers=headers or None, **extensions)


def _count(exc: EatCloudError, bundle: Metrics) -> None:
    """Refusals worth watching: busy checkout locks, gate rejections, rate limits."""
    if isinstance(exc, RateLimited):
        bundle.rate_limited.labels(exc.bucket).inc()
    elif isinstance(exc, SoldOut):
        bundle.gate_rejections.inc()
    elif isinstance(exc, LockBusy):
        bundle.checkout_lock_busy.inc()


async def _driver_error(request: Request, exc: Exception) -> Response:
    what = unavailable_dependency(exc)
    if what is None:
        return await _unexpected_error(request, exc)
    return _unavailable(request, exc, what)


def _unavailable(request: Request, exc: Exception, what: str) -> Response:
    # What failed goes to the log; the client learns only that it may retry.
    log.warning(
        "%s unavailable on %s %s: %s: %s",
        what,
        request.method,
        request.url.path,
        type(exc).__name__,
        exc,
    )
    return problem(503, "A dependency is unavailable; retry later.", slug="dependency-unavailable")


async def _unstorable_text(request: Request, exc: Exception) -> Response:
    # A NUL character (or one the database encoding lacks) in some text field: the client's
    # mistake, found only when PostgreSQL refuses to store it.
    return problem(422, "The request contains text with a character that cannot be stored (NUL).")


async def _unexpected_error(request: Request, exc: Exception) -> Response:
    # The traceback goes to the log, never to the client.
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    return problem(500, "An unexpected error occurred; it has been logged.")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(EatCloudError, _eatcloud_error)
    app.add_exception_handler(CharacterNotInRepertoireError, _unstorable_text)
    app.add_exception_handler(UntranslatableCharacterError, _unstorable_text)
    for driver_error in DRIVER_ERRORS:
        app.add_exception_handler(driver_error, _driver_error)
    app.add_exception_handler(Exception, _unexpected_error)
