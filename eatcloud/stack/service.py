"""What every local service can do: install, start, wait until it answers, provision, stop."""

from __future__ import annotations

import asyncio
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path

from eatcloud.errors import StackError
from eatcloud.probes import PROBES
from eatcloud.settings import Settings
from eatcloud.stack.process import tail

Say = Callable[[str], None]


class LocalService(ABC):
    """One service of the local stack, its state under ``<data_dir>/<name>``."""

    name: str
    # Debian packages this service needs; installed together with the others' in one apt run.
    packages: tuple[str, ...] = ()

    def __init__(self, settings: Settings, say: Say) -> None:
        self.settings = settings
        self.say = say
        self.home: Path = settings.stack.data_dir.resolve() / self.name

    @property
    def logfile(self) -> Path:
        return self.home / f"{self.name}.log"

    def install(self) -> None:  # noqa: B027  (optional hook: most services need nothing)
        """Fetch whatever is not a Debian package (jars, ...). Idempotent and cached."""

    @abstractmethod
    def started_pid(self) -> int | None:
        """The pid of the process that *we* started and that still runs, else None."""

    @abstractmethod
    def start(self) -> None:
        """Spawn the service (it is known not to answer yet)."""

    @abstractmethod
    def stop(self) -> bool:
        """Stop the service if we started it; True if something was stopped."""

    def provision(self) -> None:  # noqa: B027  (optional hook)
        """Create what our code needs inside the running service (database, stream)."""

    def answers(self) -> bool:
        try:
            asyncio.run(asyncio.wait_for(PROBES[self.name](self.settings), timeout=5))
        except Exception:  # not answering yet, whatever the reason
            return False
        return True

    def wait_until_answers(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.answers():
            if self.started_pid() is None:
                raise StackError(
                    f"{self.name} exited during start-up:\n{tail(self.logfile)}\n"
                    f"(log: {self.logfile})"
                )
            if time.monotonic() > deadline:
                raise StackError(
                    f"{self.name} did not answer within {timeout:.0f} s (log: {self.logfile})"
                )
            time.sleep(0.5)
