"""The store's write rules on a real Redis: versions never go back, deletes and invalidations are final."""
from __future__ import annotations

import asyncio
import random
import time

import redis.asyncio as aioredis

from proxy.metrics import Metrics
from proxy.store import CacheStore
from tests.support.stores import entity, sample


async def test_fill_after_a_miss_is_stored_and_served(store: CacheStore) -> None:
    seen = await store.lookup("user:1")
    assert seen.entry is None and seen.token == b""
    assert await store.fill("user:1", entity(3), seen=seen) == "stored"
    hit = (await store.lookup("user:1")).entry
    assert hit is not None
    assert (hit.status, hit.version, hit.body) == (200, 3, b'{"id": 1, "version": 3}')
    assert dict(hit.headers) == {"Content-Type": "application/json", "ETag": '"3"'}


async def test_write_never_replaces_a_newer_version(store: CacheStore, metrics: Metrics) -> None:
    assert await store.write("user:1", entity(5)) == "stored"
    assert await store.write("user:1", entity(4)) == "older"
    assert (await store.lookup("user:1")).entry.version == 5
    assert await store.write("user:1", entity(6)) == "stored"
    assert (await store.lookup("user:1")).entry.version == 6
    assert sample(metrics, "cachegate_store_rejected_total", reason="older") == 1


async def test_fill_never_replaces_a_newer_version(store: CacheStore) -> None:
    await store.write("user:1", entity(7))
    seen = await store.lookup("user:1")  # the token matches: only the version can refuse this fill
    assert await store.fill("user:1", entity(6), seen=seen) == "older"
    assert (await store.lookup("user:1")).entry.version == 7


async def test_concurrent_writes_in_any_order_end_on_the_highest_version(store: CacheStore) -> None:
    versions = list(range(1, 41))
    random.Random(7).shuffle(versions)
    await asyncio.gather(*(store.write("trip:9", entity(v)) for v in versions))
    assert (await store.lookup("trip:9")).entry.version == 40


async def test_a_fill_that_started_before_a_write_is_refused(store: CacheStore) -> None:
    seen = await store.lookup("user:1")                      # a miss goes upstream, reads version 1 ...
    assert await store.write("user:1", entity(2)) == "stored"  # ... meanwhile a write-through lands
    assert await store.fill("user:1", entity(1), seen=seen) == "raced"
    assert (await store.lookup("user:1")).entry.version == 2


async def test_tombstone_blocks_a_late_fill(store: CacheStore, metrics: Metrics) -> None:
    await store.write("user:1", entity(5))
    slow = await store.lookup("user:1")          # a refresh starts and reads version 5 upstream ...
    await store.tombstone("user:1", 6, ttl=30)   # ... the DELETE answers with version 6
    assert await store.fill("user:1", entity(5), seen=slow) == "raced"
    after = await store.lookup("user:1")
    assert after.entry is None
    # Even a fill that looked at the tombstone itself may not bring back an older version.
    assert await store.fill("user:1", entity(5), seen=after) == "older"
    assert (await store.lookup("user:1")).entry is None
    assert sample(metrics, "cachegate_tombstones_total") == 1


async def test_a_404_may_replace_a_tombstone_which_still_fences_old_versions(store: CacheStore) -> None:
    await store.tombstone("user:1", 6, ttl=30)
    seen = await store.lookup("user:1")
    gone = entity(0, b'{"error": {"code": "not_found", "message": "no such user"}}', status=404, ttl=10,
                  grace=0)
    assert await store.fill("user:1", gone, seen=seen) == "stored"
    assert (await store.lookup("user:1")).entry.status == 404
    assert await store.write("user:1", entity(5)) == "older"  # the floor survived the 404


async def test_a_write_of_the_deleted_version_is_refused(store: CacheStore) -> None:
    await store.tombstone("user:1", 6, ttl=30)
    assert await store.write("user:1", entity(6)) == "deleted"


async def test_drop_refuses_a_fill_that_started_before_it(store: CacheStore) -> None:
    seen = await store.lookup("trip-members:7")
    await store.drop("trip-members:7", fence=30)
    assert await store.fill("trip-members:7", entity(0, b"[1, 2]"), seen=seen) == "raced"
    fresh = await store.lookup("trip-members:7")
    assert fresh.entry is None
    assert await store.fill("trip-members:7", entity(0, b"[1, 2, 3]"), seen=fresh) == "stored"


async def test_tag_fence_refuses_a_fill_started_before_an_invalidation(store: CacheStore,
                                                                       metrics: Metrics) -> None:
    seen = await store.lookup("user-search:q=ann", ["user-lists"])
    assert seen.generations == (0,)
    assert await store.invalidate_tag("user-lists") == 1
    assert await store.fill("user-search:q=ann", entity(0, b"[]"), seen=seen, tags=["user-lists"]) == "fenced"
    assert (await store.lookup("user-search:q=ann", ["user-lists"])).entry is None
    assert sample(metrics, "cachegate_store_rejected_total", reason="fenced") == 1


async def test_invalidating_a_tag_removes_the_entries_indexed_under_it(store: CacheStore) -> None:
    for key, tag in (("user-search:a", "user-lists"), ("user-login:b", "user-lists"),
                     ("path-search:c", "path-lists")):
        seen = await store.lookup(key, [tag])
        assert await store.fill(key, entity(0, key.encode()), seen=seen, tags=[tag]) == "stored"
    assert await store.purge_tag("user-lists", fence=5.0) == 2
    assert (await store.lookup("user-search:a")).entry is None
    assert (await store.lookup("user-login:b")).entry is None
    assert (await store.lookup("path-search:c")).entry.body == b"path-search:c"
    seen = await store.lookup("user-search:a", ["user-lists"])
    assert seen.generations == (1,)
    assert await store.fill("user-search:a", entity(0, b"new"), seen=seen, tags=["user-lists"]) == "stored"


async def test_purge_key_forgets_the_entry(store: CacheStore) -> None:
    await store.write("user:1", entity(5))
    assert await store.purge_key("user:1") == 1
    assert (await store.lookup("user:1")).entry is None
    assert await store.purge_key("user:1") == 0  # nothing left to remove


async def test_an_entry_of_an_older_epoch_is_a_miss_and_its_fills_are_refused(store: CacheStore,
                                                                              metrics: Metrics) -> None:
    seen = await store.lookup("user:1")
    await store.write("user:2", entity(1))
    moved = await store.new_epoch()
    assert moved > seen.epoch
    assert (await store.lookup("user:2")).entry is None
    assert await store.fill("user:1", entity(1), seen=seen) == "epoch"
    fresh = await store.lookup("user:2")
    assert fresh.epoch == moved
    assert await store.fill("user:2", entity(1), seen=fresh) == "stored"
    assert (await store.lookup("user:2")).entry.version == 1
    assert sample(metrics, "cachegate_epoch_bumps_total") == 1


async def test_a_fill_that_looked_before_another_process_moved_the_epoch_is_never_served(
        make_store, redis_client) -> None:
    """The fill compares no epoch in Redis (on a cluster the epoch is on another slot): its entry carries the
    epoch its lookup saw, and a lookup serves it only if that is the epoch it reads with it."""
    one = make_store(redis_client)
    other = make_store(redis_client, prefix=one.entry_key("").split(":e:")[0])
    seen = await one.lookup("user:1")
    await other.new_epoch()                       # another gateway process: `one` has not seen it yet
    assert await one.fill("user:1", entity(1), seen=seen) == "stored"
    assert (await one.lookup("user:1")).entry is None
    assert (await other.lookup("user:1")).entry is None
    again = await one.lookup("user:1")
    assert await one.fill("user:1", entity(2), seen=again) == "stored"
    assert (await other.lookup("user:1")).entry.version == 2


async def test_an_epoch_never_comes_back_when_its_key_is_lost(store: CacheStore, redis_admin) -> None:
    """A cluster master without a replica comes back empty: the epoch key is gone while entries of earlier
    epochs live on other masters. Counting from 1 again would revive them; the next epoch is Redis's clock."""
    seen = await store.lookup("user:1")
    await store.new_epoch()
    first = await store.lookup("user:1")
    assert await store.fill("user:1", entity(1), seen=first) == "stored"
    await redis_admin.delete(store.entry_key("").split(":e:")[0] + ":epoch")
    assert (await store.lookup("user:1")).entry is None   # epoch 0 now: not the entry's
    for _ in range(3):
        assert await store.new_epoch() > first.epoch > seen.epoch
        assert (await store.lookup("user:1")).entry is None


async def test_a_tag_index_forgets_entries_that_expired(store: CacheStore,
                                                        redis_admin: aioredis.Redis) -> None:
    """Many distinct search keys under one busy tag must not pile up in its index."""
    for n in range(5):
        seen = await store.lookup(f"user-search:{n}", ["user-lists"])
        short = entity(0, b"[]", ttl=0.05, grace=0.0)
        await store.fill(f"user-search:{n}", short, seen=seen, tags=["user-lists"])
    index = store.index_key("user-lists")
    assert await redis_admin.zcard(index) >= 1  # (earlier ones may have expired and been trimmed already)
    deadline = time.monotonic() + 5
    while (await store.lookup("user-search:4")).token and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    seen = await store.lookup("user-search:new", ["user-lists"])
    await store.fill("user-search:new", entity(0, b"[]"), seen=seen, tags=["user-lists"])
    assert await redis_admin.zrange(index, 0, -1) == [store.entry_key("user-search:new").encode()]
