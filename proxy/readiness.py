"""Readiness, and the dependencies' state checked in the background: a probe reaches no Redis, no upstream.

Ready means "can serve": the process has started and is not draining. Redis down (every request bypasses
the cache) or an upstream down (only its routes answer 502) leave it ready; they are reported in the
probe's body and in metrics (cachegate_dependency_up), not in its status, so an orchestrator never takes
every gateway out at once for a fault they all share.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

from proxy.metrics import Metrics

log = logging.getLogger("cachegate.readiness")
Checks = dict[str, str]  # what was checked ("redis", "upstream:NAME") -> "ok" or why not


class Readiness:
    """The last round of checks of one process; `run()` repeats them, a probe only reads the result."""

    def __init__(self, check: Callable[[], Awaitable[Checks]], *, interval: Callable[[], float],
                 metrics: Metrics | None = None) -> None:
        self._check = check
        self._interval = interval
        self._metrics = metrics
        self._last: Checks | None = None
        self._first = asyncio.Event()
        self.draining = False

    @property
    def checks(self) -> Checks | None:
        """The last round's results; None before the first round is done."""
        return self._last

    @property
    def ready(self) -> bool:
        return self._last is not None and not self.draining

    def drain(self) -> None:
        """From now on not ready (SIGTERM): balancers stop sending while requests are still served."""
        self.draining = True
        if self._metrics is not None:
            self._metrics.ready.set(0)

    async def wait_first(self, timeout: float) -> bool:
        """Let a probe that comes before the first round ends wait for it, rather than fail at start-up."""
        try:
            async with asyncio.timeout(timeout):
                await self._first.wait()
        except TimeoutError:
            return False
        return True

    async def run(self) -> None:
        """Check, keep the result, sleep, again, until cancelled."""
        while True:
            try:
                checks = await self._check()
            except Exception as exc:  # a failing round must not end the loop; it is reported like a check
                log.exception("readiness check failed")
                checks = {"checks": f"failed ({type(exc).__name__})"}
            self._record(checks)
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # A cancel that arrived during the round and was lost inside a client (seen with redis-py's
                # cluster client while a node was down) still ends the loop.
                raise asyncio.CancelledError
            await asyncio.sleep(self._interval())  # read each time: a reload may change it

    def _record(self, checks: Checks) -> None:
        # What changed goes to the log, once per change.
        failing = {name: value for name, value in checks.items() if value != "ok"}
        before = None if self._last is None else {n: v for n, v in self._last.items() if v != "ok"}
        if failing != before:
            if failing:
                log.warning("dependencies: %s", ", ".join(f"{n} {v}" for n, v in sorted(failing.items())))
            elif before is not None:
                log.warning("dependencies: every one answers again")
        if self._metrics is not None:
            gauge = self._metrics.dependency_up
            for name in set(self._last or ()) - set(checks):
                gauge.remove(name)  # no longer checked: Redis while the cache is off
            for name, value in checks.items():
                gauge.labels(name).set(1 if value == "ok" else 0)
        self._last = checks
        self._first.set()
        if self._metrics is not None:
            self._metrics.ready.set(1 if self.ready else 0)
