"""Waiting for a condition with a deadline, in async tests (never a bare sleep as synchronisation)."""
from __future__ import annotations

import asyncio
from typing import Awaitable, Callable


async def poll(condition: Callable[[], Awaitable[bool]], timeout: float, interval: float = 0.05) -> bool:
    """Await `condition()` until it is true (True) or `timeout` seconds have passed (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await condition():
        if loop.time() > deadline:
            return False
        await asyncio.sleep(interval)
    return True
