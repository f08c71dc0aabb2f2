"""A real proxy process at its file-descriptor limit (lowered by pid, as the fault suite does): normal
requests keep being answered, and the episode is logged once.

Regression (issue 9 part 1): at the limit every normal request failed (49 of 49, accepted and dropped by
the event loop) and nothing was logged.
"""
from __future__ import annotations

import asyncio
import os
import resource
import time

import aiohttp
import pytest

from tests.support.listened import open_raw

pytestmark = [pytest.mark.slow, pytest.mark.fault]


async def one_request(base: str, path: str, auth: str) -> str:
    """One request on a new connection: its status and error code, or how it failed."""
    try:
        async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=30),
                                         connector=aiohttp.TCPConnector(force_close=True)) as http:
            async with http.get(path, headers={"Authorization": auth}) as resp:
                if resp.status == 200:
                    return "200"
                return f"{resp.status} {(await resp.json())['error']['code']}"
    except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
        return f"failed ({type(exc).__name__})"


async def test_at_the_file_limit_requests_are_still_answered_and_it_is_logged_once(proxy_process):
    proc, uid, auth = await proxy_process(login="fdlimit")
    path = f"/users/{uid}"
    assert await one_request(proc.base, path, auth) == "200"  # filled: later reads are cache hits
    _, hard = resource.prlimit(proc.pid, resource.RLIMIT_NOFILE)
    in_use = len(os.listdir(f"/proc/{proc.pid}/fd"))
    # Room for 12 more files: fewer than the listener keeps for upstreams and Redis: accept itself runs out.
    resource.prlimit(proc.pid, resource.RLIMIT_NOFILE, (in_use + 12, hard))
    flood = [await open_raw(proc.world.config.proxy.port) for _ in range(50)]  # idle: each wants a file
    seen: list[str] = []
    try:
        # Until the idle connections have waited long enough to be closed for newcomers, those are told to
        # come back (503); then they are served. Each answer is kept.
        deadline = time.monotonic() + 30
        while seen.count("200") < 5:
            assert time.monotonic() < deadline, seen
            seen.append(await one_request(proc.base, path if len(seen) % 2 else "/-/health", auth))
    finally:
        for _, writer in flood:
            writer.close()
    # Answered, each of them: served (idle connections made room) or told to come back, never cut off.
    assert set(seen) <= {"200", "503 connection_limit"}, seen
    log = proc.log()
    assert log.count("out of file descriptors (EMFILE)") == 1, log[-3000:]
