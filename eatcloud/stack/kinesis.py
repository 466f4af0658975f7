"""The Kinesis emulator: moto's standalone server from PyPI, the analytics stream created by us."""

from __future__ import annotations

import importlib.util
import sys
import urllib.error
import urllib.request
from urllib.parse import urlsplit

from eatcloud.errors import StackError
from eatcloud.kinesis.streams import ensure_stream
from eatcloud.stack.process import Daemon
from eatcloud.stack.service import LocalService


class KinesisEmulatorService(LocalService):
    name = "kinesis"

    @property
    def daemon(self) -> Daemon:
        return Daemon("kinesis", self.home / "moto.pid", self.logfile)

    def host_port(self) -> tuple[str, int]:
        endpoint = self.settings.kinesis.endpoint_url
        if not endpoint:
            raise StackError("EATCLOUD_KINESIS__ENDPOINT_URL is unset: that is real AWS, not ours")
        parts = urlsplit(endpoint)
        return parts.hostname or "127.0.0.1", parts.port or 80

    def install(self) -> None:
        if importlib.util.find_spec("moto.server") is None:
            raise StackError("moto's server is not installed: pip install -e '.[emulator]'")

    def started_pid(self) -> int | None:
        return self.daemon.pid()

    def answers(self) -> bool:
        # The plain HTTP endpoint: the stream may not exist yet, provision() makes it.
        host, port = self.host_port()
        try:
            with urllib.request.urlopen(f"http://{host}:{port}/moto-api/", timeout=2):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def start(self) -> None:
        host, port = self.host_port()
        self.home.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)]
        self.daemon.spawn(argv, cwd=self.home)

    def provision(self) -> None:
        summary = ensure_stream(self.settings)
        self.say(f"kinesis: stream {self.settings.kinesis.stream_name} {summary}")

    def stop(self) -> bool:
        return self.daemon.stop(timeout=10.0)
