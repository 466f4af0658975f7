"""Terminal views (rich) of what the operator commands found."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from rich.table import Table

from eatcloud.ops.demo import MENUS, SOLD_OUT, DemoRun
from eatcloud.ops.dlq import Parked
from eatcloud.ops.saga import SagaReport


def _when(epoch: float | None) -> str:
    if not epoch:
        return "-"
    at = datetime.fromtimestamp(epoch, UTC).isoformat(timespec="seconds")
    delta = epoch - time.time()
    relative = f"in {delta:.0f} s" if delta >= 0 else f"{-delta:.0f} s ago"
    return f"{at} ({relative})"


def saga_tables(report: SagaReport) -> list[Table]:
    tables = []
    state = report.state
    if state is not None:
        facts = Table(title=f"saga {report.order_id}", show_header=False)
        facts.add_column(style="bold")
        facts.add_column()
        order = state.order
        rows = {
            "status": state.status,
            "step": state.step,
            "outcome": state.outcome or "-",
            "reason": state.reason or "-",
            "cancelled by": state.cancelled_by or "-",
            "deadline": _when(state.deadline),
            "attempt": str(state.attempts),
            "joined": ", ".join(state.held) or "-",  # participants it sent a step to
            "waiting for": ", ".join(state.pending) or "-",
            "paid": "yes" if state.paid else "no",
            "store": order.store_id,
            "customer": order.customer_id,
            "amount": f"{order.total_amount:,}",
            "points": str(order.points),
            "lines": ", ".join(f"{line.menu_id} x{line.quantity}" for line in order.lines),
            "version": str(state.version),
            "updated": _when(state.updated_at),
        }
        for name, value in rows.items():
            facts.add_row(name, str(value))
        tables.append(facts)
    if report.timeline:
        timeline = Table(title="timeline (order_timeline read model)")
        for column in ("at", "event", "status", "reason"):
            timeline.add_column(column)
        for entry in report.timeline:
            at = entry.at.isoformat(timespec="milliseconds")
            timeline.add_row(at, entry.type, entry.status, entry.reason or "-")
        tables.append(timeline)
    return tables


def dlq_table(parked: list[Parked]) -> Table:
    table = Table(title=f"{len(parked)} parked message(s)")
    for column in ("dlq", "at", "key", "type", "reason", "detail", "from", "replayed"):
        table.add_column(column, overflow="fold")
    for p in parked:
        table.add_row(
            p.topic,
            f"[{p.partition}]@{p.offset}",
            p.key,
            p.type,
            p.reason,
            p.detail[:80],
            p.origin,
            "yes" if p.replayed else "no",
        )
    return table


def demo_table(run: DemoRun) -> Table:
    counts = run.counts()
    table = Table(title=f"demo store {run.store_id} - {run.elapsed:.1f} s", min_width=84)
    table.add_column("#", justify="right")
    table.add_column("menu")
    table.add_column("status")
    colours = {"COMPLETED": "green", "REJECTED": "red", "CANCELLED": "red", SOLD_OUT: "yellow"}
    for order in run.orders[-20:]:
        colour = colours.get(order.status, "cyan")
        table.add_row(str(order.number), order.menu, f"[{colour}]{order.status}[/]")
    summary = " | ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    table.caption = f"{len(run.orders)} orders over {len(MENUS)} menus: {summary}"
    return table
