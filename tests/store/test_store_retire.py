"""Changes from the binary log on a real Redis (`CacheStore.retire`, `retire_many`): fenced by version,
idempotent, and an older change than what the cache holds changes nothing."""
from __future__ import annotations

import redis.asyncio as aioredis

from proxy.records import DROPPED, TOMBSTONE, WRITING, new_writer
from proxy.store import CacheStore
from tests.support.records import fence_of
from tests.support.stores import entity

TTL = 30.0


async def raw(store: CacheStore, client: aioredis.Redis, key: str) -> bytes | None:
    return await client.get(store.entry_key(key))


async def test_an_update_drops_older_entries_and_refuses_older_fills(store, redis_client) -> None:
    await store.write("user:1", entity(3))
    seen = await store.lookup("user:1")
    assert await store.retire("user:1", 4, deleted=False, ttl=TTL) == "stored"
    assert (await store.lookup("user:1")).entry is None
    kind, floor, _ = fence_of(await raw(store, redis_client, "user:1"))
    assert (kind, floor) == (DROPPED, 4)
    assert await store.fill("user:1", entity(3), seen=seen) == "raced"   # looked before the change
    lease = await store.claim("user:1", await store.lookup("user:1"), lifetime=5)
    assert await store.fill("user:1", entity(3), seen=lease) == "older"  # an old read after it
    fresh = await store.claim("user:1", await store.lookup("user:1"), lifetime=5)
    assert await store.fill("user:1", entity(4), seen=fresh) == "stored"


async def test_a_change_the_cache_already_has_changes_nothing(store, redis_client) -> None:
    await store.write("user:2", entity(5))
    before = await raw(store, redis_client, "user:2")
    for version in (5, 4, 1):  # a replay, or a late event
        assert await store.retire("user:2", version, deleted=False, ttl=TTL) == "current"
    assert await raw(store, redis_client, "user:2") == before
    assert (await store.lookup("user:2")).entry.version == 5
    # Twice the same change: the second finds its own marker.
    assert await store.retire("user:2", 6, deleted=False, ttl=TTL) == "stored"
    marker = await raw(store, redis_client, "user:2")
    assert await store.retire("user:2", 6, deleted=False, ttl=TTL) == "current"
    assert await raw(store, redis_client, "user:2") == marker


async def test_a_delete_leaves_a_tombstone_and_an_empty_key_stays_empty(store, redis_client) -> None:
    await store.write("user:3", entity(2))
    assert await store.retire("user:3", 3, deleted=True, ttl=TTL) == "stored"
    assert fence_of(await raw(store, redis_client, "user:3"))[:2] == (TOMBSTONE, 3)
    assert await store.retire("user:3", 3, deleted=True, ttl=TTL) == "current"
    assert await store.retire("user:3", 2, deleted=False, ttl=TTL) == "current"  # the update before it
    assert await store.retire("user:9", 7, deleted=False, ttl=TTL) == "absent"
    assert await raw(store, redis_client, "user:9") is None


async def test_a_write_fence_stays_with_its_floor_raised(store, redis_client) -> None:
    writer = new_writer()
    await store.fence(writer, ["user:4"], (), lifetime=60, linger=TTL)
    assert await store.retire("user:4", 8, deleted=False, ttl=TTL) == "fenced"
    kind, floor, writers = fence_of(await raw(store, redis_client, "user:4"))
    assert (kind, floor, [w for w, _ in writers]) == (WRITING, 8, [writer])


async def test_many_keys_in_one_round_trip_say_each_outcome(store) -> None:
    await store.write("user:5", entity(1))
    await store.write("user:6", entity(9))
    outcomes = await store.retire_many([("user:5", 2, False), ("user:6", 3, False), ("user:7", 1, True)],
                                       ttl=TTL)
    assert outcomes == ["stored", "current", "absent"]
    assert (await store.lookup("user:5")).entry is None and (await store.lookup("user:6")).entry.version == 9
