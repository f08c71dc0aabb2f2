"""A Redis at its memory limit: refused writes are a store outcome, evictions never take the gateway's own
keys, and a fill whose record was evicted is refused (docs/architecture.md, "Redis memory").

Regression (issue 9 part 3): with a memory limit and noeviction, the out-of-memory errors of fills opened
the circuit breaker, and the hit ratio fell to 0.6 % although most keys were in Redis.
"""
from __future__ import annotations

from typing import AsyncIterator

import pytest
import redis.asyncio as aioredis

from proxy.metrics import Metrics
from proxy.records import Lookup
from proxy.store import CacheFull, CacheStore
from tests.support.redisclients import admin_client
from tests.support.stores import client_for, entity, sample

pytestmark = pytest.mark.fault
PAD = b"x" * 2000


@pytest.fixture
async def own_redis(redis_factory) -> AsyncIterator[tuple[aioredis.Redis, aioredis.Redis]]:
    """A private Redis: (the gateway's client, the admin's)."""
    server = redis_factory()
    gateway, admin = client_for(server), admin_client(server)
    yield gateway, admin
    await gateway.aclose()
    await admin.aclose()


def make(client: aioredis.Redis, metrics: Metrics) -> CacheStore:
    return CacheStore(client, prefix="m", timeout=1.0, breaker_failures=2, breaker_reset=60.0,
                      metrics=metrics)


async def fill(store: CacheStore, key: str, *, tags: tuple[str, ...] = ()) -> str:
    """As read-through fills: a lookup, a lease on an empty key, the fill."""
    seen = await store.lookup(key, tags)
    if not seen.token:
        try:
            seen = await store.claim(key, seen, lifetime=10.0)
        except CacheFull:
            return "full"
    return await store.fill(key, entity(1, b'{"pad": "%s"}' % PAD), seen=seen, tags=tags)


async def test_a_full_redis_refuses_fills_and_keeps_serving_what_it_holds(own_redis):
    gateway, admin = own_redis
    metrics = Metrics()
    store = make(gateway, metrics)
    await admin.config_set("maxmemory-policy", "noeviction")
    for i in range(20):
        assert await fill(store, f"kept:{i}") == "stored"
    await admin.config_set("maxmemory", str((await admin.info("memory"))["used_memory"]))  # full at once
    outcomes = [await fill(store, f"new:{i}") for i in range(200)]
    assert outcomes.count("full") >= 150, outcomes  # (a fill may fit in what another freed)
    assert store.breaker_state == "closed"  # full is not down
    for i in range(20):
        assert (await store.lookup(f"kept:{i}")).entry is not None  # lookups keep hitting
    assert sample(metrics, "cachegate_store_rejected_total", reason="full") == outcomes.count("full")
    assert sample(metrics, "cachegate_breaker_state") == 0


async def test_an_evicting_redis_never_takes_the_gateways_own_keys(own_redis):
    gateway, admin = own_redis
    store = make(gateway, Metrics())
    policy = (await admin.config_get("maxmemory-policy"))["maxmemory-policy"]
    assert policy == "volatile-lru"  # the launcher's
    await store.new_epoch()
    await store.fence(b"writer-1", [], ["lists"], lifetime=30.0, linger=30.0)  # a write in flight on a tag
    assert await fill(store, "search:0", tags=("lists",)) == "fenced"
    await store.invalidate_tag("lists", writer=b"writer-1")  # ended: the index starts again
    assert await fill(store, "search:1", tags=("lists",)) == "stored"
    await store.fence(b"writer-2", [], ["other"], lifetime=60.0, linger=30.0)  # in flight on another tag
    await admin.config_set("maxmemory", str((await admin.info("memory"))["used_memory"] + 2_000_000))
    outcomes = {await fill(store, f"user:{i}") for i in range(3000)}  # ~6 MB through a 2 MB headroom
    assert outcomes == {"stored"}
    assert int((await admin.info("stats"))["evicted_keys"]) > 1000
    for key in ("m:epoch", "m:g:{lists}", "m:t:{lists}", "m:w:{other}"):
        assert await admin.exists(key), key
        assert await admin.pttl(key) == -1, key  # no TTL: no volatile-* policy may evict it
    assert await store.lookup("user:2999") is not None


async def test_a_fill_whose_record_has_gone_is_refused(store: CacheStore, redis_admin: aioredis.Redis):
    """An evicted tombstone must not let a fill that looked at it store what it read before the delete."""
    await store.write("doomed:1", entity(3))
    seen = await store.lookup("doomed:1")
    await store.tombstone("doomed:1", 4, ttl=30.0)  # the entity is deleted
    before_delete = Lookup(seen.entry, seen.token, seen.epoch, ())
    await redis_admin.delete(store.entry_key("doomed:1"))  # what an eviction does to the tombstone
    assert await store.fill("doomed:1", entity(3), seen=before_delete) == "gone"
    assert (await store.lookup("doomed:1")).entry is None


async def test_a_lease_makes_a_marker_evicted_after_the_lookup_void_the_fill(store: CacheStore,
                                                                             redis_admin: aioredis.Redis):
    seen = await store.claim("doomed:2", await store.lookup("doomed:2"), lifetime=10.0)
    assert seen.token  # the miss holds a lease
    await store.tombstone("doomed:2", 5, ttl=30.0)
    await redis_admin.delete(store.entry_key("doomed:2"))  # evicted
    assert await store.fill("doomed:2", entity(4), seen=seen) == "gone"
    again = await store.claim("doomed:2", await store.lookup("doomed:2"), lifetime=10.0)
    assert await store.fill("doomed:2", entity(6), seen=again) == "stored"  # a new lease fills


async def test_a_lease_taken_second_fills_against_the_first(store: CacheStore):
    first = await store.claim("shared:1", await store.lookup("shared:1"), lifetime=10.0)
    second = await store.claim("shared:1", await store.lookup("shared:1"), lifetime=10.0)
    assert second.token == first.token  # the record the first one left
    assert await store.fill("shared:1", entity(1), seen=first) == "stored"
    assert await store.fill("shared:1", entity(1), seen=second) == "raced"
