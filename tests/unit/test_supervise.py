"""The restart policy of ``eatcloud run``: backoff, its cap, forgiveness, giving up."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from eatcloud.ops.supervise import GiveUp, History, Restart, RestartPolicy, describe_exit

POLICY = RestartPolicy(first_delay=1, max_delay=30, healthy_after=60, max_failures=5, window=120)


@dataclass
class FakeChild:
    """A child on a fake clock: it runs for some seconds, exits, and waits out its delay."""

    policy: RestartPolicy = POLICY
    now: float = 1000.0
    history: History = field(default_factory=History)

    def runs_for(self, seconds: float) -> Restart | GiveUp:
        started_at = self.now
        self.now += seconds
        decision = self.policy.decide(self.history, started_at, self.now)
        self.history = decision.history
        if isinstance(decision, Restart):
            self.now += decision.delay
        return decision

    def delays(self, *runs: float) -> list[float]:
        decisions = [self.runs_for(seconds) for seconds in runs]
        assert all(isinstance(d, Restart) for d in decisions), decisions
        return [d.delay for d in decisions if isinstance(d, Restart)]


def test_the_first_restart_waits_the_first_delay() -> None:
    assert FakeChild().delays(5) == [1]


def test_each_quick_exit_doubles_the_delay() -> None:
    assert FakeChild().delays(5, 5, 5, 5) == [1, 2, 4, 8]


def test_the_delay_stops_growing_at_the_cap() -> None:
    # Exits 50 s or more apart: never five within 120 s (no give-up), and never a healthy run.
    child = FakeChild()
    assert child.delays(49, 48, 46, 42, 34, 20, 20, 20) == [1, 2, 4, 8, 16, 30, 30, 30]


def test_a_healthy_run_brings_the_delay_back_to_the_first() -> None:
    child = FakeChild()
    assert child.delays(5, 5, 5) == [1, 2, 4]
    assert child.delays(60) == [1]
    assert child.delays(5) == [2]


def test_a_healthy_run_forgets_the_exits_before_it() -> None:
    child = FakeChild()
    child.delays(1, 1, 1, 1)  # four quick exits: one more within 120 s gives up
    child.delays(61)
    assert child.history.exits == (child.now - 1,)
    assert child.delays(1, 1, 1) == [2, 4, 8]


def test_five_quick_exits_give_up() -> None:
    child = FakeChild()
    assert child.delays(0.1, 0.1, 0.1, 0.1) == [1, 2, 4, 8]
    decision = child.runs_for(0.1)
    assert isinstance(decision, GiveUp)
    assert decision.failures == 5


def test_exits_older_than_the_window_do_not_count_towards_giving_up() -> None:
    # Each run lasts 50 s (not healthy): exits are 51, 52, 54, 58, 66 s apart, then 80 s at
    # the cap, so never five within 120 s: it keeps restarting, every 30 s at most.
    child = FakeChild()
    decisions = [child.runs_for(50) for _ in range(20)]
    assert all(isinstance(d, Restart) for d in decisions)
    assert len(child.history.exits) <= 2


def test_kill_9_of_a_long_running_child_restarts_it_after_the_first_delay() -> None:
    child = FakeChild()
    assert child.delays(3600, 3600, 3600) == [1, 1, 1]


def test_exits_are_described_for_the_terminal() -> None:
    assert describe_exit(-signal.SIGKILL) == "killed by SIGKILL"
    assert describe_exit(-signal.SIGTERM) == "killed by SIGTERM"
    assert describe_exit(1) == "exit code 1"
    assert describe_exit(70, {70: "a unit failed"}) == "exit code 70: a unit failed"
    assert describe_exit(0) == "exit code 0"
