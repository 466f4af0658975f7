"""PostgreSQL 15 + PostGIS 3 from Debian packages, in a cluster of our own (not the system one)."""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import shutil
from pathlib import Path

from eatcloud.errors import StackError
from eatcloud.stack.process import read_pid, run
from eatcloud.stack.service import LocalService

PG_MAJOR = "15"
BINDIR = Path(f"/usr/lib/postgresql/{PG_MAJOR}/bin")
# When the checkout lies where the postgres user cannot reach (a 0700 temp dir, say), the
# cluster lives here instead and <data_dir>/postgres/data is a symlink to it.
FALLBACK_ROOT = Path("/var/lib/eatcloud")


class PostgresService(LocalService):
    name = "postgres"
    packages = (f"postgresql-{PG_MAJOR}", f"postgresql-{PG_MAJOR}-postgis-3")

    @property
    def cluster(self) -> Path:
        return self.home / "data"

    @property
    def logfile(self) -> Path:
        # Written by the postgres user, so it lives inside the cluster folder that user owns.
        return self.cluster / "server.log"

    def _as_owner(self, argv: list[str]) -> list[str]:
        # initdb and the server refuse to run as root: run them as the postgres user.
        return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv

    def started_pid(self) -> int | None:
        return read_pid(self.cluster / "postmaster.pid")

    def install(self) -> None:
        if not (BINDIR / "initdb").exists():
            raise StackError(f"PostgreSQL {PG_MAJOR} binaries are missing from {BINDIR}")

    def _postgres_can_enter(self, folder: Path) -> bool:
        if os.geteuid() != 0:
            return True
        done = run(["runuser", "-u", "postgres", "--", "sh", "-c",
                    f'test -x "{folder}" && echo yes || echo no'], what="access check")  # fmt: skip
        return done.strip() == "yes"

    def _make_cluster_dir(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        if self.cluster.exists() or self.cluster.is_symlink():
            return
        target = self.cluster
        if not self._postgres_can_enter(self.home):
            digest = hashlib.sha1(str(self.home).encode()).hexdigest()[:12]
            target = FALLBACK_ROOT / digest / "data"
            self.say(f"postgres: {self.home} is closed to the postgres user; cluster in {target}")
            shutil.rmtree(target, ignore_errors=True)
        target.mkdir(parents=True, mode=0o700)
        if os.geteuid() == 0:
            owner = pwd.getpwnam("postgres")
            os.chown(target, owner.pw_uid, owner.pw_gid)
        if target != self.cluster:
            self.cluster.symlink_to(target, target_is_directory=True)

    def _initdb(self) -> None:
        if (self.cluster / "PG_VERSION").exists():
            return
        self._make_cluster_dir()
        self.say("postgres: creating our own cluster (initdb)")
        run(
            self._as_owner(
                [str(BINDIR / "initdb"), "-D", str(self.cluster.resolve()),
                 "-U", self.settings.postgres.user, "--auth=trust", "-E", "UTF8",
                 "--locale=C", "--no-sync"]
            ),
            what="initdb",
        )  # fmt: skip

    def start(self) -> None:
        self._initdb()
        pg = self.settings.postgres
        # Development settings: loopback only, no fsync (a dev cluster is disposable).
        options = (
            f"-c listen_addresses={pg.host} -p {pg.port} -c unix_socket_directories='' "
            "-c fsync=off -c full_page_writes=off -c synchronous_commit=off -c max_connections=200"
        )
        run(
            self._as_owner(
                [str(BINDIR / "pg_ctl"), "-D", str(self.cluster.resolve()), "-l",
                 str(self.logfile.resolve()), "-o", options, "-w", "-t", "60", "start"]
            ),
            what="pg_ctl start",
        )  # fmt: skip

    def answers(self) -> bool:
        try:
            asyncio.run(self._fetch("postgres", "SELECT 1"))
        except Exception:  # not answering yet, whatever the reason
            return False
        return True

    async def _fetch(self, database: str, *statements: str) -> None:
        import asyncpg

        pg = self.settings.postgres
        dsn = pg.dsn().rsplit("/", 1)[0] + f"/{database}"
        conn = await asyncpg.connect(dsn=dsn, timeout=5)
        try:
            for statement in statements:
                await conn.execute(statement)
        finally:
            await conn.close()

    def provision(self) -> None:
        asyncio.run(self._provision())

    async def _provision(self) -> None:
        import asyncpg

        name = self.settings.postgres.database
        try:
            await self._fetch("postgres", f'CREATE DATABASE "{name}"')
            self.say(f"postgres: created database {name}")
        except asyncpg.DuplicateDatabaseError:
            pass
        await self._fetch(name, "CREATE EXTENSION IF NOT EXISTS postgis")

    def stop(self) -> bool:
        if self.started_pid() is None:
            return False
        run(
            self._as_owner([str(BINDIR / "pg_ctl"), "-D", str(self.cluster.resolve()),
                            "-m", "fast", "-w", "stop"]),
            what="pg_ctl stop",
        )  # fmt: skip
        return True
