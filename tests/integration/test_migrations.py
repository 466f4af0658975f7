"""Schema migrations against the real PostgreSQL + PostGIS."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import asyncpg
import pytest

from eatcloud.postgres import migrate as m
from eatcloud.settings import Settings
from tests.integration.databases import fresh_database
from tests.integration.workers import eatcloud_command


async def test_migrations_apply_once_and_build_the_schema(settings: Settings) -> None:
    async with fresh_database(settings, migrated=False) as db:
        conn = await asyncpg.connect(dsn=db.postgres.dsn())
        try:
            first = await m.migrate(conn)
            second = await m.migrate(conn)
            tables = {
                r["tablename"]
                for r in await conn.fetch(
                    "SELECT tablename FROM pg_tables WHERE schemaname='public'"
                )
            }
            postgis = await conn.fetchval("SELECT postgis_version()")
        finally:
            await conn.close()
    assert [x.version for x in first] == [x.version for x in m.available()]
    assert second == []
    assert {
        "users",
        "stores",
        "menus",
        "orders",
        "outbox",
        "order_view",
        "processed_events",
    } <= tables
    assert postgis


async def test_two_migrators_at_once_apply_each_migration_once(settings: Settings) -> None:
    async with fresh_database(settings, migrated=False) as db:
        conns = [await asyncpg.connect(dsn=db.postgres.dsn()) for _ in range(2)]
        try:
            results = await asyncio.gather(*(m.migrate(c) for c in conns))
            recorded = await conns[0].fetchval("SELECT count(*) FROM schema_migrations")
        finally:
            for c in conns:
                await c.close()
    assert sorted(len(r) for r in results) == [0, len(m.available())]
    assert recorded == len(m.available())


async def test_a_changed_applied_migration_is_refused(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with fresh_database(settings) as db:
        shipped = m.available()
        edited = [replace(shipped[0], sql=shipped[0].sql + "\n-- edited\n"), *shipped[1:]]
        monkeypatch.setattr(m, "available", lambda: edited)
        conn = await asyncpg.connect(dsn=db.postgres.dsn())
        try:
            with pytest.raises(m.MigrationError, match="was changed after it was applied"):
                await m.migrate(conn)
        finally:
            await conn.close()


async def eatcloud_cli(settings: Settings, *args: str) -> tuple[int, str]:
    return await eatcloud_command(
        {"EATCLOUD_POSTGRES__DATABASE": settings.postgres.database}, *args
    )


async def test_db_wait_holds_pods_back_until_the_migrations_job_has_run(
    settings: Settings,
) -> None:
    async with fresh_database(settings, migrated=False) as db:
        code, out = await eatcloud_cli(db, "db", "wait", "--timeout", "1", "--interval", "0.3")
        assert code == 1, out
        assert f"{len(m.available())} migration(s) pending" in out
        waiting = asyncio.create_task(eatcloud_cli(db, "db", "wait", "--interval", "0.3"))
        await asyncio.sleep(1.0)  # three polls' worth: it must still be waiting, not done
        assert not waiting.done()
        code, out = await eatcloud_cli(db, "db", "migrate")
        assert code == 0, out
        code, out = await asyncio.wait_for(waiting, 30)
        assert code == 0 and "schema is up to date" in out, out
