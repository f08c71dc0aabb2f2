"""Redis killed or frozen under the strategies: answers still come from upstream, stale data never returns."""
from __future__ import annotations

import asyncio
from typing import Callable

import pytest

from stack.redis import RedisServer
from tests.support.polling import poll
from tests.support.strategy_world import Backend, StrategyWorld, WorldFactory, body_of, context

pytestmark = pytest.mark.fault
RT, WT = "read-through", "write-through"
UNAVAILABLE = "cachegate; fwd=bypass; detail=CACHE-UNAVAILABLE"


def read(item: int = 1):
    return context(RT, "GET", f"/items/{item}", key=f"item:{item}")


def put(item: int = 1):
    return context(WT, "PUT", f"/items/{item}", key=f"item:{item}", invalidates=("tag:item-lists",))


async def _until_half_open(world: StrategyWorld, limit: float = 10.0) -> None:
    async def half_open() -> bool:
        return world.store.breaker_state == "half-open"

    assert await poll(half_open, limit, interval=0.02), world.store.breaker_state


async def test_killed_redis_answers_from_upstream(redis_factory: Callable[..., RedisServer],
                                                  make_world: WorldFactory, backend: Backend) -> None:
    server = redis_factory()
    world = await make_world(redis_url=server.url, timeout=0.3, failures=2)
    reader, writer = world.strategy(RT), world.strategy(WT)
    await reader.handle(read())
    server.kill()
    replies = [await reader.handle(read()), await writer.handle(put()), await reader.handle(read()),
               await reader.handle(read(2))]
    assert [r.status for r in replies] == [200, 200, 200, 200]
    assert [body_of(r)["version"] for r in replies] == [1, 2, 2, 1]
    assert all(r.cache_status == UNAVAILABLE for r in replies)
    assert world.outcomes("bypass", "CACHE-UNAVAILABLE") == 4


async def test_paused_redis_answers_from_upstream_then_caches_again(redis_factory: Callable[..., RedisServer],
                                                                    make_world: WorldFactory,
                                                                    backend: Backend) -> None:
    server = redis_factory()
    world = await make_world(redis_url=server.url, timeout=0.2, failures=2, reset=0.2)
    reader = world.strategy(RT)
    server.pause()
    try:
        replies = await asyncio.gather(*(reader.handle(read(i)) for i in range(1, 6)))
        assert {r.status for r in replies} == {200}
        assert {r.cache_status for r in replies} == {UNAVAILABLE}
        assert (await reader.handle(read())).cache_status == UNAVAILABLE
    finally:
        server.resume()
    await _until_half_open(world)
    assert (await reader.handle(read())).cache_status == "cachegate; fwd=miss; fwd-status=200; stored"
    assert (await reader.handle(read())).cache_status.startswith("cachegate; hit")


async def test_a_write_that_missed_redis_is_never_answered_stale(redis_factory: Callable[..., RedisServer],
                                                                 make_world: WorldFactory) -> None:
    """Bounded staleness: read (cached v1), Redis unreachable, write v2 through, Redis back, read -> v2."""
    server = redis_factory()
    world = await make_world(redis_url=server.url, timeout=0.2, failures=1, reset=0.2)
    reader, writer = world.strategy(RT), world.strategy(WT)
    assert body_of(await reader.handle(read()))["version"] == 1
    server.pause()
    try:
        assert (await reader.handle(read(2))).cache_status == UNAVAILABLE  # the timeout opens the breaker
        written = await writer.handle(put())  # so this write cannot reach Redis at all
        assert (written.status, written.cache_status) == (200, UNAVAILABLE)
    finally:
        server.resume()
    await _until_half_open(world)
    after = await reader.handle(read())
    assert body_of(after)["version"] == 2
    assert after.cache_status == "cachegate; fwd=miss; fwd-status=200; stored"
    assert world.metrics.registry.get_sample_value("cachegate_epoch_bumps_total") == 1


async def test_a_fence_that_missed_redis_lets_the_write_through_and_moves_the_epoch(
        redis_factory: Callable[..., RedisServer], make_world: WorldFactory, backend: Backend) -> None:
    """Redis frozen when the fence should be set: the write still goes upstream (it costs a timeout, never an
    error), and the missed fence moves the epoch, so the old entry is not served while the write is out."""
    server = redis_factory()
    world = await make_world(redis_url=server.url, timeout=0.2, failures=100)
    reader, writer = world.strategy(RT), world.strategy(WT)
    assert body_of(await reader.handle(read()))["version"] == 1
    backend.write_gate = asyncio.Event()
    server.pause()
    try:
        in_flight = asyncio.create_task(writer.handle(put()))
        async def committed() -> bool:  # the fence timed out, and the write went on regardless
            return backend.versions.get(1) == 2

        assert await poll(committed, 30), "the write never reached the backend"
    finally:
        server.resume()
    during = await reader.handle(read())
    assert body_of(during)["version"] == 2
    backend.write_gate.set()
    written = await in_flight
    assert (written.status, body_of(written)["version"]) == (200, 2)
    assert backend.served("PUT", "/items/1") == 1
    assert world.metrics.registry.get_sample_value("cachegate_epoch_bumps_total") == 1
    assert body_of(await reader.handle(read()))["version"] == 2
