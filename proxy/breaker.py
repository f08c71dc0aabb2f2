"""Circuit breaker for Redis: closed -> open after N failures in a row -> half-open -> one probe."""
from __future__ import annotations

import time
from typing import Callable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    """Decides whether a call may touch Redis at all; the caller reports how each admitted call ended.

    While open, callers fail fast instead of each waiting out the timeout against a dead or frozen server.
    After `reset` seconds one call is admitted as a probe; its success closes the breaker, its failure
    opens it for another `reset` seconds. Not thread-safe: one breaker per event loop.
    """

    def __init__(self, *, failures: int, reset: float, on_change: Callable[[str], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if failures < 1:
            raise ValueError("failures must be at least 1")
        self._threshold = failures
        self._reset = reset
        self._on_change = on_change
        self._clock = clock
        self._state = CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> str:
        if self._state == OPEN and self._clock() - self._opened_at >= self._reset:
            return HALF_OPEN
        return self._state

    def allow(self) -> bool:
        """True when the call may go to Redis; in half-open only the first caller gets through."""
        state = self.state
        if state == CLOSED:
            return True
        if state == OPEN or self._probing:
            return False
        self._set(HALF_OPEN)
        self._probing = True
        return True

    def success(self) -> None:
        self._failures = 0
        self._probing = False
        self._set(CLOSED)

    def failure(self) -> None:
        self._failures += 1
        was_probe, self._probing = self._probing, False
        if was_probe or self._state != CLOSED or self._failures >= self._threshold:
            self._opened_at = self._clock()
            self._set(OPEN)

    def abandon(self) -> None:
        """An admitted call was cancelled before it ended: free the probe slot, change nothing else."""
        self._probing = False

    def _set(self, state: str) -> None:
        if state != self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)
