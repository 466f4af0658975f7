"""Which driver errors are a dependency outage (503 with Retry-After) and which are bugs (500),
and the Redis client that replaces dead pooled connections."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest
from asyncpg import exceptions as pg
from asyncpg.exceptions._base import DataError as AsyncpgArgumentError
from redis import exceptions as rd

from eatcloud.api.app import create_app
from eatcloud.bootstrap import build
from eatcloud.errors import InfrastructureError
from eatcloud.outages import on_connection, outlasting, transient, unavailable_dependency
from eatcloud.settings import Settings

OUTAGES: list[tuple[BaseException, str]] = [
    (rd.ConnectionError("Error 111 connecting to 127.0.0.1:6379"), "redis"),
    (rd.ConnectionError("Connection closed by server."), "redis"),
    (rd.TimeoutError("Timeout reading from socket"), "redis"),
    (rd.BusyLoadingError("Redis is loading the dataset in memory"), "redis"),
    (rd.ReadOnlyError("You can't write against a read only replica."), "redis"),
    (pg.CannotConnectNowError("the database system is starting up"), "postgres"),
    (pg.AdminShutdownError("terminating connection due to administrator command"), "postgres"),
    (pg.ConnectionDoesNotExistError("connection was closed mid-operation"), "postgres"),
    (pg.TooManyConnectionsError("sorry, too many clients already"), "postgres"),
    (pg.InterfaceError("connection is closed"), "postgres"),
    (ConnectionRefusedError(111, "Connect call failed ('127.0.0.1', 5432)"), "network"),
    (OSError("Multiple exceptions: [Errno 111] ..., [Errno 99] ..."), "network"),
    (TimeoutError(), "network"),
]  # fmt: skip

BUGS: list[BaseException] = [
    rd.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
    rd.DataError("Invalid input of type: 'dict'"),
    pg.UniqueViolationError("duplicate key value violates unique constraint"),
    pg.UndefinedColumnError('column "nope" does not exist'),
    AsyncpgArgumentError("invalid input for query argument $1"),
    RuntimeError("a plain bug"),
]


@pytest.mark.parametrize(("error", "dependency"), OUTAGES, ids=lambda v: type(v).__name__)
def test_a_driver_error_that_means_an_outage_names_the_dependency(
    error: BaseException, dependency: str
) -> None:
    assert unavailable_dependency(error) == dependency


@pytest.mark.parametrize("error", BUGS, ids=lambda v: type(v).__name__)
def test_a_driver_error_that_means_a_bug_is_not_an_outage(error: BaseException) -> None:
    assert unavailable_dependency(error) is None


async def answer_to(error: BaseException) -> httpx.Response:
    """What the API answers when a route meets ``error``."""
    app = create_app(build(Settings()))

    @app.get("/_fail")
    async def fail() -> None:
        raise error

    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get("/_fail")


@pytest.mark.parametrize(
    "error",
    [*(e for e, _ in OUTAGES), InfrastructureError("session store: Connection refused")],
    ids=lambda v: type(v).__name__,
)
async def test_an_outage_answers_503_problem_json_with_retry_after_and_no_internals(
    error: BaseException,
) -> None:
    response = await answer_to(error)
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["type"].endswith("/dependency-unavailable")
    if str(error):  # what failed is for the log, not the client
        assert str(error) not in response.text


@pytest.mark.parametrize("error", BUGS, ids=lambda v: type(v).__name__)
async def test_a_driver_bug_still_answers_500_without_internals(error: BaseException) -> None:
    response = await answer_to(error)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert str(error) not in response.text


def test_the_redis_client_pings_idle_connections_and_retries_a_dead_one_once() -> None:
    settings = Settings()
    client = build(settings).redis()
    options = client.connection_pool.connection_kwargs  # type: ignore[attr-defined]  # real client
    redis = settings.redis
    assert options["health_check_interval"] == redis.health_check_interval_seconds > 0
    assert options["socket_timeout"] == redis.socket_timeout_seconds
    assert options["socket_connect_timeout"] == redis.connect_timeout_seconds
    connection = client.connection_pool.make_connection()  # type: ignore[attr-defined]
    assert connection.retry.get_retries() == 1
    assert {rd.ConnectionError, rd.TimeoutError} <= set(connection.retry._supported_errors)


async def test_the_worker_waits_out_an_outage_and_then_carries_on() -> None:
    tries: list[int] = []

    async def attempt() -> str:
        tries.append(len(tries) + 1)
        if len(tries) < 3:
            raise (pg.CannotConnectNowError, rd.ConnectionError)[len(tries) - 1]("down")
        return "done"

    assert await outlasting("test", attempt, first=0.001, cap=0.002) == "done"
    assert tries == [1, 2, 3]


@pytest.mark.parametrize("error", [pg.DeadlockDetectedError, pg.SerializationError])
async def test_a_transaction_postgresql_rolled_back_itself_is_tried_again(
    error: type[Exception],
) -> None:
    """A projection batch that lost a deadlock (two workers in a rebalance) was written by
    nobody: trying it again is right, crashing the agent would lose it."""
    tries: list[int] = []

    async def attempt() -> str:
        tries.append(len(tries) + 1)
        if len(tries) == 1:
            raise error("deadlock detected")
        return "done"

    assert await outlasting("test", attempt, first=0.001, cap=0.002) == "done"
    assert tries == [1, 2]


@pytest.mark.parametrize("error", BUGS, ids=lambda v: type(v).__name__)
async def test_the_worker_does_not_retry_a_bug(error: BaseException) -> None:
    tries = 0

    async def attempt() -> None:
        nonlocal tries
        tries += 1
        raise error

    with pytest.raises(type(error)):
        await outlasting("test", attempt, first=0.001, cap=0.002)
    assert tries == 1


def test_a_loop_waits_out_outages_and_its_clients_own_try_again_errors_only() -> None:
    from aiokafka.errors import KafkaConnectionError, KafkaError

    assert transient(pg.CannotConnectNowError("starting up"))
    assert transient(KafkaConnectionError(), (KafkaError,))
    assert not transient(KafkaConnectionError())
    assert not transient(RuntimeError("a plain bug"), (KafkaError,))


class _Conn:
    def __init__(self, closed: bool) -> None:
        self.closed = closed

    def is_closed(self) -> bool:
        return self.closed


class _Pool:
    def __init__(self, conn: _Conn) -> None:
        self.conn = conn

    @contextlib.asynccontextmanager
    async def acquire(self) -> AsyncIterator[_Conn]:
        yield self.conn


@pytest.mark.parametrize("closed", [True, False])
async def test_a_connection_killed_mid_operation_is_an_outage_not_a_bug(closed: bool) -> None:
    """What a PostgreSQL restart did to a projection in CI: asyncpg said "another operation
    is in progress" on the connection it was killing, and the agent crashed, losing its batch.
    On a closed connection that is an outage (waited out); on an open one it stays a bug."""

    async def work(conn: _Conn) -> None:
        raise pg.InternalClientError(
            "cannot switch to state 15; another operation (2) is in progress"
        )

    with pytest.raises(Exception) as raised:
        await on_connection(_Pool(_Conn(closed)), work)
    assert isinstance(raised.value, pg.InternalClientError) is not closed
    assert (unavailable_dependency(raised.value) == "postgres") is closed
