"""Soak: the whole platform at a steady rate for a long while, watched for growth.

    .venv/bin/python bench/soak.py [--minutes 10] [--rate 30] [--sample-seconds 10]
        [--warmup-minutes 3] [--chart docs/soak.png] [--report docs/reliability.md]

Runs what bench/e2e.py runs (a fresh database, one worker with the saga, the outbox relay,
the projections, pruning and the Kinesis forwarder, one API process, customers and stocked
stores, a simulated store that accepts what is paid) and offers ``--rate`` checkouts a second
through HTTP, open loop, for ``--minutes``. The default rate, 20/s, is about half of what
this 2-core machine sustains with the whole platform and the load generator on it (30-60/s,
depending on the day: docs/benchmarks.md). What the platform keeps for hours or days
(finished sagas 1 h, published outbox rows and processed-event records 7 days) is kept
``--keep-seconds`` (120) instead, so the run reaches its steady state within the warm-up and
a leak shows as growth rather than hiding behind data that is due to go.

Every ``--sample-seconds`` it samples the resident memory (RSS) of the worker and the API,
the worker's consumer lag (its own ``eatcloud_consumer_lag`` metric), the outbox backlog,
the orders accepted but not yet settled, the size of each PostgreSQL table and of the
worker's RocksDB folder, and Redis's memory and key count. After the warm-up it fits a line
to each series: memory, lag, the outbox, the processed-event records and RocksDB must show
no growth trend (``verdict``); the read models keep every order, so their growth is reported
per 1,000 orders.

Prints a line per sample and per minute, draws the series (``--chart``), writes its section
of ``--report`` and ends with one JSON line. Needs the local stack (``make stack-up``);
``make soak`` runs it. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import os
import re
import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import e2e
import httpx
from e2e import Running, Step, add_platform_arguments, running_platform, say

from eatcloud.settings import Settings
from eatcloud.tables import Tables
from tests.integration.workers import free_port
from tests.reports import commit, write_section

TABLES = ("outbox", "processed_events", "order_view", "order_timeline", "stock_view")
MB = 1024 * 1024
# A series "grows" when its fitted line rises by more than this share of its mean over the
# measured window (and by more than its floor, so a flat series near zero is not flagged).
GROWTH_SHARE = 0.10
FLOORS = {
    # The worker's RSS less what RocksDB reports holding (bounded by its settings, reported
    # apart as ``rocksdb_memory_mb``): Python's heap and the allocator's.
    "worker_rss_besides_rocksdb_mb": 16.0,
    "api_rss_mb": 16.0,
    "consumer_lag": 200.0,
    "unsettled": 200.0,
    # kept for ``--keep-seconds`` only: these reach a plateau once pruning and retention run
    "outbox_mb": 2.0,
    "processed_events_mb": 2.0,
    "rocksdb_mb": 8.0,
}


@dataclass
class Samples:
    started: float = field(default_factory=time.monotonic)
    rows: list[dict[str, float]] = field(default_factory=list)


def rss_mb(pid: int) -> float:
    """Resident memory of a process and its children (uvicorn or faust may fork)."""
    total = 0
    for proc in [pid, *children(pid)]:
        try:
            status = Path(f"/proc/{proc}/status").read_text()
        except OSError:
            continue
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        total += int(match.group(1)) * 1024 if match else 0
    return total / MB


def children(pid: int) -> list[int]:
    try:
        found = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return []
    kids = [int(k) for k in found]
    return kids + [grandchild for kid in kids for grandchild in children(kid)]


def folder_mb(path: Path) -> float:
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.stat(os.path.join(root, name)).st_size
            except OSError:
                continue
    return total / MB


def gauge_sum(text: str, name: str) -> float:
    """The sum of a gauge's samples (every label set) in a Prometheus text page."""
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith((f"{name}{{", f"{name} "))
    )


async def sample(
    platform: Running, metrics_url: str, client: httpx.AsyncClient
) -> dict[str, float]:
    bench, pool = platform.bench, platform.bench.pool
    assert platform.worker.proc is not None and platform.api.proc is not None
    sizes = await pool.fetch(
        "SELECT relname, pg_total_relation_size(oid) AS bytes FROM pg_class"
        " WHERE relname = ANY($1::text[])",
        list(TABLES),
    )
    info = await platform.redis.info("memory")
    metrics = (await client.get(metrics_url)).text
    worker_rss = rss_mb(platform.worker.proc.pid)
    rocksdb_memory = gauge_sum(metrics, "eatcloud_rocksdb_memory_bytes") / MB
    row: dict[str, float] = {
        "worker_rss_mb": worker_rss,
        "rocksdb_memory_mb": rocksdb_memory,
        "worker_rss_besides_rocksdb_mb": worker_rss - rocksdb_memory,
        "api_rss_mb": rss_mb(platform.api.proc.pid),
        "consumer_lag": gauge_sum(metrics, "eatcloud_consumer_lag"),
        "outbox_backlog": float(
            await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")
        ),
        "unsettled": float(len(bench.pending)),
        "orders": float(await pool.fetchval("SELECT count(*) FROM order_view")),
        "rocksdb_mb": folder_mb(platform.folder / "worker-data"),
        "redis_mb": int(info["used_memory"]) / MB,
        "redis_keys": float(await platform.redis.dbsize()),
    }
    for size in sizes:
        row[f"{size['relname']}_mb"] = size["bytes"] / MB
    return row


async def watch(
    platform: Running, samples: Samples, every: float, metrics_url: str, stop: asyncio.Event
) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        while not stop.is_set():
            try:
                row = await sample(platform, metrics_url, client)
            except (httpx.HTTPError, OSError) as exc:  # one missed sample is not a failure
                say(f"  sample failed: {exc!r}")
            else:
                row["t"] = time.monotonic() - samples.started
                samples.rows.append(row)
                say(
                    f"  t={row['t']:.0f}s worker {row['worker_rss_mb']:.0f} MB (RocksDB "
                    f"{row['rocksdb_memory_mb']:.0f} MB of it), api "
                    f"{row['api_rss_mb']:.0f} MB, lag {row['consumer_lag']:.0f}, outbox "
                    f"{row['outbox_backlog']:.0f}, unsettled {row['unsettled']:.0f}, orders "
                    f"{row['orders']:.0f}, rocksdb {row['rocksdb_mb']:.1f} MB"
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


def slope_per_minute(rows: list[dict[str, float]], key: str) -> float:
    """Least-squares slope of ``key`` over time, per minute."""
    ts = [row["t"] / 60 for row in rows]
    ys = [row[key] for row in rows]
    if len(rows) < 3 or statistics.pvariance(ts) == 0:
        return 0.0
    return statistics.linear_regression(ts, ys).slope


def verdict(rows: list[dict[str, float]]) -> dict[str, dict[str, Any]]:
    """For memory, lag and the unsettled orders: mean, fitted growth over the window, and
    whether that is a trend (more than ``GROWTH_SHARE`` of the mean and than the floor)."""
    minutes = (rows[-1]["t"] - rows[0]["t"]) / 60 if rows else 0.0
    out = {}
    for key, floor in FLOORS.items():
        mean = statistics.fmean(row[key] for row in rows) if rows else 0.0
        growth = slope_per_minute(rows, key) * minutes
        out[key] = {
            "mean": round(mean, 1),
            "growth_over_window": round(growth, 1),
            "trend": growth > max(GROWTH_SHARE * mean, floor),
        }
    return out


def rocksdb_bound_mb() -> int:
    """What RocksDB may hold in memory under the worker's settings: two memtables and a
    block cache per table partition."""
    settings = Settings()
    worker = settings.worker
    per_partition = 2 * worker.rocksdb_write_buffer_mib + worker.rocksdb_block_cache_mib
    return per_partition * len(dataclasses.fields(Tables)) * settings.kafka.topic_partitions


def per_thousand_orders(rows: list[dict[str, float]], key: str) -> float | None:
    """How much ``key`` grew per 1,000 orders over the measured window."""
    orders = rows[-1]["orders"] - rows[0]["orders"] if rows else 0
    if orders <= 0:
        return None
    return round(1000 * (rows[-1].get(key, 0.0) - rows[0].get(key, 0.0)) / orders, 3)


def draw(rows: list[dict[str, float]], warm_s: float, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [row["t"] / 60 for row in rows]
    panels = [
        ("memory (MB)", ["worker_rss_mb", "rocksdb_memory_mb", "api_rss_mb"]),
        ("behind (messages, orders)", ["consumer_lag", "outbox_backlog", "unsettled"]),
        ("storage (MB)", [f"{t}_mb" for t in TABLES] + ["rocksdb_mb", "redis_mb"]),
    ]
    fig, axes = plt.subplots(len(panels), 1, figsize=(9, 9), sharex=True)
    for ax, (label, keys) in zip(axes, panels, strict=True):
        for key in keys:
            ax.plot(minutes, [row.get(key, 0.0) for row in rows], label=key)
        ax.axvline(warm_s / 60, color="grey", linestyle=":", linewidth=1)
        ax.set_ylabel(label)
        ax.legend(fontsize="small", loc="upper left")
        ax.grid(alpha=0.3)
    axes[-1].set_xlabel("minutes (dotted: end of warm-up)")
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)


def report(result: dict[str, Any], chart: Path | None, report_path: Path) -> str:
    rows = "\n".join(
        f"| {key} | {v['mean']} | {v['growth_over_window']} | {'yes' if v['trend'] else 'no'} |"
        for key, v in result["trend"].items()
    )
    grows = "\n".join(f"| {key} | {value} |" for key, value in result["per_1000_orders"].items())
    minutes = result["minutes"]
    figure = ""
    if chart is not None:
        figure = f"\n![soak]({os.path.relpath(chart, report_path.parent)})\n"
    return f"""## Soak: {minutes:g} minutes at {result["rate"]:g} checkouts/s

Written by `make soak` (`bench/soak.py`) on commit {result["commit"]}, {result["cores"]} cores,
the local stack. The whole platform (API, outbox relay, saga, projections, pruning, Kinesis
forwarder) at a steady {result["rate"]:g} checkouts/s through HTTP (about half of what this
machine sustains with the load generator on it); {result["accepted"]} orders accepted,
{result["settled"]} settled (PAID or rejected) by the end, HTTP errors: {result["errors"]}.
Sampled every {result["sample_seconds"]:g} s; the first {result["warmup_minutes"]:g} minutes
are warm-up and not judged. Verdict: **{"no growth trend" if result["steady"] else "GROWTH"}**.

The worker's memory is judged without what RocksDB reports holding (its memtables, block
cache and table readers, the worker's `eatcloud_rocksdb_memory_bytes`), which its `rocksdb_*`
settings bound: RocksDB held {result["rocksdb_memory_mb"]} MB at the end, of a bound of
{result["rocksdb_bound_mb"]} MB. What is judged is the rest: Python's heap and the
allocator's. The worker's whole RSS went from {result["worker_rss_first_mb"]} to
{result["worker_rss_last_mb"]} MB over the measured window.

| series (after warm-up) | mean | fitted growth over the window | trend |
|---|---|---|---|
{rows}

Finished sagas, published outbox rows and processed-event records are kept
{result["keep_seconds"]} s instead of 1 h and 7 days, so the run reaches its steady state.
The read models keep every order for good; they grow with the orders they hold. Growth per
1,000 orders:

| series | MB (or keys) per 1,000 orders |
|---|---|
{grows}
{figure}"""


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    metrics_port = free_port()
    keep = str(args.keep_seconds)
    env = {
        "EATCLOUD_WORKER__METRICS_PORT": str(metrics_port),
        "EATCLOUD_WORKER__KINESIS_FORWARDER": "true",
        # What the platform keeps for a while, kept for minutes instead of hours and days, so
        # that a 10-minute run reaches the steady state: finished sagas leave the tables,
        # published outbox rows and processed-event records are pruned.
        "EATCLOUD_SAGA__RETENTION_SECONDS": keep,
        "EATCLOUD_WORKER__OUTBOX_KEEP_SECONDS": keep,
        "EATCLOUD_WORKER__PROCESSED_EVENTS_KEEP_SECONDS": keep,
        "EATCLOUD_WORKER__PRUNE_INTERVAL_SECONDS": str(max(10, args.keep_seconds // 2)),
    }
    async with running_platform(args, "soak", **env) as platform:
        bench, samples, stop = platform.bench, Samples(), asyncio.Event()
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        watcher = bench.spawn(watch(platform, samples, args.sample_seconds, metrics_url, stop))
        steps: list[dict[str, Any]] = []
        ran: list[Step] = []
        minutes = max(1, round(args.minutes))
        for minute in range(minutes):
            step = Step(rate=args.rate, seconds=60)
            await bench.run_step(step)
            ran.append(step)
            summary = step.summary()
            steps.append(summary)
            say(
                f"minute {minute + 1}/{minutes}: accepted {summary['accepted_per_s']}/s, "
                f"errors {summary['error_statuses'] or 0}, 202 -> PAID p50 "
                f"{summary['p50_ms']} ms, p99 {summary['p99_ms']} ms"
            )
        await asyncio.sleep(args.sample_seconds)  # one more sample with the load over
        stop.set()
        await watcher
        if args.logs:  # the run's folder goes when the platform stops
            keep = Path(args.logs)
            keep.mkdir(parents=True, exist_ok=True)
            for log in (platform.worker.log, platform.api.log):
                shutil.copy(log, keep / log.name)
            say(f"logs kept in {keep}")
        accepted = sum(step.statuses["202"] for step in ran)
        settled = sum(bool(order.outcome) for step in ran for order in step.orders)
    warm = args.warmup_minutes * 60
    measured = [row for row in samples.rows if row["t"] >= warm] or samples.rows
    trend = verdict(measured)
    keys = [f"{t}_mb" for t in TABLES] + ["rocksdb_mb", "redis_mb", "redis_keys"]
    result = {
        "bench": "soak",
        "commit": commit(e2e.CHECKOUT),
        "cores": os.cpu_count(),
        "rate": args.rate,
        "minutes": minutes,
        "warmup_minutes": args.warmup_minutes,
        "sample_seconds": args.sample_seconds,
        "keep_seconds": args.keep_seconds,
        "accepted": accepted,
        "settled": settled,
        "errors": sum(s["errors"] for s in steps),
        "steady": not any(v["trend"] for v in trend.values()),
        "trend": trend,
        "rocksdb_memory_mb": round(measured[-1]["rocksdb_memory_mb"], 1) if measured else None,
        "rocksdb_bound_mb": rocksdb_bound_mb(),
        "worker_rss_first_mb": round(measured[0]["worker_rss_mb"], 1) if measured else None,
        "worker_rss_last_mb": round(measured[-1]["worker_rss_mb"], 1) if measured else None,
        "per_1000_orders": {key: per_thousand_orders(measured, key) for key in keys},
        "per_minute": [
            {k: s[k] for k in ("accepted_per_s", "errors", "p50_ms", "p99_ms")} for s in steps
        ],
        "samples": len(samples.rows),
    }
    title = f"soak: {args.rate:g}/s for {minutes} min ({result['commit']})"
    if args.chart:
        draw(samples.rows, warm, Path(args.chart), title)
    if args.report:
        chart = Path(args.chart) if args.chart else None
        write_section(Path(args.report), "soak", report(result, chart, Path(args.report)))
    for key, v in trend.items():
        say(f"{key}: mean {v['mean']}, growth {v['growth_over_window']}, trend {v['trend']}")
    return result


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=int, default=20, help="checkouts/s (about half the peak)")
    parser.add_argument(
        "--keep-seconds", type=int, default=120, help="saga retention and pruning age, seconds"
    )
    parser.add_argument("--sample-seconds", type=float, default=10)
    parser.add_argument("--warmup-minutes", type=float, default=3)
    parser.add_argument("--chart", default="", help="PNG of the series (e.g. docs/soak.png)")
    parser.add_argument("--report", default="", help="markdown file to write the soak section of")
    parser.add_argument("--logs", default="", help="folder to keep the worker's and API's logs in")
    add_platform_arguments(parser)
    args = parser.parse_args()
    if args.minutes <= args.warmup_minutes or args.rate < 1:
        parser.error("needs --minutes > --warmup-minutes and --rate >= 1")
    await e2e.report_when_done(soak(args), args.minutes * 60 + 600)


if __name__ == "__main__":
    e2e.entry(main)
