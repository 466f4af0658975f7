"""The analytics figures per store, from a known sequence of order events."""

from __future__ import annotations

from typing import Any

from eatcloud.kinesis.analytics import Analytics


def rec(kind: str, order: str, store: str, at: float, **extra: Any) -> dict[str, Any]:
    event = {
        "type": kind,
        "order_id": order,
        "store_id": store,
        "occurred_at": at,
        "event_id": f"{order}-{kind}",
        **extra,
    }
    return {"topic": "order-events", "event": event, "headers": {}}


def test_figures_per_store() -> None:
    a = Analytics()
    history = [
        rec("OrderPlaced", "o1", "s1", 0, final_amount=1_000),
        rec("OrderPlaced", "o2", "s1", 10, final_amount=3_000),
        rec("OrderPlaced", "o3", "s1", 20, final_amount=2_000),
        rec("OrderPlaced", "o4", "s2", 30, final_amount=5_000),
        rec("OrderAccepted", "o1", "s1", 4),
        rec("OrderAccepted", "o2", "s1", 18),
        rec("OrderCompleted", "o1", "s1", 40),
        rec("OrderCompleted", "o2", "s1", 50),
        rec("OrderCancelled", "o3", "s1", 60, reason="store did not accept"),
        rec("OrderRejected", "o4", "s2", 35, reason="card_declined"),
    ]
    for record in [*history, history[0], {"topic": "stock-events", "event": {}}]:
        a.feed(record)  # a duplicate and a stock event change nothing
    s1, s2 = a.stores["s1"], a.stores["s2"]
    assert (s1.orders, s1.revenue, s1.average_basket) == (3, 4_000, 2_000)
    assert s1.cancellation_rate == 1 / 3 and s1.rejection_rate == 0
    assert s1.p50_to_accepted == 6.0  # median of 4 s and 8 s
    assert s1.orders_per_minute(now=60.0) == 2.0  # o2 and o3 in (0, 60]
    assert (s2.orders, s2.revenue, s2.rejection_rate, s2.p50_to_accepted) == (1, 0, 1.0, None)


def test_the_table_fits_80_columns_with_every_figure_whole() -> None:
    from rich.console import Console

    from eatcloud.kinesis.views import table

    a = Analytics()
    store = "6f1c2a9e-1d4b-4c3a-9f00-0123456789ab"
    for n in range(3000):  # 3,000 orders at the largest total the API takes (1,000,000.00)
        a.feed(rec("OrderPlaced", f"o{n}", store, n, final_amount=100_000_000))
        a.feed(rec("OrderAccepted", f"o{n}", store, n + 12.5))
        a.feed(rec("OrderCompleted", f"o{n}", store, n + 40))
    console = Console(width=80, record=True, color_system=None)
    console.print(table(a))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    assert "3,000,000,000.00" in text and "1,000,000.00" in text  # revenue, basket: not cut
    assert "12.5 s" in text and "0.0 %" in text and "20.0" in text
    folded = "".join(line.split(" ", 1)[0] for line in text.splitlines()[3:])
    assert folded == store  # the id folds, whole, onto several lines
