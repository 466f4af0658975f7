"""Which failures mean "a dependency is down", and how the worker waits one out.

One classification serves both sides: the API answers 503 with ``Retry-After`` for these
(``eatcloud.api.errors``), and the worker's loops that talk to PostgreSQL or Redis
(projections, the outbox relay, the backlog sampler) retry them with backoff instead of
crashing. A PostgreSQL or Redis restart is an outage the worker must sit through: a crashed
Faust agent comes back without the batch it was holding, and a crashed task stops the worker.
Anything else a driver raises (a WRONGTYPE reply, a constraint violation, a bad argument) is
a bug, and retrying it would only hide it: it propagates.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from asyncpg import exceptions as pg
from redis import exceptions as rd
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, wait_exponential_jitter

log = logging.getLogger(__name__)
T = TypeVar("T")

# Driver errors that mean "the dependency is down or refusing work", by driver.
_REDIS_DOWN: tuple[type[Exception], ...] = (
    rd.ConnectionError,  # refused, reset, closed; also LOADING, pool exhausted, bad password
    rd.TimeoutError,
    rd.ReadOnlyError,  # a replica answering during a failover
    rd.OutOfMemoryError,  # full: writes refused
)
_POSTGRES_DOWN: tuple[type[Exception], ...] = (
    pg.PostgresConnectionError,  # class 08: the connection failed or was lost
    pg.InsufficientResourcesError,  # class 53: too many connections, out of memory, disk full
    pg.OperatorInterventionError,  # class 57: shutting down, starting up, query cancelled
    pg.InterfaceError,  # "connection is closed", "pool is closing" (minus the ones below)
)
_POSTGRES_BUGS: tuple[type[Exception], ...] = (
    ValueError,  # asyncpg's client-side DataError and ClientConfigurationError
    pg.UnsupportedClientFeatureError,
    pg.UnsupportedServerFeatureError,
)

# Every class ``unavailable_dependency`` decides about (the API routes these to it).
DRIVER_ERRORS: tuple[type[Exception], ...] = (rd.RedisError, *_POSTGRES_DOWN, OSError)


def unavailable_dependency(exc: BaseException) -> str | None:
    """Which dependency ``exc`` says is unavailable, or None when it is not an outage."""
    if isinstance(exc, rd.RedisError):
        return "redis" if isinstance(exc, _REDIS_DOWN) else None
    if isinstance(exc, _POSTGRES_DOWN):
        return None if isinstance(exc, _POSTGRES_BUGS) else "postgres"
    if isinstance(exc, OSError):
        # Drivers let a socket's failure through as it is (refused, reset, unreachable, DNS,
        # TLS, timed out; TimeoutError is an OSError too).
        return "network"
    return None


def is_open(conn: Any) -> bool:
    """Whether a pooled PostgreSQL connection is still open (a proxy already released counts
    as closed)."""
    try:
        return not conn.is_closed()
    except pg.InterfaceError:
        return False


async def on_connection(pool: Any, work: Callable[[Any], Awaitable[T]]) -> T:
    """``work`` on a pooled connection. A connection a PostgreSQL restart kills in the middle
    of an operation may make asyncpg raise an ``InternalClientError`` ("another operation is
    in progress") instead of a connection error; on a connection that is closed by then, that
    is the outage it is, and is raised as one (a crashed projection agent would lose its
    batch)."""
    async with pool.acquire() as conn:
        try:
            return await work(conn)
        except pg.InternalClientError as exc:
            if is_open(conn):
                raise
            raise pg.ConnectionDoesNotExistError(f"lost in the middle of work: {exc}") from exc


def _is_outage(exc: BaseException) -> bool:
    return unavailable_dependency(exc) is not None


# PostgreSQL rolled the transaction back itself (class 40: a deadlock, a serialization
# failure): nothing of it was written, and the same work may simply run again.
_ROLLED_BACK: tuple[type[Exception], ...] = (pg.TransactionRollbackError,)


def _worth_again(exc: BaseException) -> bool:
    return _is_outage(exc) or isinstance(exc, _ROLLED_BACK)


def transient(exc: BaseException, also: tuple[type[BaseException], ...] = ()) -> bool:
    """An outage, or one of ``also`` (a client's own "try again" errors, e.g. KafkaError):
    what a long-running loop waits out. Anything else is a bug."""
    return isinstance(exc, also) or _is_outage(exc)


async def outlasting(
    what: str,
    attempt: Callable[[], Awaitable[T]],
    *,
    first: float = 0.5,
    cap: float = 30.0,
) -> T:
    """``await attempt()`` until it succeeds, waiting out outages with jittered exponential
    backoff (``first`` doubling up to ``cap`` seconds), for as long as they last; a
    transaction PostgreSQL rolled back itself (a deadlock, a serialization failure) is tried
    again the same way.

    ``attempt`` must be safe to repeat: it runs again from its start after a failure.
    Each failed try logs one warning; the log's throttle folds a long outage's repeats.
    """

    def warn(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        wait = state.next_action.sleep if state.next_action else 0.0
        log.warning(
            "%s: %s (%s: %s); try %d again in %.1f s",
            what,
            f"{unavailable_dependency(exc)} unavailable"
            if exc is not None and _is_outage(exc)
            else "rolled back",
            type(exc).__name__,
            exc,
            state.attempt_number + 1,
            wait,
        )

    retrying = AsyncRetrying(
        retry=retry_if_exception(_worth_again),
        wait=wait_exponential_jitter(initial=first, max=cap),
        before_sleep=warn,
        reraise=True,
    )
    return await retrying(attempt)
