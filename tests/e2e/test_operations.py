"""The operator commands against a running platform: ``saga show``, ``dlq``, ``stock adjust``
and ``demo``, each run as the ``eatcloud`` console script with the worker's settings.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from aiokafka import AIOKafkaProducer

from eatcloud.bootstrap import build
from eatcloud.domain.saga import Step
from eatcloud.ops.dlq import Parked, parked
from eatcloud.ops.saga import report
from eatcloud.streams.reading import headers_of, read_to_end
from tests.e2e.platform import (
    Platform,
    eventually,
    menu_with_stock,
    on_hand,
    place,
    wait,
    worker_settings,
)
from tests.integration.api_harness import bearer
from tests.integration.workers import ApiProcess, eatcloud_command


async def test_saga_show_prints_the_saga_state_and_its_timeline(platform: Platform) -> None:
    p = platform
    store, menu = await menu_with_stock(p, price=5_000, stock=3)
    customer = await p.api.account()
    order_id = (await place(p, customer, store, menu, qty=2)).json()["order_id"]
    await wait(p, customer, order_id, "PAID")
    accepted = await p.api.client.post(
        f"/api/v1/stores/{store}/orders/{order_id}/accept",
        headers=bearer(p.manager["access_token"]),
    )
    assert accepted.status_code == 202, accepted.text
    await wait(p, customer, order_id, "ACCEPTED")
    settings = worker_settings(p)
    async with build(settings, pool_size=1) as services:
        found = await eventually(
            lambda: report(services, order_id),
            lambda r: r.state is not None and r.state.status == "ACCEPTED" and len(r.timeline) >= 3,
        )
    assert found.state is not None, found
    assert (found.state.status, found.state.step) == ("ACCEPTED", Step.COMPLETION)
    assert found.state.order.total_amount == 10_000
    assert [e.type for e in found.timeline] == ["OrderPlaced", "OrderPaid", "OrderAccepted"]

    code, out = await eatcloud_command(p.worker.env, "saga", "show", order_id)
    assert code == 0, out
    for expected in (f"saga {order_id}", "ACCEPTED", "completion", "10,000", "OrderAccepted"):
        assert expected in out, (expected, out)
    code, out = await eatcloud_command(p.worker.env, "saga", "show", str(uuid.uuid4()))
    assert code == 1 and "no saga and no timeline" in out, out


async def test_a_poison_message_is_listed_then_replayed_from_the_dlq(platform: Platform) -> None:
    p = platform
    settings = worker_settings(p)
    key = f"poison-{uuid.uuid4().hex[:8]}"
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka.bootstrap_servers)
    await producer.start()
    try:
        await producer.send_and_wait(
            settings.kafka.topic_prefix + "order-commands",
            value=b'{"type": "NoSuchCommand"}',
            key=key.encode(),
            headers=[("x-request-id", b"dlq-e2e-1")],
        )
    finally:
        await producer.stop()

    def mine(found: list[Parked]) -> list[Parked]:
        return [x for x in found if x.key == key]

    first = mine(
        await eventually(lambda: parked(settings, "order-commands"), lambda f: bool(mine(f)))
    )
    assert len(first) == 1, p.worker.tail()
    assert first[0].reason and not first[0].replayed
    assert first[0].origin.startswith(settings.kafka.topic_prefix + "order-commands[")

    code, out = await eatcloud_command(p.worker.env, "dlq", "list", "--topic", "order-commands")
    assert code == 0 and key in out, out
    code, out = await eatcloud_command(
        p.worker.env, "dlq", "replay", "--topic", "order-commands", "--yes"
    )
    assert code == 0, out
    assert "order-commands-dlq: 1 message(s) replayed" in out, out

    # Still poison: the worker parks the replayed copy again, which says where it came from.
    both = mine(
        await eventually(lambda: parked(settings, "order-commands"), lambda f: len(mine(f)) == 2)
    )
    assert [x.replayed for x in both] == [True, False], both
    dlq = settings.kafka.topic_prefix + "order-commands-dlq"
    copies = [
        headers_of(m)
        async for batch in read_to_end(settings, dlq)
        for m in batch
        if m.key == key.encode()
    ]
    assert copies[1]["x-replayed-from"] == f"{dlq}[{both[0].partition}]@{both[0].offset}"
    assert copies[1]["x-request-id"] == "dlq-e2e-1"  # its own headers went back with it
    code, out = await eatcloud_command(p.worker.env, "dlq", "list", "--topic", "nonsense")
    assert code == 1 and "no DLQ for 'nonsense'" in out, out


async def test_stock_adjust_queues_a_change_the_stock_agent_applies(platform: Platform) -> None:
    p = platform
    store, menu = await menu_with_stock(p, price=3_000, stock=2)
    code, out = await eatcloud_command(
        p.worker.env, "stock", "adjust", store, menu, "--delta", "7", "--reason", "delivery"
    )
    assert code == 0 and "queued AdjustStock" in out, out

    assert await eventually(lambda: on_hand(p, store, menu), lambda n: n == 9) == 9
    code, out = await eatcloud_command(
        p.worker.env, "stock", "adjust", store, str(uuid.uuid4()), "--delta", "1"
    )
    assert code == 1 and "no such menu" in out, out
    code, out = await eatcloud_command(p.worker.env, "stock", "adjust", store, menu)
    assert code == 2 and "--delta" in out, out


async def test_demo_seeds_a_store_and_runs_its_scenario_to_the_end(
    platform: Platform, tmp_path: Path
) -> None:
    """Through a real uvicorn: 12 orders over the 4 demo menus, outcomes known in advance."""
    p = platform
    api = ApiProcess(p.api.settings.postgres.database, tmp_path / "api.log")
    api.start()
    try:
        code, out = await eatcloud_command(
            p.worker.env, "demo", "--api", api.url, "--orders", "12", "--customers", "3",
            within=240,
        )  # fmt: skip
    finally:
        api.stop()
    assert code == 0, out + p.worker.tail(40)
    # Bibimbap and Galbi 3 each and Truffle 2 (its stock) complete; Truffle's third is sold
    # out; Mandu's 7,013 is declined 3 times.
    assert "COMPLETED 8, REJECTED 3, SOLD OUT (409) 1" in out, out
    assert not api.errors(), api.errors()
