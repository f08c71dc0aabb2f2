"""The store's `inspect` (what `explain` shows) on a real Redis: the record, its time left, the epoch, the
generations of the tags asked for, and Redis's clock in milliseconds."""
from __future__ import annotations

import time

import redis.asyncio as aioredis

from proxy.records import make_entry
from proxy.store import CacheStore
from tests.support.stores import entity


async def _redis_ms(redis_admin: aioredis.Redis) -> int:
    seconds, micros = await redis_admin.time()
    return seconds * 1000 + micros // 1000


async def test_inspect_reads_the_record_its_time_left_and_the_tags_generations(
        store: CacheStore, redis_admin: aioredis.Redis) -> None:
    assert await store.write("user:1", entity(3, ttl=60, grace=300)) == "stored"
    await store.invalidate_tag("user-lists")
    # Redis keeps the record until its grace ends (360 s): inspect reports what PTTL says, in seconds.
    most = await redis_admin.pttl(store.entry_key("user:1"))
    seen = await store.inspect("user:1", ("user-lists", "never-touched"))
    least = await redis_admin.pttl(store.entry_key("user:1"))
    assert seen.record is not None and seen.record.kind == "entry" and seen.record.entry.version == 3
    assert seen.expires_in is not None and least / 1000 <= seen.expires_in <= most / 1000 <= 360
    assert seen.generations == (1, 0)


async def test_inspect_reports_the_current_epoch(store: CacheStore) -> None:
    assert (await store.inspect("user:1")).epoch == 0  # no epoch moved yet in this namespace
    # The first move goes to Redis's clock in ms (a lost epoch key never brings old entries back), the
    # next ones count up by one.
    first = await store.new_epoch()
    redis_ms = (await store.inspect("user:1")).redis_ms
    assert (await store.inspect("user:1")).epoch == first and 0 < first <= redis_ms
    await store.new_epoch()
    assert (await store.inspect("user:1")).epoch == first + 1


async def test_inspect_of_an_empty_key_has_no_record_and_no_time_left(store: CacheStore) -> None:
    seen = await store.inspect("user:404")
    assert seen.record is None and seen.expires_in is None and seen.generations == ()


async def test_inspect_reads_the_clock_of_redis_in_milliseconds(store: CacheStore,
                                                              redis_admin: aioredis.Redis) -> None:
    # Fence deadlines are in Redis's clock: the one inspect reports lies between two readings around it.
    for _ in range(3):
        before = await _redis_ms(redis_admin)
        seen = await store.inspect("user:1")
        after = await _redis_ms(redis_admin)
        assert before <= seen.redis_ms <= after


async def test_inspect_reads_an_entrys_tags_and_a_fences_writers(store: CacheStore) -> None:
    tagged = make_entry(200, [], b"[]", version=0, now=time.time(), ttl=60, grace=0,
                        tags=("user-lists", "path-lists"))
    assert await store.write("user-search:q", tagged, tags=tagged.tags) == "stored"
    entry = (await store.inspect("user-search:q")).record.entry
    assert entry is not None and entry.tags == ("user-lists", "path-lists") and entry.body == b"[]"
    # Three writes in flight: a fence record as long as an entry's prefix and meta, read as a fence still.
    writers = [b"writer-a", b"writer-b", b"writer-c"]
    for writer in writers:
        await store.fence(writer, ["user:1"], [], lifetime=5.0, linger=1.0)
    seen = await store.inspect("user:1")
    assert seen.record.kind == "fence" and seen.record.entry is None
    assert sorted(writer for writer, _ in seen.record.writers) == writers
    # Each deadline is in Redis's clock: about `lifetime` after now.
    assert all(seen.redis_ms < deadline <= seen.redis_ms + 5000 for _, deadline in seen.record.writers)
