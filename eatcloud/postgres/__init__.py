"""PostgreSQL: the connection pool, the schema migrations and the stores built on them.

The API keeps its state here (users, stores, menus, orders, reviews) and writes every command
for the stream side into the ``outbox`` table in the same transaction. The worker's relay
publishes the outbox; its projections write the read models (``order_view`` and friends).
"""

from __future__ import annotations

import uuid
from typing import Any

import asyncpg
import orjson

from eatcloud.settings import PostgresSettings


def uuid_or_none(value: str) -> uuid.UUID | None:
    """An id as a UUID, or None: an id that is no UUID names nothing (the API keeps ids it
    cannot read as UUIDs as they came, ``api.deps.canonical_id``, and answers 404)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def _init_connection(conn: Any) -> None:
    # jsonb in and out as Python values, encoded by orjson (no per-call json.dumps).
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda value: orjson.dumps(value).decode(),
        decoder=orjson.loads,
        schema="pg_catalog",
    )


async def _keep_session(conn: Any) -> None:
    """No reset when a connection goes back to the pool.

    asyncpg's default reset is a round trip per release (advisory unlock, CLOSE ALL, UNLISTEN,
    RESET ALL). Our code leaves no session state behind: transactions end with their block,
    the relay's listener removes itself, and advisory locks are taken on dedicated
    connections. Skipping it took a third of the round trips out of a checkout.
    """


async def create_pool(settings: PostgresSettings, *, min_size: int = 1, max_size: int = 10) -> Any:
    """An asyncpg pool whose connections speak jsonb as Python values."""
    return await asyncpg.create_pool(
        dsn=settings.dsn(),
        min_size=min_size,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=30,
        timeout=settings.connect_timeout_seconds,  # per connection attempt
    )


def contains_pattern(text: str) -> str:
    """An ILIKE pattern matching values that contain ``text`` as typed: its ``%``, ``_`` and
    ``\\`` are matched literally, not as wildcards."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
