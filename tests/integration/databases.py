"""Throwaway PostgreSQL databases for tests: one per use, migrated, dropped afterwards."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from eatcloud.postgres.migrate import migrate
from eatcloud.settings import Settings


@asynccontextmanager
async def fresh_database(settings: Settings, *, migrated: bool = True) -> AsyncIterator[Settings]:
    """Settings whose ``postgres.database`` is a new database, dropped when the block ends."""
    name = f"eatcloud_t_{uuid.uuid4().hex[:10]}"
    admin = settings.postgres.model_copy(update={"database": "postgres"})
    conn = await asyncpg.connect(dsn=admin.dsn())
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    test_settings = settings.model_copy(
        update={"postgres": settings.postgres.model_copy(update={"database": name})}
    )
    try:
        if migrated:
            conn = await asyncpg.connect(dsn=test_settings.postgres.dsn())
            try:
                await migrate(conn)
            finally:
                await conn.close()
        yield test_settings
    finally:
        conn = await asyncpg.connect(dsn=admin.dsn())
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()
