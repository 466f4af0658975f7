"""The supervisor of ``eatcloud run`` with real child processes (small ``python -c`` scripts).

What ``eatcloud run`` used to do: a worker killed with SIGKILL ended the API too, and the
command stopped. Here a killed child comes back while the other keeps its pid, a child that
fails at once is given up on, and a stop request ends every child.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from eatcloud.ops.supervise import Child, Outcome, RestartPolicy, Supervisor

# Short delays keep these tests to seconds; a run of 5 s counts as healthy.
FAST = RestartPolicy(first_delay=0.05, max_delay=0.2, healthy_after=5, max_failures=3, window=10)

SLEEPER = "import time; time.sleep(600)"


@pytest.fixture(autouse=True)
def _needs_stack() -> None:
    """Overrides the package's check: these tests start processes, not Kafka or a database."""


def python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def on_sigterm_writes(path: Path) -> list[str]:
    """A child that, on SIGTERM, writes ``path`` and exits 0; ``path.ready`` once it listens."""
    return python(
        "import pathlib, signal, sys, time\n"
        f"path = pathlib.Path({str(path)!r})\n"
        "def stop(signum, frame):\n"
        "    path.write_text('terminated')\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGTERM, stop)\n"
        "path.with_suffix('.ready').write_text('')\n"
        "time.sleep(600)\n"
    )


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            pytest.fail(f"waited {timeout:g} s in vain for {what}", pytrace=False)
        time.sleep(0.01)


class Running:
    """A supervisor running in a thread, with what it said and how it ended."""

    def __init__(self, children: list[Child], stop_timeout: float = 5.0) -> None:
        self.said: list[str] = []
        self.supervisor = Supervisor(
            children, self.said.append, FAST, stop_timeout=stop_timeout, poll_interval=0.02
        )
        self.outcome: Outcome | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        self.outcome = self.supervisor.run()

    def pid_now(self, name: str) -> int | None:
        return self.supervisor.pids()[name]

    def pid(self, name: str) -> int:
        """The child's pid, once it runs."""
        wait_for(lambda: self.pid_now(name) is not None, f"{name} to run")
        pid = self.pid_now(name)
        assert pid is not None
        return pid

    def ended(self, timeout: float = 10.0) -> Outcome:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the supervisor did not return"
        assert self.outcome is not None
        return self.outcome


@pytest.fixture
def supervise() -> Iterator[Callable[..., Running]]:
    started: list[Running] = []

    def start(children: list[Child], stop_timeout: float = 5.0) -> Running:
        running = Running(children, stop_timeout)
        started.append(running)
        return running

    yield start
    for running in started:
        running.supervisor.stop()
        running.thread.join(10)


def test_a_child_killed_with_sigkill_is_restarted_while_the_other_keeps_running(
    supervise: Callable[..., Running],
) -> None:
    running = supervise([Child("worker", python(SLEEPER)), Child("api", python(SLEEPER))])
    worker, api = running.pid("worker"), running.pid("api")

    os.kill(worker, signal.SIGKILL)
    wait_for(lambda: running.pid_now("worker") not in (None, worker), "a new worker")
    second = running.pid("worker")
    os.kill(second, signal.SIGKILL)
    wait_for(lambda: running.pid_now("worker") not in (None, second), "a new worker")

    assert alive(running.pid("worker"))
    assert running.pid("api") == api and alive(api)
    assert running.thread.is_alive()
    assert running.said == [
        "worker exited (killed by SIGKILL); restarting in 0.05 s (restart 1)",
        "worker exited (killed by SIGKILL); restarting in 0.1 s (restart 2)",
    ]


def test_a_child_that_fails_at_once_every_time_is_given_up_on_and_the_others_stopped(
    supervise: Callable[..., Running],
) -> None:
    running = supervise(
        [
            Child("worker", python("raise SystemExit(70)"), {70: "a unit failed"}),
            Child("api", python(SLEEPER)),
        ]
    )
    api = running.pid("api")

    outcome = running.ended()

    assert outcome.exit_code == 1
    assert outcome.failure == (
        "worker keeps failing: it exited 3 times within 10 s, "
        "the last time with exit code 70: a unit failed"
    )
    assert running.said == [
        "worker exited (exit code 70: a unit failed); restarting in 0.05 s (restart 1)",
        "worker exited (exit code 70: a unit failed); restarting in 0.1 s (restart 2)",
    ]
    assert not alive(api)


def test_a_stop_request_terminates_every_child_with_sigterm(
    supervise: Callable[..., Running], tmp_path: Path
) -> None:
    worker, api = tmp_path / "worker", tmp_path / "api"
    running = supervise(
        [Child("worker", on_sigterm_writes(worker)), Child("api", on_sigterm_writes(api))]
    )
    pids = [running.pid("worker"), running.pid("api")]
    wait_for(
        lambda: worker.with_suffix(".ready").exists() and api.with_suffix(".ready").exists(),
        "both children to handle SIGTERM",
    )

    running.supervisor.stop()

    assert running.ended().exit_code == 0
    assert worker.read_text() == "terminated" and api.read_text() == "terminated"
    assert not any(alive(pid) for pid in pids)
    assert running.said == []


def test_a_child_that_ignores_sigterm_is_killed_after_the_stop_timeout(
    supervise: Callable[..., Running], tmp_path: Path
) -> None:
    ready = tmp_path / "ready"
    stubborn = python(
        "import pathlib, signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        f"pathlib.Path({str(ready)!r}).write_text('')\n"
        "time.sleep(600)\n"
    )
    running = supervise([Child("worker", stubborn)], stop_timeout=0.5)
    pid = running.pid("worker")
    wait_for(ready.exists, "the child to ignore SIGTERM")

    running.supervisor.stop()

    assert running.ended().exit_code == 0
    assert not alive(pid)
    assert running.said == ["worker did not stop within 0.5 s of SIGTERM; killing it"]
