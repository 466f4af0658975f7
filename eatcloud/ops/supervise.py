"""Keep child processes running: a restart policy with backoff, and a supervisor that applies it.

``eatcloud run`` runs the worker and the API as children of one supervisor. Whatever ends a
child (``kill -9``, a crash, ``EXIT_UNIT_FAILED``), it is started again after a delay while the
other children keep running: the API keeps taking checkouts into the outbox while the worker
is away, and the worker's relay publishes them once it is back.

The policy (``RestartPolicy``, defaults in brackets):
- the first restart waits ``first_delay`` [1 s]; each further exit doubles the delay, up to
  ``max_delay`` [30 s];
- a run of at least ``healthy_after`` [60 s] was healthy: the exit that ends it restarts after
  ``first_delay`` again, and the exits before it are forgotten;
- ``max_failures`` [5] exits within ``window`` [120 s], without a healthy run between them,
  and the supervisor gives up: restarting does not help (a broken install, a refused
  configuration), so it stops every child and says which one failed and how.

A stop request (Ctrl-C, SIGTERM) sends SIGTERM to every child, waits up to ``stop_timeout``
[30 s] for them all, and then kills with SIGKILL those still running.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class History:
    """A child's exits since its last healthy run: the last delay chosen, and when they were."""

    last_delay: float | None = None
    exits: tuple[float, ...] = ()


@dataclass(frozen=True)
class Restart:
    """Start the child again after ``delay`` seconds."""

    delay: float
    history: History


@dataclass(frozen=True)
class GiveUp:
    """Stop restarting: the child exited ``failures`` times within the policy's window."""

    failures: int
    history: History


@dataclass(frozen=True)
class RestartPolicy:
    """When to restart a child that exited, and when to stop trying (see the module docstring)."""

    first_delay: float = 1.0
    max_delay: float = 30.0
    healthy_after: float = 60.0
    max_failures: int = 5
    window: float = 120.0

    def decide(self, history: History, started_at: float, exited_at: float) -> Restart | GiveUp:
        """The answer to a child that ran from ``started_at`` to ``exited_at`` (clock seconds)."""
        if exited_at - started_at >= self.healthy_after:
            history = History()
        recent = tuple(t for t in history.exits if exited_at - t < self.window)
        exits = (*recent, exited_at)
        if len(exits) >= self.max_failures:
            return GiveUp(len(exits), History(history.last_delay, exits))
        if history.last_delay is None:
            delay = self.first_delay
        else:
            delay = min(self.max_delay, history.last_delay * 2)
        return Restart(delay, History(delay, exits))


def describe_exit(returncode: int, meanings: Mapping[int, str] | None = None) -> str:
    """``killed by SIGKILL``, ``exit code 1``, or ``exit code 70: a unit failed``."""
    if returncode < 0:
        try:
            return f"killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"killed by signal {-returncode}"
    meaning = (meanings or {}).get(returncode)
    return f"exit code {returncode}" + (f": {meaning}" if meaning else "")


@dataclass(frozen=True)
class Child:
    """A process to keep running: its name in messages, its argv, what its exit codes mean."""

    name: str
    argv: Sequence[str]
    meanings: Mapping[int, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """How supervision ended: on request (``failure`` is None), or because a child kept failing."""

    failure: str | None = None

    @property
    def exit_code(self) -> int:
        return 0 if self.failure is None else 1


@dataclass
class _Tended:
    """One child under supervision: its process (None while a restart is pending)."""

    child: Child
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    history: History = field(default_factory=History)
    restart_at: float | None = None
    restarts: int = 0


class Supervisor:
    """Runs children, restarts each by the policy, and stops them all on request or give-up."""

    def __init__(
        self,
        children: Sequence[Child],
        say: Callable[[str], None],
        policy: RestartPolicy | None = None,
        stop_timeout: float = 30.0,
        poll_interval: float = 0.2,
    ) -> None:
        self._tended = [_Tended(child) for child in children]
        self._say = say
        self._policy = policy or RestartPolicy()
        self._stop_timeout = stop_timeout
        self._poll_interval = poll_interval
        self._stopping = False

    def stop(self) -> None:
        """Ask ``run`` to stop every child and return; safe from a signal handler or a thread."""
        self._stopping = True

    def pids(self) -> dict[str, int | None]:
        """Each child's current pid; None while it waits for its restart."""
        return {t.child.name: t.process.pid if t.process else None for t in self._tended}

    def run(self) -> Outcome:
        """Start every child and keep them running until ``stop`` or until one keeps failing."""
        try:
            for tended in self._tended:
                self._start(tended)
            while not self._stopping:
                for tended in self._tended:
                    failure = self._tend(tended)
                    if failure is not None:
                        return Outcome(failure)
                time.sleep(self._poll_interval)
            return Outcome()
        finally:
            self._stop_all()

    def _start(self, tended: _Tended) -> None:
        tended.process = subprocess.Popen(list(tended.child.argv))
        tended.started_at = time.monotonic()
        tended.restart_at = None

    def _tend(self, tended: _Tended) -> str | None:
        """Restart a child whose delay is over, or decide about one that exited; a give-up."""
        now = time.monotonic()
        name = tended.child.name
        if tended.process is None:
            if tended.restart_at is not None and now >= tended.restart_at and not self._stopping:
                tended.restarts += 1
                self._start(tended)
            return None
        returncode = tended.process.poll()
        if returncode is None:
            return None
        tended.process = None
        how = describe_exit(returncode, tended.child.meanings)
        decision = self._policy.decide(tended.history, tended.started_at, now)
        tended.history = decision.history
        if isinstance(decision, GiveUp):
            return (
                f"{name} keeps failing: it exited {decision.failures} times within "
                f"{self._policy.window:g} s, the last time with {how}"
            )
        tended.restart_at = now + decision.delay
        self._say(
            f"{name} exited ({how}); restarting in {decision.delay:g} s "
            f"(restart {tended.restarts + 1})"
        )
        return None

    def _stop_all(self) -> None:
        """SIGTERM to every running child, then SIGKILL to those still up after the timeout."""
        running = [(t.child.name, t.process) for t in self._tended if t.process is not None]
        for _, process in running:
            process.terminate()
        deadline = time.monotonic() + self._stop_timeout
        for name, process in running:
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self._say(
                    f"{name} did not stop within {self._stop_timeout:g} s of SIGTERM; killing it"
                )
                process.kill()
                process.wait()
