"""At most one upstream fetch per key at a time in this process; everyone else shares its result."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, TypeVar

T = TypeVar("T")


class Flights(Generic[T]):
    """Running fetches by key. A fetch is a task of its own, so a client that goes away does not cancel
    the fill the others are waiting for; the task leaves the table when it ends, whatever the outcome."""

    def __init__(self) -> None:
        self._running: dict[str, asyncio.Task[T]] = {}

    def running(self, key: str) -> asyncio.Task[T] | None:
        task = self._running.get(key)
        return None if task is None or task.done() else task

    def start(self, key: str, work: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """The fetch already running for `key`, or a new one running `work()` (also when the one in the
        table has just ended: its waiters may be starting the next)."""
        task = self._running.get(key)
        if task is None or task.done():
            task = asyncio.ensure_future(work())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return task

    def _finished(self, key: str, task: asyncio.Task[T]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # a background refresh may have no waiter left: its error is handled, not lost

    async def wait(self) -> None:
        """Until every fetch running now has ended, however it ends."""
        await asyncio.gather(*self._running.values(), return_exceptions=True)

    async def close(self) -> None:
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
