"""Redis from Debian's redis-server, daemonized on 127.0.0.1, nothing persisted."""

from __future__ import annotations

import shutil

from eatcloud.errors import StackError
from eatcloud.stack.process import Daemon
from eatcloud.stack.service import LocalService


class RedisService(LocalService):
    name = "redis"
    packages = ("redis-server",)

    @property
    def daemon(self) -> Daemon:
        return Daemon("redis", self.home / "redis.pid", self.logfile)

    def started_pid(self) -> int | None:
        return self.daemon.pid()

    def start(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not shutil.which(binary):
            raise StackError("redis-server is not installed")
        self.home.mkdir(parents=True, exist_ok=True)
        rd = self.settings.redis
        # Not --daemonize: the Daemon detaches it and records its pid before it can race us.
        # Append-only file, synced every second: a restarted Redis still has its sessions
        # (without it every signed-in user got 401 after a restart), carts and gate counters.
        self.daemon.spawn(
            [binary, "--bind", rd.host, "--port", str(rd.port), "--save", "",
             "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(self.home)],
            cwd=self.home,
        )  # fmt: skip

    def stop(self) -> bool:
        return self.daemon.stop(timeout=10.0)
