"""One origin fetch per key across gateway processes (the fill lease), with real processes: 200 clients over
3 gateways on one cold key make exactly one upstream request; the lease holder SIGKILLed mid-fill, the
others still answer, each within cache.fill_wait plus one upstream round trip (bounded by
proxy.upstream_timeout). On a single Redis and on the Redis Cluster."""
from __future__ import annotations

import asyncio
import os
import signal
import time

import aiohttp
import pytest

from tests.support.gateways import start_gateways, stop_gateways
from tests.support.world import world_on

pytestmark = [pytest.mark.slow, pytest.mark.fault]
CLIENTS = 200
FILL_WAIT = 1.0


@pytest.fixture(params=["single", "cluster"])
async def three_gateways(make_world, request):
    world = await world_on(request.param, request, make_world, as_file=True)
    gateways = await start_gateways(world.config.path, 3, changes={"cache": {"fill_wait": f"{FILL_WAIT}s"}})
    try:
        yield world, gateways
    finally:
        stop_gateways(gateways)


async def connections(session: aiohttp.ClientSession, base: str) -> float:
    async with session.get(f"{base}/-/metrics") as resp:
        for line in (await resp.text()).splitlines():
            if line.startswith("cachegate_connections "):
                return float(line.split()[1])
    return 0.0


async def test_two_hundred_clients_over_three_gateways_make_one_upstream_request(three_gateways):
    world, gateways = three_gateways
    uid, auth = await world.user("lease")
    path = f"/users/{uid}"
    world.backends.hold_reads, world.backends.reads_to_hold = asyncio.Event(), 1
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(i: int) -> tuple[int, str]:
            async with session.get(f"{gateways[i % 3].base}{path}", headers={"Authorization": auth}) as resp:
                await resp.read()
                return resp.status, resp.headers["Cache-Status"]
        clients = [asyncio.create_task(one(i)) for i in range(CLIENTS)]
        deadline = time.monotonic() + 30
        while world.backends.served("GET", path) < 1 or sum(
                [await connections(session, g.base) for g in gateways]) < CLIENTS:
            assert time.monotonic() < deadline, "the clients did not all reach the gateways"
            await asyncio.sleep(0.02)
        world.backends.hold_reads.set()  # the one fill the lease holder is making answers now
        answers = await asyncio.gather(*clients)
    assert {status for status, _ in answers} == {200}
    assert world.backends.served("GET", path) == 1, answers
    by_lease = [cs for _, cs in answers if cs.startswith("cachegate; hit") and "collapsed" in cs]
    assert by_lease, answers  # answered by another gateway's fill


async def test_the_lease_holder_killed_mid_fill_leaves_the_others_answering_within_fill_wait(three_gateways):
    world, gateways = three_gateways
    uid, auth = await world.user("holder")
    path = f"/users/{uid}"
    world.backends.hold_reads, world.backends.reads_to_hold = asyncio.Event(), 1
    holder, others = gateways[0], gateways[1:]
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0)) as session:
        async def one(base: str) -> tuple[int, float]:
            began = time.monotonic()
            async with session.get(f"{base}{path}", headers={"Authorization": auth}) as resp:
                await resp.read()
                return resp.status, time.monotonic() - began
        first = asyncio.create_task(one(holder.base))
        deadline = time.monotonic() + 30
        while world.backends.served("GET", path) < 1:  # the holder took the lease and is upstream
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        waiting = [asyncio.create_task(one(others[i % 2].base)) for i in range(40)]
        while sum([await connections(session, g.base) for g in others]) < len(waiting):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        os.killpg(holder.pid, signal.SIGKILL)
        answers = await asyncio.gather(*waiting)
        with pytest.raises(aiohttp.ClientError):
            await first
    upstream_timeout = world.config.proxy.upstream_timeout
    assert {status for status, _ in answers} == {200}
    assert max(took for _, took in answers) < FILL_WAIT + upstream_timeout, answers
    assert world.backends.served("GET", path) <= 1 + len(others)  # the dead holder's, then one per process
