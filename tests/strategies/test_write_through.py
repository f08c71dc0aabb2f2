"""Write-through on a real backend and Redis: entities written with their version, deletes, invalidations."""
from __future__ import annotations

import asyncio
import time

import pytest
from strategy_helpers import Backend, World, WorldFactory, body_of, context

from proxy.errors import UpstreamTimeout
from proxy.store import make_entry

RT, WT = "read-through", "write-through"


def write(method: str, path: str = "/items/1", key: str | None = "item:1", **options: object):
    return context(WT, method, path, key=key, **options)  # type: ignore[arg-type]


def read(path: str = "/items/1", key: str = "item:1", **options: object):
    return context(RT, "GET", path, key=key, **options)  # type: ignore[arg-type]


async def test_read_your_writes_from_the_cache(world: World, backend: Backend) -> None:
    reader, writer = world.strategy(RT), world.strategy(WT)
    assert body_of(await reader.handle(read()))["version"] == 1
    reply = await writer.handle(write("PUT"))
    assert reply.status == 200 and reply.cache_status == "cachegate; fwd=method; fwd-status=200; stored"
    after = await reader.handle(read())
    assert body_of(after)["version"] == 2 and after.cache_status.startswith("cachegate; hit")
    assert backend.served("GET", "/items/1") == 1  # the new version came from the write, not a new read
    assert world.outcomes("stored") == 2


async def test_a_write_answering_an_older_version_keeps_the_newer_entry(world: World) -> None:
    newer = make_entry(200, [("ETag", '"9"')], b'{"id": 1, "version": 9}', version=9, now=time.time(),
                       ttl=60, grace=60)
    await world.store.write("item:1", newer)
    reply = await world.strategy(WT).handle(write("PATCH"))  # the backend answers version 2
    assert reply.cache_status == "cachegate; fwd=method; fwd-status=200; detail=older"
    assert (await world.store.lookup("item:1")).entry.version == 9


async def test_delete_leaves_a_tombstone_that_refuses_a_slow_fill(world: World, backend: Backend) -> None:
    reader, writer = world.strategy(RT), world.strategy(WT)
    backend.gate = asyncio.Event()                   # a read has its row (version 1) but answers slowly
    slow_read = asyncio.create_task(reader.handle(read()))
    deadline = time.monotonic() + 5
    while backend.served("GET", "/items/1") == 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    deleted = await writer.handle(write("DELETE"))
    assert deleted.cache_status == "cachegate; fwd=method; fwd-status=200; detail=tombstone"
    backend.gate.set()
    late = await slow_read
    assert body_of(late)["version"] == 1 and late.cache_status.endswith("detail=raced")
    after = await reader.handle(read())
    assert after.status == 404                       # never the resurrected version 1
    assert world.metrics.registry.get_sample_value("cachegate_tombstones_total") == 1


async def test_a_refused_write_leaves_the_cache_alone(world: World, backend: Backend) -> None:
    reader, writer = world.strategy(RT), world.strategy(WT)
    await reader.handle(read())
    backend.fail_with = 409
    reply = await writer.handle(write("PUT"))
    assert (reply.status, reply.cache_status) == (409, "cachegate; fwd=method; fwd-status=409")
    assert (await world.store.lookup("item:1")).entry.version == 1


async def test_a_5xx_drops_the_key(world: World, backend: Backend) -> None:
    reader, writer = world.strategy(RT), world.strategy(WT)
    await reader.handle(read())
    backend.fail_with = 503
    reply = await writer.handle(write("PUT"))
    assert reply.cache_status == "cachegate; fwd=method; fwd-status=503; detail=dropped"
    assert (await world.store.lookup("item:1")).entry is None


async def test_a_timeout_drops_the_key_and_is_still_a_timeout(make_world: WorldFactory,
                                                              backend: Backend) -> None:
    world = await make_world(upstream_timeout=0.3)
    await world.strategy(RT).handle(read())
    with pytest.raises(UpstreamTimeout):
        await world.strategy(WT).handle(write("PUT", "/slow", invalidates=("tag:item-lists",)))
    assert backend.served("PUT", "/slow") == 1
    assert (await world.store.lookup("item:1")).entry is None
    assert (await world.store.lookup("x", ["item-lists"])).generations == (1,)


async def test_invalidates_drops_tags_and_keys(world: World, backend: Backend) -> None:
    reader = world.strategy(RT)
    await reader.handle(read("/search", "search:q=a", query="q=a", tags=("item-lists",)))
    await reader.handle(read("/items/2", "item-members:2"))
    await reader.handle(read("/items/3", "item:3"))
    reply = await world.strategy(WT).handle(write("POST", "/items", key=None,
                                                  invalidates=("tag:item-lists", "item-members:2")))
    assert reply.status == 201
    assert (await world.store.lookup("search:q=a")).entry is None
    assert (await world.store.lookup("item-members:2")).entry is None
    assert (await world.store.lookup("item:3")).entry is not None
    again = await reader.handle(read("/search", "search:q=a", query="q=a", tags=("item-lists",)))
    assert 4 in body_of(again)["ids"] and backend.served("GET", "/search") == 2


async def test_an_entity_without_a_version_is_dropped_not_stored(world: World, backend: Backend) -> None:
    await world.store.write("item:4", make_entry(200, [], b"{}", version=1, now=time.time(), ttl=60, grace=0))
    reply = await world.strategy(WT).handle(write("POST", "/items", key="item:4"))  # a 201: not a read
    assert reply.cache_status == "cachegate; fwd=method; fwd-status=201; detail=dropped"
    assert (await world.store.lookup("item:4")).entry is None


async def test_get_on_a_write_through_route_touches_nothing(world: World, backend: Backend) -> None:
    reply = await world.strategy(WT).handle(context(WT, "GET", "/items/1", key="item:1"))
    assert reply.cache_status == "cachegate; fwd=bypass; detail=write-through"
    assert (await world.store.lookup("item:1")).entry is None
