"""Write-through at its edges, on a real backend and Redis: a DELETE off the wire, a DELETE that meets another
write's fence, a 2xx other than 200."""
from __future__ import annotations

from tests.support.strategy_world import Backend, StrategyWorld, context

WT = "write-through"


async def test_a_delete_from_the_wire_leaves_a_tombstone(world: StrategyWorld, backend: Backend) -> None:
    """The method as aiohttp's parser hands it over: equal to "DELETE", never the same object as a literal."""
    parsed = "".join(["DEL", "ETE"])
    reply = await world.strategy(WT).handle(context(WT, parsed, "/items/1", key="item:1"))
    assert reply.status == 200 and reply.cache_status.endswith("detail=tombstone")
    record = (await world.store.inspect("item:1")).record
    assert record is not None and record.kind == "tombstone" and record.floor == 2


async def test_a_delete_that_meets_another_writes_fence_says_fenced(world: StrategyWorld) -> None:
    await world.store.fence(b"other-wr", ["item:1"], [], lifetime=5.0, linger=1.0)  # a PUT in flight
    reply = await world.strategy(WT).handle(context(WT, "DELETE", "/items/1", key="item:1"))
    assert reply.status == 200 and reply.cache_status.endswith("detail=fenced")
    assert world.metrics.registry.get_sample_value("cachegate_tombstones_total") == 0


async def test_a_201_is_an_applied_write_not_a_refused_one(world: StrategyWorld, backend: Backend) -> None:
    reply = await world.strategy(WT).handle(context(WT, "POST", "/items", key="item:2"))
    assert reply.status == 201
    assert world.outcomes("write", "dropped") == 1 and world.outcomes("write", "status-201") == 0


async def test_a_refused_write_that_meets_another_writes_fence_says_fenced(world: StrategyWorld,
                                                                           backend: Backend) -> None:
    await world.store.fence(b"other-wr", ["item:1"], [], lifetime=5.0, linger=1.0)
    backend.fail_with = 409
    reply = await world.strategy(WT).handle(context(WT, "PUT", "/items/1", key="item:1"))
    assert reply.status == 409 and reply.cache_status.endswith("detail=fenced")


async def test_a_refused_write_leaves_unversioned_views_fillable(world: StrategyWorld,
                                                                  backend: Backend) -> None:
    """A 4xx changed nothing: the views it would invalidate are dropped, but a list (no version) may fill."""
    backend.fail_with = 409
    reply = await world.strategy(WT).handle(context(WT, "PUT", "/items/1", key="item:1",
                                                    invalidates=("search:q=a",)))
    assert reply.status == 409
    backend.fail_with = None
    read = await world.strategy("read-through").handle(context("read-through", "GET", "/search",
                                                               key="search:q=a", query="q=a"))
    assert read.status == 200 and read.cache_status.endswith("stored"), read.cache_status


async def test_a_refused_write_with_redis_gone_still_answers(make_world, redis_factory,
                                                             backend: Backend) -> None:
    server = redis_factory()
    world = await make_world(redis_url=server.url, timeout=0.3, failures=100)
    server.kill()
    backend.fail_with = 409
    reply = await world.strategy(WT).handle(context(WT, "PUT", "/items/1", key="item:1"))
    assert reply.status == 409 and "CACHE-UNAVAILABLE" in reply.cache_status, reply.cache_status
