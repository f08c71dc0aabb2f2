"""The circuit breaker's state machine, on a clock the test moves by hand."""
from __future__ import annotations

import pytest

from proxy.breaker import CircuitBreaker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def changes() -> list[str]:
    return []


@pytest.fixture
def breaker(clock: Clock, changes: list[str]) -> CircuitBreaker:
    return CircuitBreaker(failures=3, reset=2.0, on_change=changes.append, clock=clock)


def test_opens_after_n_consecutive_failures_only(breaker: CircuitBreaker, changes: list[str]) -> None:
    breaker.failure()
    breaker.failure()
    breaker.success()  # not consecutive: the count starts again
    breaker.failure()
    breaker.failure()
    assert breaker.state == "closed" and breaker.allow()
    breaker.failure()
    assert breaker.state == "open"
    assert not breaker.allow()
    assert changes == ["open"]


def test_half_open_after_reset_admits_exactly_one_probe(breaker: CircuitBreaker, clock: Clock) -> None:
    for _ in range(3):
        breaker.failure()
    clock.now += 1.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.state == "half-open"
    assert breaker.allow()
    assert not breaker.allow()  # the probe is out; everyone else still fails fast


def test_probe_success_closes(breaker: CircuitBreaker, clock: Clock, changes: list[str]) -> None:
    for _ in range(3):
        breaker.failure()
    clock.now += 2
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()
    assert changes == ["open", "half-open", "closed"]


def test_probe_failure_opens_again_for_a_full_reset(breaker: CircuitBreaker, clock: Clock) -> None:
    for _ in range(3):
        breaker.failure()
    clock.now += 2
    assert breaker.allow()
    breaker.failure()  # one failure is enough in half-open
    assert breaker.state == "open"
    clock.now += 1.9
    assert not breaker.allow()
    clock.now += 0.1
    assert breaker.allow()


def test_an_abandoned_probe_frees_the_slot(breaker: CircuitBreaker, clock: Clock) -> None:
    for _ in range(3):
        breaker.failure()
    clock.now += 2
    assert breaker.allow()
    breaker.abandon()
    assert breaker.allow()


def test_threshold_must_be_positive() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0, reset=1.0)
