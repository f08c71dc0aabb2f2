"""Write-through on a real backend and Redis: entities written with their version, deletes, invalidations."""
from __future__ import annotations

import asyncio
import time

import pytest

from proxy.errors import UpstreamTimeout
from proxy.records import make_entry
from tests.support.polling import poll
from tests.support.strategy_world import Backend, StrategyWorld, WorldFactory, body_of, context

RT, WT = "read-through", "write-through"


def write(method: str, path: str = "/items/1", key: str | None = "item:1", **options: object):
    return context(WT, method, path, key=key, **options)  # type: ignore[arg-type]


def read(path: str = "/items/1", key: str = "item:1", **options: object):
    return context(RT, "GET", path, key=key, **options)  # type: ignore[arg-type]


async def test_read_your_writes_from_the_cache(world: StrategyWorld, backend: Backend) -> None:
    reader, writer = world.strategy(RT), world.strategy(WT)
    assert body_of(await reader.handle(read()))["version"] == 1
    reply = await writer.handle(write("PUT"))
    assert reply.status == 200 and reply.cache_status == "cachegate; fwd=method; fwd-status=200; stored"
    after = await reader.handle(read())
    assert body_of(after)["version"] == 2 and after.cache_status.startswith("cachegate; hit")
    assert backend.served("GET", "/items/1") == 1  # the new version came from the write, not a new read
    assert world.fills() == 1 and world.outcomes("write", "stored") == 1  # a fill, then the write


async def test_a_write_answering_an_older_version_never_brings_it_back(world: StrategyWorld) -> None:
    newer = make_entry(200, [("ETag", '"9"')], b'{"id": 1, "version": 9}', version=9, now=time.time(),
                       ttl=60, grace=60)
    await world.store.write("item:1", newer)
    reply = await world.strategy(WT).handle(write("PATCH"))  # the backend answers version 2
    assert reply.cache_status == "cachegate; fwd=method; fwd-status=200; detail=older"
    seen = await world.store.lookup("item:1")   # the fence took version 9 out; its floor stays
    assert seen.entry is None and not seen.fenced
    assert await world.store.fill("item:1", make_entry(200, [], b"{}", version=2, now=time.time(), ttl=60,
                                                       grace=0), seen=seen) == "older"


async def test_delete_leaves_a_tombstone_that_refuses_a_slow_fill(
        world: StrategyWorld, backend: Backend) -> None:
    reader, writer = world.strategy(RT), world.strategy(WT)
    backend.gate = asyncio.Event()                   # a read has its row (version 1) but answers slowly
    slow_read = asyncio.create_task(reader.handle(read()))
    assert await poll(_async(lambda: backend.served("GET", "/items/1") > 0), 30), "the read never went up"
    deleted = await writer.handle(write("DELETE"))
    assert deleted.cache_status == "cachegate; fwd=method; fwd-status=200; detail=tombstone"
    backend.gate.set()
    late = await slow_read
    assert body_of(late)["version"] == 1 and late.cache_status.endswith("detail=raced")
    after = await reader.handle(read())
    assert after.status == 404                       # never the resurrected version 1
    assert world.metrics.registry.get_sample_value("cachegate_tombstones_total") == 1


async def test_a_refused_write_ends_its_fence_and_the_next_read_fills(
        world: StrategyWorld, backend: Backend) -> None:
    reader, writer = world.strategy(RT), world.strategy(WT)
    await reader.handle(read())
    backend.fail_with = 409
    reply = await writer.handle(write("PUT"))
    assert reply.status == 409
    assert reply.cache_status == "cachegate; fwd=method; fwd-status=409; detail=dropped"
    backend.fail_with = None
    again = await reader.handle(read())            # a plain miss, not a block: it fills at once
    assert again.cache_status == "cachegate; fwd=miss; fwd-status=200; stored"
    assert body_of(again)["version"] == 1


async def test_a_5xx_drops_the_key(world: StrategyWorld, backend: Backend) -> None:
    reader, writer = world.strategy(RT), world.strategy(WT)
    await reader.handle(read())
    backend.fail_with = 503
    reply = await writer.handle(write("PUT"))
    assert reply.cache_status == "cachegate; fwd=method; fwd-status=503; detail=dropped"
    assert (await world.store.lookup("item:1")).entry is None


async def test_a_timeout_keeps_the_fence_to_its_lifetime_and_is_still_a_timeout(make_world: WorldFactory,
                                                                                  backend: Backend) -> None:
    """The backend may still commit after the gateway gave up: the key stays fenced until the fence's end."""
    world = await make_world(upstream_timeout=0.3)
    reader = world.strategy(RT)
    await reader.handle(read())
    with pytest.raises(UpstreamTimeout):
        slow = write("PUT", "/slow", invalidates=("tag:item-lists",))
        await world.strategy(WT, write_fence=1.0).handle(slow)
    assert backend.served("PUT", "/slow") == 1
    # Fenced before the write went (one bump), released as unknown after it (another)
    assert (await world.store.lookup("x", ["item-lists"])).generations == (2,)
    during = await reader.handle(read())
    assert during.cache_status == "cachegate; fwd=miss; fwd-status=200; detail=fenced"
    async def unfenced() -> bool:
        nonlocal reply
        reply = await reader.handle(read())
        return not reply.cache_status.endswith("detail=fenced")

    reply = during
    assert await poll(unfenced, 30), "the fence never ended"
    assert reply.cache_status == "cachegate; fwd=miss; fwd-status=200; stored"
    assert (await reader.handle(read())).cache_status.startswith("cachegate; hit")


async def test_invalidates_drops_tags_and_keys(world: StrategyWorld, backend: Backend) -> None:
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


@pytest.mark.parametrize("cached_before", [True, False], ids=["key-held-an-entry", "key-empty"])
async def test_an_entity_without_a_version_is_dropped_not_stored(
        world: StrategyWorld, backend: Backend, cached_before: bool) -> None:
    """A 200 that would be stored but for its missing version (no ETag, none in the body): only the version
    rule can refuse it. On an empty key nothing else (no floor of an earlier version) would."""
    reader = world.strategy(RT)
    if cached_before:
        assert body_of(await reader.handle(read()))["version"] == 1
    backend.unversioned = True
    reply = await world.strategy(WT).handle(write("PUT"))
    assert reply.status == 200 and "version" not in body_of(reply)
    assert reply.cache_status == "cachegate; fwd=method; fwd-status=200; detail=dropped"
    assert (await world.store.lookup("item:1")).entry is None
    record = (await world.store.inspect("item:1")).record
    assert record is None or record.kind != "entry"
    backend.unversioned = False
    after = await reader.handle(read())
    assert body_of(after)["version"] == 2
    assert backend.served("GET", "/items/1") == (2 if cached_before else 1)


async def test_get_on_a_write_through_route_touches_nothing(world: StrategyWorld, backend: Backend) -> None:
    reply = await world.strategy(WT).handle(context(WT, "GET", "/items/1", key="item:1"))
    assert reply.cache_status == "cachegate; fwd=bypass; detail=write-through"
    assert (await world.store.lookup("item:1")).entry is None


async def test_reads_during_a_write_in_flight_never_get_the_old_entry(
        world: StrategyWorld, backend: Backend) -> None:
    """Regression (issue 7): the write was forwarded while the old entry stayed a hit until the answer."""
    reader, writer = world.strategy(RT), world.strategy(WT)
    assert body_of(await reader.handle(read()))["version"] == 1
    backend.write_gate = asyncio.Event()             # the backend commits version 2, then answers slowly
    in_flight = asyncio.create_task(writer.handle(write("PATCH")))
    assert await poll(_async(lambda: backend.versions.get(1) == 2), 30), "the backend never committed"
    during = await reader.handle(read())
    assert body_of(during)["version"] == 2
    assert during.cache_status == "cachegate; fwd=miss; fwd-status=200; detail=fenced"  # read, not stored
    backend.write_gate.set()
    written = await in_flight
    assert written.cache_status == "cachegate; fwd=method; fwd-status=200; stored"
    after = await reader.handle(read())
    assert body_of(after)["version"] == 2 and after.cache_status.startswith("cachegate; hit")


async def test_of_two_writes_in_flight_the_first_answer_stores_nothing(
        world: StrategyWorld, backend: Backend) -> None:
    reader, writer = world.strategy(RT), world.strategy(WT)
    await reader.handle(read())
    gate = backend.write_gate = asyncio.Event()
    slow = asyncio.create_task(writer.handle(write("PATCH")))    # commits version 2, answers later
    assert await poll(_async(lambda: backend.versions.get(1) == 2), 30), "the backend never committed"
    backend.write_gate = None
    quick = await writer.handle(write("PATCH"))                  # commits version 3 and answers first
    # It cannot tell whether the slow one committed before or after it: a slow one that committed later and
    # then died would leave version 3 served over a newer row. So the key stays fenced.
    assert quick.cache_status == "cachegate; fwd=method; fwd-status=200; detail=fenced"
    assert (await world.store.lookup("item:1")).entry is None
    gate.set()
    assert (await slow).cache_status == "cachegate; fwd=method; fwd-status=200; detail=older"
    after = await reader.handle(read())
    assert body_of(after)["version"] == 3
    assert after.cache_status == "cachegate; fwd=miss; fwd-status=200; stored"


def _async(check):
    """A plain condition as the awaitable one `poll` takes."""
    async def condition() -> bool:
        return check()
    return condition
