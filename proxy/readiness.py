"""Readiness checked in the background, so a probe of /-/ready never reaches Redis or an upstream itself."""
from __future__ import annotations

import asyncio
import logging
from typing import Awaitable, Callable

log = logging.getLogger("cachegate.readiness")
Checks = dict[str, str]  # what was checked -> "ok" or why not


class Readiness:
    """The last round of checks of one process; `run()` repeats them, a probe only reads the result."""

    def __init__(self, check: Callable[[], Awaitable[Checks]], *, interval: Callable[[], float]) -> None:
        self._check = check
        self._interval = interval
        self._last: Checks | None = None
        self._first = asyncio.Event()

    @property
    def checks(self) -> Checks | None:
        """The last round's results; None before the first round is done."""
        return self._last

    @property
    def ready(self) -> bool:
        return self._last is not None and all(v == "ok" for v in self._last.values())

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
            except Exception as exc:  # a failing check must not end the loop: it makes the process not ready
                log.exception("readiness check failed")
                checks = {"checks": f"failed ({type(exc).__name__})"}
            self._record(checks)
            await asyncio.sleep(self._interval())  # read each time: a reload may change it

    def _record(self, checks: Checks) -> None:
        # The probe's body no longer says what failed; the log does, once per change.
        failing = {name: value for name, value in checks.items() if value != "ok"}
        before = None if self._last is None else {n: v for n, v in self._last.items() if v != "ok"}
        if failing != before:
            if failing:
                log.warning("not ready: %s", ", ".join(f"{n} {v}" for n, v in sorted(failing.items())))
            elif before is not None:
                log.warning("ready again")
        self._last = checks
        self._first.set()
