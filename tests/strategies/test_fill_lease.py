"""The fill lease across gateway processes: a cold key is fetched once by whoever took its lease, the other
processes wait for that fill; a fill that will not store gives the lease back; a dead holder's lease only
delays the others by cache.fill_wait. Two strategy instances over one store stand for two processes (each
coalesces in its own flights, as a process does); tests/e2e/test_fill_lease.py runs real processes."""
from __future__ import annotations

import asyncio

from tests.strategies.test_read_through import RT, _wait_for, get
from tests.support.strategy_world import Backend, StrategyWorld


async def test_concurrent_misses_in_two_processes_make_one_upstream_request(world: StrategyWorld,
                                                                           backend: Backend) -> None:
    one, two = world.strategy(RT), world.strategy(RT)
    backend.gate = asyncio.Event()
    first = [asyncio.create_task(one.handle(get())) for _ in range(20)]
    await _wait_for(lambda: backend.served("GET", "/items/1") == 1)
    second = [asyncio.create_task(two.handle(get())) for _ in range(20)]
    for _ in range(20):
        await asyncio.sleep(0.005)  # let the second process find the lease and start waiting (no sync)
    backend.gate.set()
    replies = await asyncio.gather(*first, *second)
    assert {r.status for r in replies} == {200} and len({r.body for r in replies}) == 1
    assert backend.served("GET", "/items/1") == 1
    answered_by_lease = [r for r in replies[20:] if r.cache_status.startswith("cachegate; hit")]
    assert answered_by_lease and all("collapsed" in r.cache_status for r in answered_by_lease)
    assert world.outcomes("coalesced", "lease") >= 1


async def test_a_fill_that_will_not_store_gives_its_lease_back(make_world, backend: Backend) -> None:
    """A `no-store` answer: the holder releases the lease, so the waiting process goes upstream at once
    (its request answers long before the minute of fill_wait would have passed)."""
    world = await make_world()
    backend.extra_headers = {"Cache-Control": "no-store"}
    one, two = world.strategy(RT, fill_wait=60.0), world.strategy(RT, fill_wait=60.0)
    backend.gate = asyncio.Event()
    holder = asyncio.create_task(one.handle(get()))
    await _wait_for(lambda: backend.served("GET", "/items/1") == 1)
    waiter = asyncio.create_task(two.handle(get()))
    for _ in range(20):
        await asyncio.sleep(0.005)  # let it find the lease and start waiting (no synchronisation)
    backend.gate.set()
    assert (await holder).status == 200
    reply = await asyncio.wait_for(waiter, 20)
    assert reply.status == 200 and "fwd=miss" in reply.cache_status
    assert backend.served("GET", "/items/1") == 2
    assert (await world.store.lookup("item:1")).token == b""  # nothing left on the key


async def test_a_lease_whose_holder_died_only_delays_the_others_by_fill_wait(make_world,
                                                                            backend: Backend) -> None:
    """The lease is taken by a process that dies before it fetches: the next process waits fill_wait for
    it, then fetches itself and stores (against the dead holder's lease)."""
    world = await make_world()
    seen = await world.store.lookup("item:1")
    dead = await world.store.claim("item:1", seen, lifetime=30.0)   # ...and its process is gone
    assert dead.token and not dead.leased
    strategy = world.strategy(RT, fill_wait=0.3)
    reply = await strategy.handle(get())
    assert reply.status == 200 and reply.cache_status == "cachegate; fwd=miss; fwd-status=200; stored"
    assert backend.served("GET", "/items/1") == 1
    assert (await world.store.lookup("item:1")).entry.version == 1
