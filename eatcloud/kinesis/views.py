"""How analysts see the figures: a live terminal table, and a chart over time (PNG)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from rich import box
from rich.table import Table

from eatcloud.kinesis.analytics import Analytics


def _money(cents: float | None) -> str:
    return "-" if cents is None else f"{cents / 100:,.2f}"


def _rate(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f} %"


# Short headers and one space between columns keep all eight columns, the revenue whole,
# within an 80-column terminal: the store id (36 characters) folds onto as many lines as the
# figures leave room for.
_FIGURES = ("orders", "per min", "revenue", "basket", "cancel", "reject", "p50 acc.")


def table(analytics: Analytics, window: float = 60.0) -> Table:
    """Per store: orders, orders per minute (over ``window`` s), revenue, average basket,
    cancellation and rejection rates, and the median time from placed to accepted."""
    view = Table(
        title="EatCloud orders per store (Kinesis stream)",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=0,  # the box's own one-space column separator is the only gap
    )
    view.add_column("store", overflow="fold", min_width=8)
    for header in _FIGURES:
        view.add_column(header, justify="right", no_wrap=True)
    for store in sorted(analytics.stores.values(), key=lambda s: -s.orders):
        p50 = store.p50_to_accepted
        view.add_row(
            store.store_id,
            str(store.orders),
            f"{store.orders_per_minute(analytics.latest, window):.1f}",
            _money(store.revenue),
            _money(store.average_basket),
            _rate(store.cancellation_rate),
            _rate(store.rejection_rate),
            "-" if p50 is None else f"{p50:.1f} s",
        )
    return view


def chart(analytics: Analytics, out: Path, top: int = 8) -> None:
    """Orders placed per minute and cumulative revenue, per store, over event time."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    stores = sorted(analytics.stores.values(), key=lambda s: -s.orders)[:top]
    start = min((t for s in stores for t in s.placed), default=0.0)
    figure, (orders_ax, revenue_ax) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for store in stores:
        per_minute = Counter(int((t - start) // 60) for t in store.placed)
        minutes = sorted(per_minute)
        orders_ax.plot(
            minutes, [per_minute[m] for m in minutes], marker="o", label=store.store_id[:8]
        )
        total, xs, ys = 0, [], []
        for at, amount in sorted(analytics.timeline[store.store_id]):
            total += amount
            xs.append((at - start) / 60)
            ys.append(total / 100)
        revenue_ax.step(xs, ys, where="post", label=store.store_id[:8])
    orders_ax.set_ylabel("orders placed per minute")
    revenue_ax.set_ylabel("revenue (cumulative)")
    revenue_ax.set_xlabel("minutes since the first order")
    orders_ax.legend(loc="upper left", fontsize="small")
    figure.suptitle("EatCloud stores over time (Kinesis analytics stream)")
    figure.tight_layout()
    figure.savefig(out, dpi=100)
    plt.close(figure)
