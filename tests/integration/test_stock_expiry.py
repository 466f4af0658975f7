"""Stock reservations expire on the real worker: its timer finds them, its agent releases them."""

from __future__ import annotations

from pathlib import Path

from eatcloud.settings import Settings
from eatcloud.streams import records as r
from eatcloud.streams import topics as t
from tests.integration.saga_harness import Bus, saga_worker, unique_prefix


async def test_a_reservation_nobody_commits_is_released_when_its_ttl_passes(
    stack: Settings, tmp_path: Path
) -> None:
    prefix = unique_prefix("ttl")
    worker = saga_worker(
        tmp_path, stack.kafka.bootstrap_servers, prefix, EATCLOUD_SAGA__RESERVATION_TTL_SECONDS="3"
    )
    bus = Bus(stack.kafka.bootstrap_servers, prefix)
    await bus.start()
    worker.start()
    try:
        await bus.adjust(r.AdjustStock(store_id="store-ttl", menu_id="menu-ttl", delta=5))
        lines = (r.StockLine(menu_id="menu-ttl", quantity=2),)
        await bus.send(r.ReserveStock(order_id="o-ttl", store_id="store-ttl", lines=lines))

        changes = await bus.wait(
            t.STOCK_EVENTS,
            lambda vs: any(v.get("change") == "expired" for v in vs),
            within=90,  # the worker's start included
        )
        kinds = [v["change"] for v in changes if v.get("order_id") == "o-ttl"]
        assert kinds == ["reserved", "expired"]
        ledger = await bus.ledger("store-ttl", "menu-ttl")
        assert (ledger["on_hand"], ledger["reserved"], ledger["sold"]) == (5, 0, 0)

        await bus.send(r.CommitStock(order_id="o-ttl", store_id="store-ttl"))
        replies = await bus.wait(
            t.SAGA_REPLIES,
            lambda vs: any(v.get("type") == "StockCommitRejected" for v in vs),
            within=30,
        )
        rejected = next(v for v in replies if v.get("type") == "StockCommitRejected")
        assert rejected["reason"] == "reservation_expired"
    finally:
        await bus.stop()
        worker.stop()
