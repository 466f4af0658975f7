"""The ``eatcloud`` command: the local stack, the worker, the API, and all of them at once."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import sys
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, TypeVar

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from eatcloud.errors import EXIT_CONFIG, EXIT_UNIT_FAILED, StackError
from eatcloud.ops.supervise import Child, Supervisor
from eatcloud.postgres.migrate import Migration

if TYPE_CHECKING:
    from rich.progress import TaskID

    from eatcloud.kinesis.reader import StreamReader
    from eatcloud.ops.demo import DemoRun
    from eatcloud.resources import Services
from eatcloud.settings import ConfigurationError, Settings, get_settings
from eatcloud.stack.secrets import local_signing_key

console = Console(highlight=False)
T = TypeVar("T")


def say(message: str) -> None:
    console.print(message)


@click.group()
def main() -> None:
    """EatCloud: a food-delivery order platform on Kafka streams."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # Probes of a service that is still starting fail by design; aiokafka logs each as an error.
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)


@main.group()
def stack() -> None:
    """The local development stack: Kafka, PostgreSQL + PostGIS, Redis, Kinesis emulator."""


@stack.command("up")
def stack_up() -> None:
    """Install what is missing and start every service that does not answer yet."""
    from eatcloud.stack import manager

    try:
        manager.up(get_settings(), say)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    _print_status(get_settings())


@stack.command("down")
def stack_down() -> None:
    """Stop the services that ``stack up`` started (never one it did not start)."""
    from eatcloud.stack import manager

    manager.down(get_settings(), say)


@stack.command("status")
def stack_status() -> None:
    """Show each service, its address and whether it answers; exit 1 if one does not."""
    if not _print_status(get_settings()):
        sys.exit(1)


def _print_status(settings: Settings) -> bool:
    from eatcloud.stack import manager

    table = Table("service", "address", "state", "detail")
    rows = manager.status(settings)
    for row in rows:
        owner = f"up, pid {row.pid}" if row.pid else "up (not started by eatcloud)"
        state = f"[green]{owner}[/]" if row.probe.ok else "[red]down[/]"
        table.add_row(row.probe.name, row.probe.address, state, row.probe.detail)
    console.print(table)
    return all(row.probe.ok for row in rows)


@main.group()
def db() -> None:
    """The PostgreSQL schema."""


@db.command("migrate")
def db_migrate() -> None:
    """Apply the schema migrations that this database has not had yet."""
    import asyncio

    from eatcloud.errors import InfrastructureError

    try:
        applied = asyncio.run(_migrate(get_settings()))
    except (InfrastructureError, OSError) as exc:
        raise click.ClickException(f"migration failed: {exc}") from exc
    for migration in applied:
        say(f"applied {migration.version:04d}_{migration.name}")
    say(f"schema is up to date ({len(applied)} applied now)")


async def _migrate(settings: Settings, *, dry: bool = False) -> list[Migration]:
    """Apply the pending migrations, or with ``dry`` only list them."""
    import asyncpg

    from eatcloud.postgres.migrate import migrate, pending

    conn = await asyncpg.connect(dsn=settings.postgres.dsn(), timeout=10)
    try:
        return list(await (pending(conn) if dry else migrate(conn)))
    finally:
        await conn.close()


@db.command("wait")
@click.option("--timeout", default=300.0, show_default=True, help="Seconds to wait at most.")
@click.option("--interval", default=2.0, show_default=True, help="Seconds between checks.")
def db_wait(timeout: float, interval: float) -> None:
    """Wait until the database has every migration of this version (it applies none).

    The Helm chart's api and worker pods run this before they start, while the migrations
    Job applies the schema.
    """
    import asyncio

    deadline = time.monotonic() + timeout
    while True:
        try:
            left = asyncio.run(_migrate(get_settings(), dry=True))
            problem = f"{len(left)} migration(s) pending" if left else ""
        except Exception as exc:  # the database may not answer yet: keep waiting
            problem = f"database not reachable ({type(exc).__name__}: {exc})"
        if not problem:
            say("schema is up to date")
            return
        if time.monotonic() >= deadline:
            raise click.ClickException(f"gave up after {timeout:g} s: {problem}")
        say(f"waiting for the schema: {problem}")
        time.sleep(interval)


@main.group()
def projections() -> None:
    """The read models (CQRS) built from the event log."""


@projections.command("rebuild")
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def projections_rebuild(yes: bool) -> None:
    """Rebuild the read models from the event topics (from offset 0), into
    shadow tables swapped in at once; refused when the log has lost its oldest events."""
    import asyncio

    from eatcloud.postgres.rebuild import TABLES, HistoryLost, rebuild

    settings = get_settings()
    if not yes:
        click.confirm(f"Rebuild {', '.join(TABLES)} from every event?", abort=True)
    try:
        with _progress_bar() as progress:
            result = asyncio.run(_served(settings, lambda s: rebuild(s, progress), pool_size=2))
    except HistoryLost as exc:
        raise click.ClickException(str(exc)) from exc
    for topic, count in result.events.items():
        say(f"{topic}: {count} events replayed")
    if result.skipped:
        say(f"[yellow]{result.skipped} undecodable events skipped[/]")


@main.group()
def topics() -> None:
    """The platform's Kafka topics."""


@topics.command("keep-history")
def topics_keep_history() -> None:
    """Make the event topics (order-, stock- and points-events) keep every event (retention.ms=-1,
    retention.bytes=-1, cleanup.policy=delete), keeping their other settings. Workers refuse
    to run until they do."""
    import asyncio

    from aiokafka.errors import KafkaError

    from eatcloud.streams import retention

    settings = get_settings()
    try:
        changed = asyncio.run(retention.keep_history(settings))
        left = asyncio.run(retention.problems(settings))
    except (KafkaError, retention.HistoryAtRisk) as exc:
        raise click.ClickException(f"Kafka at {settings.kafka.bootstrap_servers}: {exc}") from exc
    for name in changed:
        say(f"{name}: now keeps every event")
    if left:
        raise click.ClickException("still set to delete events: " + "; ".join(left))
    if not changed:
        say("the event topics keep every event already (or do not exist yet)")


@main.group()
def saga() -> None:
    """Order sagas, as the workers hold them."""


@saga.command("show")
@click.argument("order_id")
def saga_show(order_id: str) -> None:
    """A saga's state (from its changelog) and its timeline (from the read model)."""

    from eatcloud.ops.saga import report
    from eatcloud.ops.views import saga_tables

    found = _run_ops(lambda s: report(s, order_id))
    if found.state is None and not found.timeline:
        raise click.ClickException(f"no saga and no timeline for order {order_id}")
    if found.state is None:
        say("[yellow]no saga state: no worker has this order in its table[/]")
    for table in saga_tables(found):
        console.print(table)


@main.group()
def dlq() -> None:
    """Poison messages the agents parked in the <topic>-dlq topics."""


_DLQ_TOPIC = click.option(
    "--topic", default=None, help="one input topic (e.g. order-commands); default: all of them"
)


@dlq.command("list")
@_DLQ_TOPIC
def dlq_list(topic: str | None) -> None:
    """Every parked message: where it came from, why, and whether it was replayed."""
    from eatcloud.ops.dlq import parked
    from eatcloud.ops.views import dlq_table

    console.print(dlq_table(_run_ops(lambda s: parked(s.settings, topic))))


@dlq.command("replay")
@_DLQ_TOPIC
@click.option("--yes", is_flag=True, help="do not ask for confirmation")
def dlq_replay(topic: str | None, yes: bool) -> None:
    """Send the parked messages not replayed yet back to the topics they came from."""
    from eatcloud.ops.dlq import parked, replay

    waiting = [p for p in _run_ops(lambda s: parked(s.settings, topic)) if not p.replayed]
    if not waiting:
        say("nothing to replay")
        return
    if not yes:
        click.confirm(f"Send {len(waiting)} parked message(s) back to their topics?", abort=True)
    with _progress_bar() as progress:
        sent = _run_ops(lambda s: replay(s, topic, progress))
    for topic_name, count in sorted(Counter(p.topic for p in sent).items()):
        say(f"{topic_name}: {count} message(s) replayed")


@main.group()
def stock() -> None:
    """Stock of a store's menus (applied by the orchestrator's stock step)."""


@stock.command("adjust")
@click.argument("store_id")
@click.argument("menu_id")
@click.option("--delta", type=int, default=0, show_default=True, help="units to add (or remove)")
@click.option("--unlimited/--limited", default=None, help="switch unlimited stock on or off")
@click.option("--reason", default="operator adjustment", show_default=True)
def stock_adjust(
    store_id: str, menu_id: str, delta: int, unlimited: bool | None, reason: str
) -> None:
    """Queue a stock change (a delivery, a count correction) through the outbox."""
    from eatcloud.ops.stock import adjust

    if delta == 0 and unlimited is None:
        raise click.UsageError("give --delta N, --unlimited or --limited")
    command = _run_ops(lambda s: adjust(s, store_id, menu_id, delta, unlimited, reason))
    say(
        f"queued AdjustStock {command.event_id} ({delta:+d}"
        f"{'' if unlimited is None else ', unlimited' if unlimited else ', limited'}); "
        "the orchestrator applies it once the outbox relay has sent it"
    )


@main.command()
@click.option("--api", "api_url", default=None, help="the API's URL (default: the settings')")
@click.option("--orders", type=click.IntRange(1, 500), default=12, show_default=True)
@click.option("--customers", type=click.IntRange(1, 50), default=4, show_default=True)
def demo(api_url: str | None, orders: int, customers: int) -> None:
    """Seed a store and customers, then run a short scenario of orders, live.

    Needs the platform running (`eatcloud run` in another terminal).
    """

    import httpx
    from rich.live import Live

    from eatcloud.ops.demo import run_demo
    from eatcloud.ops.views import demo_table

    settings = get_settings()
    url = api_url or f"http://{settings.api.host}:{settings.api.port}"

    async def scenario(live: Live, services: Services) -> DemoRun:
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            return await run_demo(
                client,
                services,
                orders=orders,
                customers=customers,
                say=lambda line: live.console.print(line),
                on_update=lambda run: live.update(demo_table(run)),
            )

    with Live(console=console, refresh_per_second=4) as live:
        run = _run_ops(lambda s: scenario(live, s), api=url)
    counts = run.counts()
    say("")
    say(f"done in {run.elapsed:.1f} s: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    say(f"log in as {run.manager_email} (password {run.password}) to look around")


async def _served(
    settings: Settings, work: Callable[[Services], Awaitable[T]], pool_size: int = 1
) -> T:
    """``work`` on the clients of one ``build(settings)``, closed when it is done."""
    from eatcloud.bootstrap import build

    async with build(settings, pool_size=pool_size) as services:
        return await work(services)


def _run_ops(work: Callable[[Services], Awaitable[T]], api: str | None = None) -> T:
    """Run an operator command on the services of the settings (a PostgreSQL pool of one
    connection); what it cannot reach becomes a one-line error."""
    import asyncio

    import httpx
    from aiokafka.errors import KafkaError

    from eatcloud.errors import DomainError, InfrastructureError
    from eatcloud.ops.demo import DemoError

    try:
        return asyncio.run(_served(get_settings(), work))
    except httpx.TransportError as exc:
        raise click.ClickException(f"cannot reach the API at {api} ({exc})") from exc
    except (KafkaError, InfrastructureError, OSError) as exc:
        raise click.ClickException(f"a service did not answer: {exc}") from exc
    except (DomainError, DemoError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc


@contextmanager
def _progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A rich progress bar per topic, fed by ``(topic, done, total)`` calls."""
    from rich.progress import Progress

    with Progress(console=console) as bar:
        tasks: dict[str, TaskID] = {}

        def progress(topic: str, done: int, total: int) -> None:
            if topic not in tasks:
                tasks[topic] = bar.add_task(topic, total=max(total, 1))
            bar.update(tasks[topic], completed=done)

        yield progress


@main.group()
def analytics() -> None:
    """Figures per store from the Kinesis analytics stream."""


_FROM = click.option(
    "--from",
    "start",
    type=click.Choice(["latest", "trim-horizon"]),
    default="latest",
    show_default=True,
    help="read new records only, or the whole stream",
)


def _stream_reader(start: str) -> StreamReader:
    """A reader on the Kinesis client of ``build`` (the process ends with the command, and
    with it the client: nothing else was opened)."""
    from eatcloud.bootstrap import build
    from eatcloud.kinesis.reader import StreamReader

    settings = get_settings()
    stream, client = settings.kinesis.stream_name, build(settings).kinesis()
    if start == "latest":
        return StreamReader(client, stream, "LATEST")
    return StreamReader(client, stream, "TRIM_HORIZON")


@analytics.command("watch")
@_FROM
@click.option("--seconds", type=float, default=None, help="stop after this long (default: Ctrl-C)")
@click.option("--interval", type=float, default=1.0, show_default=True)
def analytics_watch(start: str, seconds: float | None, interval: float) -> None:
    """A live table per store: orders/minute, revenue, basket, cancellations, time to accept."""
    from rich.live import Live

    from eatcloud.kinesis.analytics import Analytics
    from eatcloud.kinesis.views import table

    reader, figures = _stream_reader(start), Analytics()
    until = None if seconds is None else time.monotonic() + seconds
    try:
        with Live(table(figures), console=console, refresh_per_second=4) as live:
            while until is None or time.monotonic() < until:
                for record in reader.poll():
                    figures.feed(record)
                live.update(table(figures))
                time.sleep(interval)
    except KeyboardInterrupt:
        pass


@analytics.command("report")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), required=True)
@_FROM
def analytics_report(out: Path, start: str) -> None:
    """Read the stream to its end and draw the figures over time as a PNG chart."""
    from eatcloud.kinesis.analytics import Analytics
    from eatcloud.kinesis.views import chart, table

    reader, figures = _stream_reader(start), Analytics()
    for record in reader.read_to_end():
        figures.feed(record)
    chart(figures, out)
    console.print(table(figures))
    say(f"chart written to {out}")


@main.group()
def users() -> None:
    """Accounts that cannot sign themselves up."""


@users.command("create-admin")
@click.option("--email", required=True)
@click.option("--name", default="Admin", show_default=True)
@click.password_option()
def users_create_admin(email: str, name: str, password: str) -> None:
    """Create an admin account (admins are never self-service)."""
    import asyncio

    from eatcloud.errors import Conflict

    try:
        user_id = asyncio.run(
            _served(get_settings(), lambda s: _create_admin(s, email, name, password))
        )
    except Conflict as exc:
        raise click.ClickException(f"an account already uses {email}") from exc
    say(f"admin {email} created: {user_id}")


async def _create_admin(services: Services, email: str, name: str, password: str) -> str:
    from eatcloud.api.security import hash_password
    from eatcloud.postgres.users import create_user

    pool = await services.pool()
    user = await create_user(pool, email, await hash_password(password), "ADMIN", name)
    return user.id


def faust_worker_argv(app: str, log_level: str, web_host: str, web_port: int) -> list[str]:
    """``python -m faust -A <app> worker`` with a log level and a web server of its own."""
    level = log_level.lower().replace("warning", "warn")
    return [sys.executable, "-m", "faust", "-A", app, "worker", "-l", level,
            "--web-bind", web_host, "--web-port", str(web_port)]  # fmt: skip


def _worker_argv(settings: Settings) -> list[str]:
    worker = settings.worker
    return faust_worker_argv("eatcloud.app", settings.log_level, worker.web_host, worker.web_port)


def _api_argv(settings: Settings) -> list[str]:
    return [sys.executable, "-m", "eatcloud.cli", "api"]


@main.command()
def worker() -> None:
    """Run the Faust worker (agents, tables, relay) for this node."""
    argv = _worker_argv(get_settings())
    os.execv(argv[0], argv)


@main.command()
def api() -> None:
    """Run the HTTP API under uvicorn (JSON log lines; our middleware logs each request)."""
    import uvicorn

    from eatcloud.observability.logging import logging_config

    settings = get_settings()
    try:
        settings.signing_key()
    except ConfigurationError as exc:
        say(f"[red]the API cannot start: {escape(str(exc))}[/]")
        sys.exit(EXIT_CONFIG)
    uvicorn.run(
        "eatcloud.api.app:create_app",
        factory=True,
        host=settings.api.host,
        port=settings.api.port,
        log_config=logging_config(settings),
        access_log=False,
    )


@main.command()
def run() -> None:
    """Start the stack, the worker and the API; Ctrl-C stops everything this command started."""
    from eatcloud.stack import manager

    settings = get_settings()
    if settings.auth.jwt_secret is None:  # a laptop's own key, kept across runs
        os.environ["EATCLOUD_AUTH__JWT_SECRET"] = local_signing_key(settings.stack.data_dir)
        say(f"signing tokens with the local key in {settings.stack.data_dir / 'jwt-secret'}")
    try:
        started = manager.up(settings, say)
    except StackError as exc:
        raise click.ClickException(str(exc)) from exc
    import asyncio

    applied = asyncio.run(_migrate(settings))
    say(f"schema is up to date ({len(applied)} migration(s) applied now)")
    # Any exit of either child restarts it with backoff; the other keeps running (the API keeps
    # taking checkouts into the outbox while the worker is away). See eatcloud/ops/supervise.py.
    supervisor = Supervisor(
        [
            # EXIT_UNIT_FAILED: the worker stopped itself to have its records read again.
            Child("worker", _worker_argv(settings), {EXIT_UNIT_FAILED: "a unit failed"}),
            Child("api", _api_argv(settings)),
        ],
        say=lambda message: say(f"[yellow]{escape(message)}[/]"),
    )

    def _stop(signum: int, frame: FrameType | None) -> None:
        supervisor.stop()

    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGTERM, _stop)
    # The table comes last, once the API and the worker answer ready: after their start-up
    # lines, not buried under them.
    when_ready(ready_urls(settings), lambda late: _print_endpoints(settings, late))
    try:
        outcome = supervisor.run()
    finally:
        manager.down(settings, say, only=started)
    if outcome.failure is not None:
        raise click.ClickException(f"{outcome.failure}; stopped everything")
    say("stopped")


def _command() -> str:
    """How to run this command from here: ``eatcloud`` when that is what the PATH finds, else
    its path (``.venv/bin/eatcloud`` after ``make install``)."""
    here = Path(sys.executable).parent / "eatcloud"
    on_path = shutil.which("eatcloud")
    if on_path and Path(on_path).resolve() == here.resolve():
        return "eatcloud"
    try:
        return str(here.relative_to(Path.cwd()))
    except ValueError:
        return str(here)


def endpoint_rows(settings: Settings) -> list[tuple[str, str]]:
    """What ``eatcloud run`` prints once everything is up: where things are, what to run next."""
    api = f"http://{settings.api.host}:{settings.api.port}"
    worker_web = f"http://{settings.worker.web_host}:{settings.worker.web_port}"
    metrics_port = settings.api.metrics_port
    api_metrics = (
        f"http://{settings.api.host}:{metrics_port}/metrics" if metrics_port else f"{api}/metrics"
    )
    worker_metrics = f"http://{settings.worker.web_host}:{settings.worker.metrics_port}/metrics"
    cmd = _command()
    rows = [("API", api)]
    if settings.api.docs_enabled:
        rows.append(("API docs (OpenAPI)", f"{api}/docs"))
    rows += [
        ("readiness", f"{api}/health/ready"),
        ("worker readiness", f"{worker_web}/health/ready"),
        ("API metrics (Prometheus)", api_metrics),
        ("worker metrics (Prometheus)", worker_metrics),
        ("the first admin (approves stores)", f"{cmd} users create-admin --email you@example.com"),
        ("a demo scenario (another terminal)", f"{cmd} demo"),
        ("analytics (live, per store)", f"{cmd} analytics watch"),
        ("Grafana, Prometheus", "docker compose only: http://localhost:3000, :9090"),
        ("Kafka", settings.kafka.bootstrap_servers),
        ("PostgreSQL", settings.postgres.safe_dsn()),
        ("Redis", f"{settings.redis.host}:{settings.redis.port}"),
        ("Kinesis emulator", str(settings.kinesis.endpoint_url)),
    ]
    return rows


def ready_urls(settings: Settings) -> list[str]:
    """The readiness probes of the API and of the worker."""
    return [
        f"http://{settings.api.host}:{settings.api.port}/health/ready",
        f"http://{settings.worker.web_host}:{settings.worker.web_port}/health/ready",
    ]


def _answers_ready(url: str) -> bool:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except urllib.error.HTTPError as answered:  # 503: starting, or a dependency is down
        answered.close()
        return False
    except OSError:  # nothing listens yet (URLError is an OSError)
        return False


def when_ready(
    urls: list[str],
    then: Callable[[list[str]], None],
    *,
    timeout: float = 180.0,
    interval: float = 0.5,
) -> threading.Thread:
    """Call ``then([])`` from a daemon thread once every URL answers 200, or, after
    ``timeout`` seconds, ``then(the URLs still not ready)``."""

    def wait() -> None:
        pending, deadline = list(urls), time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            pending = [url for url in pending if not _answers_ready(url)]
            if pending:
                time.sleep(interval)
        then(pending)

    thread = threading.Thread(target=wait, name="when-ready", daemon=True)
    thread.start()
    return thread


def _print_endpoints(settings: Settings, late: list[str]) -> None:
    title = "EatCloud is running (Ctrl-C stops it)"
    if late:
        title = f"EatCloud started, not ready yet: {', '.join(late)} (Ctrl-C stops it)"
    table = Table("what", "where", title=title)
    for what, where in endpoint_rows(settings):
        table.add_row(what, where)
    console.print(table)


if __name__ == "__main__":
    main()
