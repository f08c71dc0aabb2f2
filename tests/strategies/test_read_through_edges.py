"""Read-through at the edges of an entry's life and of what it may answer, on a real backend and Redis."""
from __future__ import annotations

import asyncio
import time

import pytest

from proxy.errors import UpstreamError
from proxy.records import make_entry
from strategies.read_through import ReadThrough
from tests.support.strategy_world import Backend, StrategyWorld, body_of, context

RT = "read-through"


def get(*, method: str = "GET", **options: object):
    return context(RT, method, "/items/1", key="item:1", **options)  # type: ignore[arg-type]


async def test_an_entry_past_its_grace_is_a_miss_not_a_stale_answer(world: StrategyWorld,
                                                                    backend: Backend) -> None:
    # Stored long ago: fresh for 1 s and stale for 1 s after that, both over; Redis still holds it.
    old = make_entry(200, [("ETag", '"1"')], b'{"id": 1, "version": 1}', version=1,
                     now=time.time() - 1000, ttl=1.0, grace=1.0)
    assert await world.store.write("item:1", old) == "stored"
    assert (await world.store.lookup("item:1")).entry is not None
    backend.versions[1] = 2
    reply = await world.strategy(RT).handle(get())
    assert body_of(reply)["version"] == 2
    assert reply.cache_status.startswith("cachegate; fwd=miss; fwd-status=200")
    assert backend.served("GET", "/items/1") == 1


async def test_a_stale_get_from_the_wire_starts_the_refresh(world: StrategyWorld, backend: Backend) -> None:
    """The method as aiohttp's parser hands it over: equal to "GET", never the same object as a literal."""
    strategy = world.strategy(RT, jitter=0.0)
    assert isinstance(strategy, ReadThrough)
    stale = make_entry(200, [("ETag", '"1"')], b'{"id": 1, "version": 1}', version=1,
                       now=time.time() - 10, ttl=1.0, grace=600.0)
    assert await world.store.write("item:1", stale) == "stored"
    parsed = "".join(["G", "E", "T"])
    reply = await strategy.handle(get(method=parsed))
    assert reply.cache_status.endswith("detail=stale-while-revalidate")
    await strategy.flights.wait()
    assert backend.served("GET", "/items/1") == 1  # the refresh went up


async def test_a_refresh_that_answers_500_is_remembered_for_stale_if_error(world: StrategyWorld,
                                                                          backend: Backend) -> None:
    strategy = world.strategy(RT, jitter=0.0)
    assert isinstance(strategy, ReadThrough)
    stale = make_entry(200, [("ETag", '"1"')], b'{"id": 1, "version": 1}', version=1,
                       now=time.time() - 10, ttl=1.0, grace=600.0)
    assert await world.store.write("item:1", stale) == "stored"
    backend.fail_with = 500
    await strategy.handle(get())
    await strategy.flights.wait()
    reply = await strategy.handle(get())
    assert reply.status == 200 and body_of(reply)["version"] == 1
    assert "fwd-status=500" in reply.cache_status and reply.cache_status.endswith("detail=stale-if-error")


async def test_a_cached_404_with_an_etag_is_never_answered_304(world: StrategyWorld) -> None:
    """304 stands for a 200 (RFC 9110 15.4.5): a cached negative answer is sent whole, whatever it carries."""
    gone = make_entry(404, [("ETag", '"9"'), ("Content-Type", "application/json")], b'{"error": {}}',
                      version=0, now=time.time(), ttl=30.0, grace=0.0)
    assert await world.store.write("item:1", gone) == "stored"
    reply = await world.strategy(RT).handle(get(headers={"If-None-Match": '"9"'}))
    assert (reply.status, reply.body) == (404, b'{"error": {}}')


async def test_a_fill_that_finds_redis_gone_still_answers_from_upstream(make_world, redis_factory) -> None:
    server = redis_factory()
    world = await make_world(redis_url=server.url, timeout=0.3)
    strategy = world.strategy(RT)
    assert isinstance(strategy, ReadThrough)
    old = make_entry(200, [("ETag", '"1"')], b"{}", version=1, now=time.time() - 1000, ttl=1.0, grace=1.0)
    assert await world.store.write("item:1", old) == "stored"
    seen = await world.store.lookup("item:1")  # Redis answered the lookup (a record: no claim needed)...
    assert seen.token
    server.kill()  # ...and is gone before the fill: the miss's fetch is what the handler would run next
    fetched = await asyncio.wait_for(strategy._fetch(get(), seen, set()), 10)
    assert fetched.response.status == 200 and fetched.fill.reason == "CACHE-UNAVAILABLE"


async def test_a_miss_whose_upstream_fails_is_counted_as_the_miss_it_was(world: StrategyWorld) -> None:
    with pytest.raises(UpstreamError):
        await world.strategy(RT).handle(get(upstream="dead"))
    assert world.outcomes("miss") == 1 and world.outcomes("coalesced", "failed") == 0


async def test_a_miss_that_finds_a_write_in_flight_sends_no_fill(world: StrategyWorld) -> None:
    """The reopen said "fenced": the fill would be refused, so it is not sent, and the refusal counts once."""
    await world.store.fence(b"other-wr", ["item:1"], [], lifetime=5.0, linger=1.0)  # a PUT in flight
    reply = await world.strategy(RT).handle(get())
    assert reply.status == 200 and reply.cache_status.endswith("detail=fenced")
    samples = world.metrics.registry.get_sample_value
    assert samples("cachegate_store_rejected_total", {"reason": "fenced"}) == 1
    assert not samples("cachegate_redis_command_duration_seconds_count", {"command": "fill"})
