"""Redis down, paused or back: the cache never causes an error, nor serves what a missed write changed."""
from __future__ import annotations

import pytest

from tests.support.keptredis import current_entry_version, kill_keeping_data
from tests.support.polling import poll

pytestmark = [pytest.mark.slow, pytest.mark.fault]


def version(resp) -> int:
    return int(resp.headers["ETag"].strip('"'))


def over(redis, **overrides) -> dict:
    return {"redis": {"url": redis.url, "timeout": "50ms", "breaker": {"failures": 2, "reset": "200ms"}},
            **overrides}


@pytest.fixture
async def own_redis_world(make_world, redis_factory):
    redis = redis_factory()
    return await make_world(over(redis)), redis


async def test_redis_killed_means_bypass_not_5xx(make_world, redis_factory):
    """Redis is SIGKILLed and started again with its data: the entry from before a write it missed is back
    in it, in the epoch it was stored in, and must never be served."""
    redis = redis_factory()
    # No readiness probe in between: the test's own reads are the first calls to reach Redis again.
    world = await make_world(over(redis, proxy={"readiness_interval": "1h"}))
    uid, auth = await world.user("kim")
    first = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    assert first.status == 200 and (await first.json())["title"] == "traveller"
    hit = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    assert hit.headers["Cache-Status"].startswith("cachegate; hit")
    await kill_keeping_data(redis)
    for _ in range(6):
        resp = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
        assert resp.status == 200
        assert "detail=CACHE-UNAVAILABLE" in resp.headers["Cache-Status"]
    patched = await world.proxy.patch(f"/users/{uid}", json={"title": "while-down"},
                                      headers={"Authorization": auth})
    assert patched.status == 200 and version(patched) == version(first) + 1
    redis.start()
    # The old entry is there and current: only the epoch move the missed write owes keeps it from a client.
    assert await current_entry_version(redis, world.config.cache.prefix, f"user:{uid}") == version(first)

    async def cached_again() -> bool:
        # the breaker probes again after its reset; every answer on the way is the write's, hit or not
        resp = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["title"] == "while-down", resp.headers["Cache-Status"]
        return resp.headers["Cache-Status"].startswith("cachegate; hit")

    assert await poll(cached_again, 15), "the cache was never in use again after Redis came back"
    assert await current_entry_version(redis, world.config.cache.prefix, f"user:{uid}") == version(patched)


async def test_redis_paused_means_bypass_not_5xx(own_redis_world):
    world, redis = own_redis_world
    uid, auth = await world.user("lee")
    await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    redis.pause()
    try:
        for _ in range(6):
            resp = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
            assert resp.status == 200
            assert "detail=CACHE-UNAVAILABLE" in resp.headers["Cache-Status"]
    finally:
        redis.resume()


async def test_writes_missed_while_redis_was_unreachable_leave_no_stale_entry(own_redis_world):
    """Redis keeps its data through a pause, so the old entry is still there when it answers again."""
    world, redis = own_redis_world
    uid, auth = await world.user("max")
    first = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    hit = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    assert hit.headers["Cache-Status"].startswith("cachegate; hit")
    redis.pause()
    try:
        patched = await world.proxy.patch(f"/users/{uid}", json={"title": "missed"},
                                          headers={"Authorization": auth})
        assert patched.status == 200 and version(patched) == version(first) + 1
    finally:
        redis.resume()
    for _ in range(30):  # through the breaker's open, half-open and closed states
        resp = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
        assert resp.status == 200
        assert version(resp) == version(patched), resp.headers["Cache-Status"]
