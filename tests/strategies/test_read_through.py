"""Read-through against a real backend and Redis: hits, single flight, stale answers, 304s, what is stored."""
from __future__ import annotations

import asyncio
import os
import re
import time

import pytest

from proxy.errors import UpstreamError
from proxy.records import make_entry
from strategies.read_through import ReadThrough
from tests.support.polling import poll
from tests.support.redisclients import admin_client
from tests.support.strategy_world import Backend, StrategyWorld, body_of, context, header

RT = "read-through"


def get(path: str = "/items/1", key: str | None = "item:1", **options: object):
    return context(RT, options.pop("method", "GET"), path, key=key, **options)  # type: ignore[arg-type]


async def _wait_until_stale(world: StrategyWorld, key: str) -> None:
    entry = (await world.store.lookup(key)).entry
    assert entry is not None
    while time.time() < entry.fresh_until:
        await asyncio.sleep(min(0.05, max(0.0, entry.fresh_until - time.time())))


def _async(predicate):
    async def condition() -> bool:
        return predicate()
    return condition


async def _wait_for(predicate, limit: float = 5.0) -> None:
    deadline = time.monotonic() + limit
    while not predicate() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert predicate()


async def test_miss_then_hit(world: StrategyWorld, backend: Backend) -> None:
    strategy = world.strategy(RT)
    first = await strategy.handle(get())
    assert first.cache_status == "cachegate; fwd=miss; fwd-status=200; stored"
    second = await strategy.handle(get())
    assert re.fullmatch(r"cachegate; hit; ttl=\d+", second.cache_status)
    assert second.body == first.body and body_of(second) == {"id": 1, "version": 1, "name": "item 1"}
    assert header(second, "Age") is not None and header(second, "ETag") == '"1"'
    assert header(second, "Content-Type").startswith("application/json")
    assert backend.served("GET", "/items/1") == 1
    assert (world.outcomes("miss"), world.fills(), world.outcomes("hit")) == (1, 1, 1)


async def test_concurrent_misses_make_one_upstream_request(world: StrategyWorld, backend: Backend) -> None:
    strategy = world.strategy(RT)
    backend.gate = asyncio.Event()
    requests = [asyncio.create_task(strategy.handle(get())) for _ in range(25)]
    await _wait_for(lambda: backend.served("GET", "/items/1") == 1)
    for _ in range(5):
        await asyncio.sleep(0)  # every other request has reached the flight by now; give them a chance anyway
    backend.gate.set()
    replies = await asyncio.gather(*requests)
    assert backend.served("GET", "/items/1") == 1
    assert {r.status for r in replies} == {200} and len({r.body for r in replies}) == 1
    assert sum("collapsed" in r.cache_status for r in replies) == 24
    assert world.outcomes("coalesced") == 24


async def test_waiters_on_a_failed_fetch_retry_it_once_coalesced(make_world, backend: Backend) -> None:
    """Regression (issue 9 part 2): every request coalesced onto a fetch that failed got its error (834 of
    1,112 504s of a cold burst)."""
    world = await make_world(upstream_timeout=0.3)
    strategy = world.strategy(RT)
    backend.gate = asyncio.Event()  # the first fetch is held past the upstream timeout
    requests = [asyncio.create_task(strategy.handle(get())) for _ in range(10)]
    await _wait_for(lambda: backend.served("GET", "/items/1") == 2)  # the leader failed; one retry went up
    backend.gate.set()
    replies = await asyncio.gather(*requests, return_exceptions=True)
    failed = [r for r in replies if isinstance(r, UpstreamError)]
    assert len(failed) == 1 and failed[0].status == 504  # the leader's own client has its answer
    assert [r.status for r in replies if not isinstance(r, BaseException)] == [200] * 9
    assert backend.served("GET", "/items/1") == 2  # the nine retried on one fetch, not nine
    assert world.outcomes("miss", "retry") >= 1


async def test_waiters_go_upstream_themselves_after_fill_wait(world: StrategyWorld, backend: Backend) -> None:
    strategy = world.strategy(RT, fill_wait=0.05)
    backend.gate = asyncio.Event()
    requests = [asyncio.create_task(strategy.handle(get())) for _ in range(3)]
    await _wait_for(lambda: backend.served("GET", "/items/1") == 3)
    backend.gate.set()
    replies = await asyncio.gather(*requests)
    assert [r.status for r in replies] == [200, 200, 200]
    assert sum(r.cache_status.endswith("stored") for r in replies) == 1  # the store took one, refused two


async def test_a_fill_survives_its_client_going_away(world: StrategyWorld, backend: Backend) -> None:
    strategy = world.strategy(RT)
    backend.gate = asyncio.Event()
    request = asyncio.create_task(strategy.handle(get()))
    await _wait_for(lambda: backend.served("GET", "/items/1") == 1)
    request.cancel()
    backend.gate.set()
    assert isinstance(strategy, ReadThrough)
    await strategy.flights.wait()
    assert (await world.store.lookup("item:1")).entry is not None


async def test_if_none_match_is_answered_304_from_the_cache(world: StrategyWorld, backend: Backend) -> None:
    strategy = world.strategy(RT)
    await strategy.handle(get())
    reply = await strategy.handle(get(headers={"If-None-Match": 'W/"0", "1"'}))
    assert (reply.status, reply.body, header(reply, "ETag")) == (304, b"", '"1"')
    assert header(reply, "Content-Type") is None
    assert reply.cache_status.startswith("cachegate; hit")
    other = await strategy.handle(get(headers={"If-None-Match": '"7"'}))
    assert other.status == 200 and body_of(other)["version"] == 1
    assert backend.served("GET", "/items/1") == 1
    assert world.outcomes("revalidated") == 1


async def test_if_none_match_on_a_miss_still_fills_the_full_entity(
        world: StrategyWorld, backend: Backend) -> None:
    strategy = world.strategy(RT)
    reply = await strategy.handle(get(headers={"If-None-Match": '"1"'}))
    assert reply.status == 304 and reply.cache_status.endswith("stored")
    entry = (await world.store.lookup("item:1")).entry
    assert entry.status == 200 and entry.body.startswith(b'{"id": 1')


async def test_404_is_cached_for_negative_ttl_without_grace(world: StrategyWorld, backend: Backend) -> None:
    strategy = world.strategy(RT, jitter=0.0)
    backend.deleted.add(1)
    first = await strategy.handle(get(negative_ttl=7.0))
    second = await strategy.handle(get(negative_ttl=7.0))
    assert (first.status, second.status) == (404, 404)
    assert second.cache_status.startswith("cachegate; hit")
    assert backend.served("GET", "/items/1") == 1
    entry = (await world.store.lookup("item:1")).entry
    assert (entry.fresh_until - entry.stored_at, entry.stale_until - entry.fresh_until) == (7.0, 0.0)


@pytest.mark.parametrize("cache_control, reason", [
    ("no-store", "no-store"), ("private, max-age=60", "private"), ("no-cache", "no-cache"),
    ("max-age=0", "ttl-0")])
async def test_upstream_cache_control_is_honoured(world: StrategyWorld, backend: Backend, cache_control: str,
                                                  reason: str) -> None:
    strategy = world.strategy(RT)
    backend.extra_headers = {"Cache-Control": cache_control}
    first = await strategy.handle(get())
    await strategy.handle(get())
    assert first.cache_status == f"cachegate; fwd=miss; fwd-status=200; detail={reason}"
    assert backend.served("GET", "/items/1") == 2
    assert world.fills_refused(reason) == 2 and world.outcomes("miss") == 2


async def test_max_age_shortens_the_ttl(world: StrategyWorld, backend: Backend) -> None:
    strategy = world.strategy(RT, jitter=0.0)
    backend.extra_headers = {"Cache-Control": "public, max-age=5"}
    await strategy.handle(get(ttl=60.0))
    entry = (await world.store.lookup("item:1")).entry
    assert entry.fresh_until - entry.stored_at == 5.0
    assert ("Cache-Control", "public, max-age=5") in entry.headers


async def test_ttls_are_jittered_down_never_up(world: StrategyWorld, backend: Backend) -> None:
    strategy = world.strategy(RT, jitter=0.5)
    for item in range(1, 21):
        await strategy.handle(get(f"/items/{item}", f"item:{item}", ttl=100.0))
    ttls = [(await world.store.lookup(f"item:{i}")).entry for i in range(1, 21)]
    spans = [e.fresh_until - e.stored_at for e in ttls]
    assert all(50.0 <= s <= 100.0 for s in spans)
    assert len(set(spans)) > 10


async def test_stale_entry_is_served_while_one_background_fetch_refreshes_it(world: StrategyWorld,
                                                                            backend: Backend) -> None:
    strategy = world.strategy(RT, jitter=0.0)
    assert isinstance(strategy, ReadThrough)
    await strategy.handle(get(ttl=0.2, grace=60.0))
    await _wait_until_stale(world, "item:1")
    backend.versions[1] = 2
    stale = await asyncio.gather(*(strategy.handle(get(ttl=0.2, grace=60.0)) for _ in range(5)))
    for reply in stale:
        assert body_of(reply)["version"] == 1
        assert re.fullmatch(r"cachegate; hit; ttl=-\d+; detail=stale-while-revalidate", reply.cache_status)
    await strategy.flights.wait()
    assert backend.served("GET", "/items/1") == 2  # one refresh for five stale answers
    fresh = await strategy.handle(get(ttl=60.0))
    assert body_of(fresh)["version"] == 2 and fresh.cache_status.startswith("cachegate; hit; ttl=")


async def test_stale_if_error_when_the_refresh_fails(world: StrategyWorld, backend: Backend) -> None:
    strategy = world.strategy(RT, jitter=0.0)
    assert isinstance(strategy, ReadThrough)
    await strategy.handle(get(ttl=0.2, grace=60.0))
    await _wait_until_stale(world, "item:1")
    backend.fail_with = 503
    await strategy.handle(get(ttl=0.2, grace=60.0))
    await strategy.flights.wait()
    reply = await strategy.handle(get(ttl=0.2, grace=60.0))
    assert reply.status == 200 and body_of(reply)["version"] == 1
    assert re.fullmatch(r"cachegate; hit; fwd-status=503; ttl=-\d+; detail=stale-if-error",
                        reply.cache_status)
    assert world.outcomes("stale_error") == 1
    await strategy.flights.wait()
    backend.fail_with = None
    await strategy.handle(get(ttl=0.2, grace=60.0))  # this one's refresh succeeds...
    await strategy.flights.wait()
    assert "stale-if-error" not in (await strategy.handle(get(ttl=0.2, grace=60.0))).cache_status


async def test_head_is_answered_from_the_cache_but_never_fills_it(
        world: StrategyWorld, backend: Backend) -> None:
    strategy = world.strategy(RT)
    miss = await strategy.handle(get(method="HEAD"))
    assert miss.status == 200 and miss.cache_status == "cachegate; fwd=miss"
    assert (await world.store.lookup("item:1")).entry is None
    await strategy.handle(get())
    hit = await strategy.handle(get(method="HEAD"))
    assert hit.cache_status.startswith("cachegate; hit") and backend.served("HEAD", "/items/1") == 1


async def test_an_unreachable_upstream_on_a_miss_raises_the_upstream_error(world: StrategyWorld) -> None:
    strategy = world.strategy(RT)
    with pytest.raises(UpstreamError):
        await strategy.handle(get(upstream="dead"))
    assert (await world.store.lookup("item:1")).entry is None


async def test_a_marker_evicted_while_a_miss_is_upstream_voids_its_fill(
        world: StrategyWorld, backend: Backend, redis_admin) -> None:
    """Regression (issue 9 part 3): a fill found its empty key empty and stored, though a tombstone written
    meanwhile had been evicted by a full Redis: the deleted entity was served again until its TTL."""
    strategy = world.strategy(RT)
    backend.gate = asyncio.Event()
    miss = asyncio.create_task(strategy.handle(get()))
    await _wait_for(lambda: backend.served("GET", "/items/1") == 1)  # it read the entity, not yet answered
    await world.store.tombstone("item:1", 2, ttl=30.0)               # a DELETE settles meanwhile...
    await redis_admin.delete(world.store.entry_key("item:1"))        # ...and Redis evicts its tombstone
    backend.gate.set()
    reply = await miss
    assert reply.status == 200 and reply.cache_status.endswith("detail=gone"), reply.cache_status
    assert (await world.store.lookup("item:1")).entry is None


async def test_a_read_after_an_acknowledged_write_never_shares_a_fetch_that_read_before_it(
        world: StrategyWorld, backend: Backend) -> None:
    """Regression (fault suite): a read that started after a write was acknowledged joined a fetch that had
    read the row before the write's commit, and showed the older version. Another gateway's write to the
    key is still in flight, so the acknowledged write leaves the key fenced and the read misses."""
    reader, writer = world.strategy(RT), world.strategy("write-through")
    other = os.urandom(8)   # another gateway's write, in flight all along: the key stays fenced
    await world.store.fence(other, ["item:1"], [], lifetime=30, linger=30)
    backend.gate = asyncio.Event()
    early = asyncio.create_task(reader.handle(get()))  # reads version 1, its answer held back
    await _wait_for(lambda: backend.served("GET", "/items/1") == 1)
    written = await writer.handle(context("write-through", "PATCH", "/items/1", key="item:1"))
    assert written.status == 200 and body_of(written)["version"] == 2   # acknowledged
    late = asyncio.create_task(reader.handle(get()))
    await _wait_for(lambda: backend.served("GET", "/items/1") == 2)   # a fetch of its own, after the write
    backend.gate.set()
    assert body_of(await early)["version"] == 1   # it started before the write: either version is right
    assert body_of(await late)["version"] == 2


async def test_an_entry_past_its_stale_until_is_a_miss_though_redis_still_holds_it(
        world: StrategyWorld, backend: Backend) -> None:
    """Grace ends at the entry's `stale_until`, not when Redis drops the record: a proxy whose clock is
    behind this one's (another host sharing the Redis) writes records that outlive their grace here."""
    strategy = world.strategy(RT, jitter=0.0)
    lag = 60.0  # the writer's clock is a minute behind: Redis keeps its record ~60 s past stale_until here
    seen = await world.store.claim("item:1", await world.store.lookup("item:1"), lifetime=5.0)
    old = make_entry(200, [("Content-Type", "application/json"), ("ETag", '"1"')],
                     b'{"id": 1, "version": 1, "name": "item 1"}', version=1, now=time.time() - lag,
                     ttl=lag + 0.3, grace=0.5)
    assert await world.store.fill("item:1", old, seen=seen) == "stored"
    fresh = await strategy.handle(get(ttl=60.0, grace=0.5))
    assert fresh.cache_status.startswith("cachegate; hit; ttl=") and body_of(fresh)["version"] == 1
    backend.versions[1] = 2
    assert await poll(_async(lambda: time.time() >= old.stale_until + 0.05), 10), "grace never ended"
    held = await world.store.inspect("item:1")
    assert held.record is not None and held.record.kind == "entry" and held.expires_in > 30
    reply = await strategy.handle(get(ttl=60.0, grace=0.5))
    assert body_of(reply)["version"] == 2, reply.cache_status
    assert reply.cache_status == "cachegate; fwd=miss; fwd-status=200; stored"
    assert backend.served("GET", "/items/1") == 1
