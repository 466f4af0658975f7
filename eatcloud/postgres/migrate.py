"""Schema migrations: plain SQL files in ``migrations/``, applied in order, each exactly once.

``NNNN_name.sql`` files run in their own transaction and are recorded in
``schema_migrations``. A session advisory lock makes concurrent migrators (two API replicas
starting, the Helm migrations Job and a developer) take turns: the second one finds nothing
left to do. An applied file must never change; its checksum is recorded and checked.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from importlib import resources
from typing import Any

from eatcloud.errors import InfrastructureError

log = logging.getLogger(__name__)

# Any constant shared by every migrator works; this one spells "eatcloud" in hex-ish.
_LOCK_KEY = 0x0EA7C10D


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(InfrastructureError):
    """The database's recorded migrations do not match the files shipped with this version."""


def available() -> list[Migration]:
    """The migrations shipped in the package, in version order."""
    found = []
    for entry in resources.files("eatcloud.postgres.migrations").iterdir():
        if entry.name.endswith(".sql"):
            number, _, rest = entry.name.partition("_")
            found.append(Migration(int(number), rest.removesuffix(".sql"), entry.read_text()))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"two migration files share a version: {versions}")
    return found


async def pending(conn: Any) -> list[Migration]:
    """The shipped migrations this database has not had yet (read only, takes no lock)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done = (
        {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        if exists
        else set()
    )
    return [m for m in available() if m.version not in done]


async def migrate(conn: Any) -> list[Migration]:
    """Apply the pending migrations on ``conn``; returns the ones applied by this call."""
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version integer PRIMARY KEY,
                   name text NOT NULL,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        rows = await conn.fetch("SELECT version, name, checksum FROM schema_migrations")
        done = {row["version"]: row for row in rows}
        applied = []
        for migration in available():
            row = done.get(migration.version)
            if row is not None:
                if row["checksum"] != migration.checksum:
                    raise MigrationError(
                        f"migration {migration.version}_{migration.name} was changed after it "
                        "was applied; add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                    migration.version,
                    migration.name,
                    migration.checksum,
                )
            log.info("applied migration %04d_%s", migration.version, migration.name)
            applied.append(migration)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
