"""Write fences on a real Redis: a key being written is a miss that refuses fills till its writes end."""
from __future__ import annotations

import asyncio
import random

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot

from proxy.metrics import Metrics
from proxy.records import DROPPED, TOMBSTONE, WRITING, new_writer
from proxy.store import OPEN, CacheStore
from tests.support.records import fence_of, redis_ms, wait_for_redis_time
from tests.support.stores import entity, sample

LONG = 60.0    # a fence that outlasts the test: the write settles it
LINGER = 30.0  # how long a fence record outlives its last deadline


async def fence(store: CacheStore, *keys: str, tags: tuple[str, ...] = (), lifetime: float = LONG) -> bytes:
    writer = new_writer()
    await store.fence(writer, keys, tags, lifetime=lifetime, linger=LINGER)
    return writer


async def record(store: CacheStore, client: aioredis.Redis, key: str) -> tuple[int, int, list]:
    return fence_of(await client.get(store.entry_key(key)))


async def test_a_fenced_key_is_a_miss_that_refuses_fills_from_before_and_during_the_write(
        store: CacheStore, metrics: Metrics) -> None:
    await store.write("user:1", entity(1))
    before = await store.lookup("user:1")                   # a refresh is about to read version 1 ...
    writer = await fence(store, "user:1")                   # ... when a write is fenced and goes upstream
    during = await store.lookup("user:1")
    assert (during.entry, during.fenced) == (None, True)    # never the old entry, not even as stale
    assert await store.fill("user:1", entity(1), seen=before) == "raced"
    # It may have read the row before the commit: refused, and the lookup says to reopen first.
    assert await store.fill("user:1", entity(1), seen=during) == "fenced"
    assert (await store.reopen("user:1", during))[0] == "fenced"
    assert await store.write("user:1", entity(2), writer=writer) == "stored"
    hit = await store.lookup("user:1")
    assert (hit.entry.version, hit.fenced) == (2, False)
    assert sample(metrics, "cachegate_store_rejected_total", reason="fenced") == 2


async def test_a_fence_expires_after_its_lifetime_and_the_key_then_fills(
        store: CacheStore, redis_client: aioredis.Redis) -> None:
    """A gateway died after the commit: the fence ends by itself, and even then no fill that looked during it
    is stored; the first read after it reopens the key and fills from the database."""
    await store.write("user:1", entity(1))
    lifetime = 1.0
    started = await redis_ms(redis_client)
    writer = await fence(store, "user:1", lifetime=lifetime)
    fenced_at = await redis_ms(redis_client)
    during = await store.lookup("user:1")
    kind, floor, writers = await record(store, redis_client, "user:1")
    assert (kind, floor, [w for w, _ in writers]) == (WRITING, 1, [writer])
    deadline = writers[0][1]
    assert started + 1000 <= deadline <= fenced_at + 1000  # the bound: the lifetime, from Redis's clock
    assert await redis_client.pttl(store.entry_key("user:1")) <= 1000 + LINGER * 1000
    assert await redis_ms(redis_client) < deadline          # (so `during` did look while it was live)
    await wait_for_redis_time(redis_client, deadline)
    assert (await store.lookup("user:1")).fenced            # still no entry, and a fence to reopen
    assert await store.fill("user:1", entity(1), seen=during) == "fenced"
    outcome, reopened = await store.reopen("user:1", during)
    assert outcome == OPEN and not reopened.fenced
    assert (await record(store, redis_client, "user:1"))[:2] == (DROPPED, 1)  # a plain miss, floor kept
    assert await store.fill("user:1", entity(2), seen=reopened) == "stored"
    assert (await store.lookup("user:1")).entry.version == 2


async def test_one_write_settling_leaves_the_key_fenced_while_another_is_in_flight(
        store: CacheStore, redis_client: aioredis.Redis) -> None:
    await store.write("user:1", entity(1))
    first, second = await fence(store, "user:1"), await fence(store, "user:1")
    # The first answers version 2; the second may have committed before it, or may commit after and die.
    assert await store.write("user:1", entity(2), writer=first) == "fenced"
    assert (await store.lookup("user:1")).entry is None
    kind, floor, writers = await record(store, redis_client, "user:1")
    assert (kind, floor, [w for w, _ in writers]) == (WRITING, 2, [second])
    assert await store.write("user:1", entity(3), writer=second) == "stored"
    assert (await store.lookup("user:1")).entry.version == 3


async def test_the_last_write_to_settle_with_an_older_version_leaves_a_miss_that_keeps_the_floor(
        store: CacheStore, redis_client: aioredis.Redis) -> None:
    first, second = await fence(store, "user:1"), await fence(store, "user:1")
    assert await store.write("user:1", entity(3), writer=first) == "fenced"
    assert await store.write("user:1", entity(2), writer=second) == "older"  # committed before the first
    assert (await record(store, redis_client, "user:1"))[:2] == (DROPPED, 3)
    seen = await store.lookup("user:1")
    assert (seen.entry, seen.fenced) == (None, False)
    assert await store.fill("user:1", entity(2), seen=seen) == "older"
    assert await store.fill("user:1", entity(3), seen=seen) == "stored"


async def test_a_write_that_dies_keeps_the_key_fenced_until_its_own_deadline(
        store: CacheStore, redis_client: aioredis.Redis) -> None:
    survivor = await fence(store, "user:1")
    await fence(store, "user:1", lifetime=1.0)   # its gateway dies after the commit
    assert await store.write("user:1", entity(2), writer=survivor) == "fenced"
    _, _, writers = await record(store, redis_client, "user:1")
    await wait_for_redis_time(redis_client, writers[0][1])
    seen = await store.lookup("user:1")
    assert seen.entry is None
    outcome, reopened = await store.reopen("user:1", seen)
    assert outcome == OPEN
    assert await store.fill("user:1", entity(3), seen=reopened) == "stored"


async def test_a_refused_write_ends_its_fence_without_a_block(store: CacheStore,
                                                              redis_client: aioredis.Redis) -> None:
    await store.write("user:1", entity(4))
    writer = await fence(store, "user:1")
    assert await store.drop("user:1", fence=LINGER, writer=writer) == "stored"
    assert (await record(store, redis_client, "user:1"))[:2] == (DROPPED, 4)
    seen = await store.lookup("user:1")
    assert not seen.fenced
    assert await store.fill("user:1", entity(4), seen=seen) == "stored"


async def test_an_unknown_outcome_holds_the_fence_to_its_deadline(store: CacheStore,
                                                                 redis_client: aioredis.Redis) -> None:
    writer = await fence(store, "user:1")
    assert await store.drop("user:1", fence=LINGER, writer=writer, hold=True) == "fenced"
    kind, _, writers = await record(store, redis_client, "user:1")
    assert (kind, [w for w, _ in writers]) == (WRITING, [writer])
    seen = await store.lookup("user:1")
    assert (await store.reopen("user:1", seen))[0] == "fenced"


async def test_a_purge_or_a_delete_during_a_write_keeps_the_fence(store: CacheStore,
                                                                 redis_client: aioredis.Redis) -> None:
    writer, deleter = await fence(store, "user:1"), await fence(store, "user:1")
    await store.purge_key("user:1")
    assert (await record(store, redis_client, "user:1"))[0] == WRITING
    assert await store.tombstone("user:1", 5, ttl=LINGER, writer=deleter) == "fenced"
    assert (await record(store, redis_client, "user:1"))[:2] == (WRITING, 5)
    assert await store.write("user:1", entity(4), writer=writer) == "older"   # the delete came after it
    assert (await record(store, redis_client, "user:1"))[:2] == (DROPPED, 5)


async def test_a_delete_settling_alone_leaves_its_tombstone(store: CacheStore,
                                                            redis_client: aioredis.Redis) -> None:
    deleter = await fence(store, "user:1")
    assert await store.tombstone("user:1", 5, ttl=LINGER, writer=deleter) == "stored"
    assert (await record(store, redis_client, "user:1"))[:2] == (TOMBSTONE, 5)
    assert await store.write("user:1", entity(5)) == "deleted"


async def test_a_write_fences_the_tags_it_invalidates(store: CacheStore, metrics: Metrics) -> None:
    key, tags = "user-search:q=ann", ["user-lists"]
    seen = await store.lookup(key, tags)
    assert await store.fill(key, entity(0, b"[1]"), seen=seen, tags=tags) == "stored"
    writer = await fence(store, tags=("user-lists",))
    assert (await store.lookup(key, tags)).entry is None     # the old list is gone before the write goes
    during = await store.lookup(key, tags)                   # reads the list while the write is in flight
    assert await store.fill(key, entity(0, b"[1]"), seen=during, tags=tags) == "fenced"
    await store.invalidate_tag("user-lists", writer=writer, linger=LINGER)  # the write answered
    assert await store.fill(key, entity(0, b"[1]"), seen=during, tags=tags) == "fenced"  # the bump again
    after = await store.lookup(key, tags)
    assert await store.fill(key, entity(0, b"[1, 2]"), seen=after, tags=tags) == "stored"
    assert (await store.lookup(key, tags)).entry.body == b"[1, 2]"


async def test_a_tag_write_that_dies_counts_as_its_invalidation_when_it_expires(
        store: CacheStore, redis_client: aioredis.Redis) -> None:
    key, tags = "user-search:q=bo", ["user-lists"]
    await fence(store, tags=("user-lists",), lifetime=1.0)
    deadline = max(int(s) for _, s in await redis_client.zrange(store.writers_key("user-lists"), 0, -1,
                                                                 withscores=True))
    during = await store.lookup(key, tags)
    await wait_for_redis_time(redis_client, deadline)
    # The writes's gateway died after its commit: the fill that looked during it is still refused ...
    assert await store.fill(key, entity(0, b"[old]"), seen=during, tags=tags) == "fenced"
    after = await store.lookup(key, tags)
    assert after.generations[0] > during.generations[0]
    # ... and the next one fills.
    assert await store.fill(key, entity(0, b"[new]"), seen=after, tags=tags) == "stored"


async def test_fences_are_kept_in_each_keys_and_tags_own_keys(store: CacheStore,
                                                              redis_admin: aioredis.Redis) -> None:
    """Ready for Redis Cluster: no global key is written by a fence (not even the epoch), and each key's or
    tag's keys share one hash tag, so each script touches one slot."""
    await fence(store, "trip:1", "trip-members:1", tags=("trip-lists",))
    prefix = store.entry_key("").removesuffix(":e:{}")
    names = sorted([k.decode() async for k in redis_admin.scan_iter(match=f"{prefix}:*")])
    assert names == sorted([f"{prefix}:e:{{trip:1}}", f"{prefix}:e:{{trip-members:1}}",
                            f"{prefix}:g:{{trip-lists}}", f"{prefix}:w:{{trip-lists}}"])
    assert key_slot(store.generation_key("trip-lists").encode()) == key_slot(b"trip-lists")
    assert key_slot(store.entry_key("trip:1").encode()) == key_slot(b"trip:1")


@pytest.mark.parametrize("fenced", [True, False], ids=["fenced", "unfenced-control"])
async def test_concurrent_writes_and_reads_never_serve_a_version_older_than_a_commit(
        store: CacheStore, fenced: bool) -> None:
    """Real concurrency on one key: writers fence, "commit" (a version from a shared counter), and settle
    after random delays, and some die after their commit; readers look, reopen and fill what they read.
    No lookup may return an entry older than a commit made before it was sent. The unfenced control run
    (writes as before this fence existed) must break that rule, or the check proves nothing."""
    rng = random.Random(7)
    key, committed = "user:1", 1
    await store.write(key, entity(1))
    violations: list[tuple[int, int]] = []
    outcomes: list[str] = []
    done = asyncio.Event()

    async def write(n: int) -> None:
        nonlocal committed
        await asyncio.sleep(rng.random() * 0.2)
        writer = new_writer()
        if fenced:
            await store.fence(writer, [key], [], lifetime=2.0 if n % 5 == 0 else LONG, linger=LINGER)
        await asyncio.sleep(rng.random() * 0.01)
        committed += 1
        version = committed
        await asyncio.sleep(rng.random() * 0.01)
        if n % 5 != 0:  # every fifth one's gateway dies here
            outcomes.append(await store.write(key, entity(version), writer=writer if fenced else b""))

    async def read() -> None:
        while not done.is_set():
            before = committed
            seen = await store.lookup(key)
            if seen.entry is not None:
                if seen.entry.version < before:
                    violations.append((seen.entry.version, before))
                continue
            if seen.fenced:
                outcome, seen = await store.reopen(key, seen)
                if outcome != OPEN:
                    outcomes.append(f"reopen-{outcome}")
                    continue
            read_version = committed            # the database, read after the lookup (and the reopen)
            await asyncio.sleep(rng.random() * 0.005)
            outcomes.append(await store.fill(key, entity(read_version), seen=seen))

    readers = [asyncio.create_task(read()) for _ in range(4)]
    await asyncio.gather(*(write(n) for n in range(40)))
    done.set()
    await asyncio.gather(*readers)
    if not fenced:
        assert violations, "the check never caught the unfenced writes: it would not catch a broken fence"
        return
    assert violations == []
    assert "fenced" in outcomes and "reopen-fenced" in outcomes  # the interesting paths were taken
    # Once the dead writers' fences have expired, the key fills with the last commit.
    deadline = asyncio.get_running_loop().time() + 10
    while True:
        seen = await store.lookup(key)
        if seen.entry is not None:
            assert seen.entry.version == committed
            break
        if seen.fenced:
            outcome, seen = await store.reopen(key, seen)
            if outcome != OPEN:
                assert asyncio.get_running_loop().time() < deadline, "the fence did not expire"
                await asyncio.sleep(0.05)
                continue
        await store.fill(key, entity(committed), seen=seen)
