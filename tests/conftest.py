"""Shared fixtures: settings for the local stack, and a loud failure when a service is missing."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator

import pytest
from aiokafka.admin import AIOKafkaAdminClient

from eatcloud.probes import probe_all
from eatcloud.settings import Settings
from tests.integration.workers import SESSION_PREFIX

# The API refuses to run without a strong signing key. Every process a test starts (APIs,
# workers, CLI commands) inherits this session's own random one.
os.environ.setdefault("EATCLOUD_AUTH__JWT_SECRET", secrets.token_urlsafe(48))
# Every in-process request comes from 127.0.0.1 and the suite signs up and logs in thousands
# of accounts: the per-address and cluster-wide password limits are the tests' own business
# (tests/integration/test_password_limits.py sets them low on apps of its own), and so are the
# per-caller limits on long-polls and searches (tests/integration/test_costly_reads.py).
for _limit in (
    "SIGNUP_BURST", "ADDRESS_LOGIN_BURST", "PASSWORD_BURST", "WAIT_BURST", "WAITING_PER_CALLER",
    "SEARCH_BURST",
):  # fmt: skip
    os.environ.setdefault(f"EATCLOUD_RATE_LIMIT__{_limit}", "1000000")
# Tests send the same checkout body quickly and mean separate orders (a sold-out second
# order, a cart ordered twice, one id spelt two ways): the double-submit window is off for
# them. tests/integration/test_double_submit.py turns it on for APIs of its own.
os.environ.setdefault("EATCLOUD_API__DOUBLE_SUBMIT_SECONDS", "0")


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings()


@pytest.fixture(scope="session")
def stack(settings: Settings) -> Iterator[Settings]:
    """The local stack, checked once: a missing service fails the test, it never skips it.

    The topics the session created (all named after ``SESSION_PREFIX``) are deleted at its
    end: a developer's broker otherwise gathers thousands of test topics (2,483 were found on
    one), which every client's metadata request and the broker itself carry along. Another
    session running at the same time keeps its own."""
    results = asyncio.run(probe_all(settings))
    missing = [f"  {r.name} at {r.address}: {r.detail}" for r in results if not r.ok]
    if missing:
        pytest.fail(
            "the local stack is not up; start it with `make stack-up` (or `eatcloud stack up`):\n"
            + "\n".join(missing),
            pytrace=False,
        )
    yield settings
    asyncio.run(_drop_this_sessions_topics(settings.kafka.bootstrap_servers))


async def _drop_this_sessions_topics(bootstrap: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=60_000)
    await admin.start()
    try:
        mine = [t for t in await admin.list_topics() if t.startswith(SESSION_PREFIX)]
        for start in range(0, len(mine), 200):
            await admin.delete_topics(mine[start : start + 200], timeout_ms=60_000)
    finally:
        await admin.close()
