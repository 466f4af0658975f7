"""``faust -A eatcloud.app tables|agents|send`` keep working next to the ``eatcloud`` command."""

from __future__ import annotations

from eatcloud.settings import Settings
from eatcloud.streams.reading import read_to_end
from tests.integration.workers import console_script, unique_prefix


async def faust(prefix: str, *args: str) -> tuple[int, str]:
    env = {"EATCLOUD_KAFKA__TOPIC_PREFIX": prefix, "EATCLOUD_WORKER__APP_ID": prefix.rstrip("-")}
    return await console_script("faust", env, "-A", "eatcloud.app", *args)


async def test_agents_lists_every_agent_with_its_topics() -> None:
    prefix = unique_prefix("cli")
    code, out = await faust(prefix, "agents")
    assert code == 0, out
    rows = {
        line.split("|")[1].strip(): line.split("|")[2].strip()
        for line in out.splitlines()
        if line.startswith("| @")
    }
    assert rows == {
        "@orchestrator": f"{prefix}order-commands, {prefix}saga-replies, {prefix}stock-commands",
        "@payment": f"{prefix}payment-commands",
        "@points": f"{prefix}points-commands",
        "@order-projection": f"{prefix}order-events",
        "@stock-projection": f"{prefix}stock-events",
        "@points-projection": f"{prefix}points-events",
    }, out


async def test_tables_lists_the_four_tables_with_what_they_hold() -> None:
    code, out = await faust("cli-tables-", "tables")
    assert code == 0, out
    for name, words in [
        ("sagas", "order sagas"),
        ("stock", "stock ledgers"),
        ("points", "points accounts"),
        ("payments", "payments by order_id"),
    ]:
        assert any(f"| {name} " in line and words in line for line in out.splitlines()), out


async def test_send_puts_a_message_on_a_topic(stack: Settings) -> None:
    prefix = unique_prefix("cli")
    topic = f"{prefix}order-commands"
    value = '{"type": "CancelOrder", "order_id": "o-1"}'
    code, out = await faust(prefix, "send", topic, value, "--key", "o-1")
    assert code == 0, out
    got = [(m.key, m.value) async for batch in read_to_end(stack, topic) for m in batch]
    assert got == [(b"o-1", value.encode())]
