"""1,000 clients at once on a cold cache, against the real proxy and service processes: no 5xx.

Regression (issue 9 part 2): `wrk -c1000` on a cold cache gave 1,112 x 504 in the first second. The proxy
opened up to 512 connections at once to a service whose listen backlog was aiohttp's 128, the kernel dropped
the SYNs beyond it, the connects timed out after 1 s, and every request coalesced onto a failed fetch
failed with it. Now each proxy process opens at most proxy.upstream_pool connections to an upstream (the
rest queue for one), the services listen with a backlog of 1,024, and waiters retry a failed fill.
"""
from __future__ import annotations

import asyncio
import random
from collections import Counter

import aiohttp
import pytest

pytestmark = pytest.mark.slow

CLIENTS = 1000


async def test_a_thousand_clients_on_a_cold_cache_get_no_5xx(real_stack):
    stack = await real_stack(users=1000)
    rng = random.Random(9)
    # Most clients read users nobody else reads; a fifth all read the same few (their misses coalesce).
    paths = [f"/users/{rng.choice(stack.ids[:5]) if i % 5 == 0 else rng.choice(stack.ids)}"
             for i in range(CLIENTS)]
    statuses: Counter[str] = Counter()
    start = asyncio.Event()

    async def client(http: aiohttp.ClientSession, path: str) -> None:
        await start.wait()
        try:
            async with http.get(path, headers={"Authorization": stack.authorization}) as resp:
                await resp.read()
                statuses[str(resp.status)] += 1
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            statuses[type(exc).__name__] += 1

    # One connection per client, all opened at once: the burst of a cold start behind a balancer.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(stack.base, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as http:
        tasks = [asyncio.create_task(client(http, path)) for path in paths]
        await asyncio.sleep(0)  # every client waits on `start`
        start.set()
        await asyncio.gather(*tasks)
    assert statuses == Counter({"200": CLIENTS}), statuses
