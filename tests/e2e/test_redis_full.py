"""A full Redis through the whole request path: reads over ever new keys, and what Redis holds keeps hitting.

Regression (issue 9 part 3): Redis had no memory limit; with one and noeviction, the refused fills opened
the breaker and every request bypassed the cache (CACHE-UNAVAILABLE), the hit ratio at 0.6 %.
"""
from __future__ import annotations

from collections import Counter

import pytest

from tests.support.redisclients import admin_client

pytestmark = [pytest.mark.slow, pytest.mark.fault]


async def read_many(world, auth: str, uid: int, first: int, count: int) -> Counter[str]:
    """Searches nobody repeats (each a new entry), and reads of one user between them: Cache-Status seen."""
    seen: Counter[str] = Counter()
    for i in range(first, first + count):
        for path in (f"/users/search?last_name=Tes&first_name=q{i:05d}", f"/users/{uid}"):
            resp = await world.proxy.get(path, headers={"Authorization": auth})
            assert resp.status == 200, await resp.text()
            seen[resp.headers["Cache-Status"].split("; ttl=")[0]] += 1
    return seen


@pytest.mark.parametrize("policy", ["volatile-lru", "noeviction"])
async def test_a_full_redis_is_not_taken_for_a_failed_one(make_world, redis_factory, policy):
    redis = redis_factory()
    world = await make_world({"redis": {"url": redis.url}})
    uid, auth = await world.user(f"full{policy[:4]}")
    admin = admin_client(redis)
    try:
        await admin.config_set("maxmemory-policy", policy)
        await read_many(world, auth, uid, 0, 300)  # entries that an evicting Redis may take
        used = int((await admin.info("memory"))["used_memory"])
        # Full from the next write on. Under noeviction, well below what is used: memory that Redis frees by
        # itself meanwhile (an expired entry, a client's buffer) must not let fills through again.
        await admin.config_set("maxmemory", str(used if policy == "volatile-lru" else used // 2))
        seen = await read_many(world, auth, uid, 300, 300)
        stats = await admin.info("stats")
    finally:
        await admin.aclose()
    assert not [status for status in seen if "CACHE-UNAVAILABLE" in status], seen
    assert seen["cachegate; hit"] >= 290, seen  # the user read between the searches keeps hitting
    state = await (await world.admin.get("/-/admin/state")).json()
    assert state["breaker"] == "closed", state
    if policy == "volatile-lru":
        assert int(stats["evicted_keys"]) > 0 and seen["cachegate; fwd=miss; fwd-status=200; stored"] >= 250
    else:
        assert seen["cachegate; fwd=miss; fwd-status=200; detail=full"] >= 250, seen
