"""The analytics reader against the Kinesis emulator: the figures equal what was sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson

from eatcloud.kinesis.analytics import Analytics
from eatcloud.kinesis.forwarder import Entry, KinesisForwarder
from eatcloud.kinesis.reader import StreamReader
from eatcloud.kinesis.streams import kinesis_client
from eatcloud.settings import Settings
from tests.integration.test_kinesis_forwarder import new_stream
from tests.integration.workers import eatcloud_command


def history(stores: int, orders: int) -> list[Entry]:
    """Each store gets ``orders`` orders: the first is rejected, the rest accepted 5 s after
    being placed and completed; amounts 1,000, 2,000, ..."""
    entries = []
    for s in range(stores):
        for n in range(orders):
            order, at = f"o-{s}-{n}", 1_000.0 + 60 * n
            events: list[tuple[str, float, dict[str, Any]]] = [
                ("OrderPlaced", at, {"final_amount": 1_000 * (n + 1)})
            ]
            if n == 0:
                events.append(("OrderRejected", at + 1, {"reason": "card_declined"}))
            else:
                events += [("OrderAccepted", at + 5, {}), ("OrderCompleted", at + 30, {})]
            for kind, when, extra in events:
                event = {
                    "type": kind,
                    "order_id": order,
                    "store_id": f"store-{s}",
                    "occurred_at": when,
                    "event_id": f"{order}-{kind}",
                    **extra,
                }
                data = orjson.dumps({"topic": "order-events", "event": event, "headers": {}})
                entries.append(Entry(order, data))
    return entries


async def test_the_reader_sees_every_shard_and_the_figures_match(settings: Settings) -> None:
    client = kinesis_client(settings)
    stream = new_stream(client, shards=3)
    await KinesisForwarder(client, stream).put(history(stores=4, orders=5))
    figures = Analytics()
    for record in StreamReader(client, stream, "TRIM_HORIZON").read_to_end():
        figures.feed(record)
    assert sorted(figures.stores) == [f"store-{s}" for s in range(4)]
    for store in figures.stores.values():
        assert store.orders == 5 and store.completed == 4
        assert store.revenue == 2_000 + 3_000 + 4_000 + 5_000
        assert store.average_basket == 3_000
        assert store.rejection_rate == 0.2 and store.cancellation_rate == 0.0
        assert store.p50_to_accepted == 5.0


def test_the_cli_report_draws_a_chart_and_watch_shows_the_table(
    settings: Settings, tmp_path: Path
) -> None:
    client = kinesis_client(settings)
    stream = new_stream(client)
    asyncio.run(KinesisForwarder(client, stream).put(history(stores=2, orders=3)))
    env = {"EATCLOUD_KINESIS__STREAM_NAME": stream}
    out = tmp_path / "report.png"
    code, report = asyncio.run(
        eatcloud_command(env, "analytics", "report", "--out", str(out), "--from", "trim-horizon")
    )
    assert code == 0, report
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert "store-0" in report and "50.00" in report  # revenue 2,000 + 3,000
    watch_args = ("--from", "trim-horizon", "--seconds", "1.5", "--interval", "0.3")
    code, watch = asyncio.run(eatcloud_command(env, "analytics", "watch", *watch_args))
    assert code == 0, watch
    assert "store-1" in watch and "33.3 %" in watch  # 1 rejected of 3 ended
