"""At most one upstream fetch per key and cache state at a time in this process; the others share its result.

A request joins a fetch only if its own lookup saw the record the fetch is for (the same token and tag
generations): a write acknowledged between the fetch's lookup and the request's changed the record, so the
request starts a fetch of its own, sent after that write, instead of sharing an answer read before it.
"""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Generic, Hashable, TypeVar

T = TypeVar("T")


class Flights(Generic[T]):
    """Running fetches by key, each with the cache states it answers for. A fetch is a task of its own, so
    a client that goes away does not cancel the fill the others are waiting for; the task leaves the table
    when it ends, whatever the outcome."""

    def __init__(self) -> None:
        self._running: dict[str, tuple[asyncio.Task[T], set[Hashable]]] = {}

    def running(self, key: str, state: Hashable) -> asyncio.Task[T] | None:
        """The fetch running for `key` that a request whose lookup saw `state` may share."""
        found = self._running.get(key)
        if found is None or found[0].done() or state not in found[1]:
            return None
        return found[0]

    def start(self, key: str, state: Hashable,
              work: Callable[[set[Hashable]], Awaitable[T]]) -> asyncio.Task[T]:
        """The fetch for `key` and `state` already running, or a new one running `work(states)`; the work
        adds to `states` the records it writes itself (a lease, a reopened key), which are its own.

        A new fetch takes the table's place (also when the one there has just ended: its waiters may be
        starting the next); the one it replaces goes on for those already waiting on it."""
        found = self._running.get(key)
        if found is not None and not found[0].done() and state in found[1]:
            return found[0]
        states: set[Hashable] = {state}
        task = asyncio.ensure_future(work(states))
        self._running[key] = (task, states)
        task.add_done_callback(lambda done: self._finished(key, done))
        return task

    def _finished(self, key: str, task: asyncio.Task[T]) -> None:
        found = self._running.get(key)
        if found is not None and found[0] is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # a background refresh may have no waiter left: its error is handled, not lost

    def _tasks(self) -> list[asyncio.Task[T]]:
        return [task for task, _ in self._running.values()]

    async def wait(self) -> None:
        """Until every fetch running now has ended, however it ends."""
        await asyncio.gather(*self._tasks(), return_exceptions=True)

    async def close(self) -> None:
        tasks = self._tasks()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
