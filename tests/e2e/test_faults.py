"""Redis down, paused or back: the cache never causes an error, nor serves what a missed write changed."""
from __future__ import annotations

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.fault]


def version(resp) -> int:
    return int(resp.headers["ETag"].strip('"'))


@pytest.fixture
async def own_redis_world(make_world, redis_factory):
    redis = redis_factory()
    world = await make_world({"redis": {"url": redis.url, "timeout": "50ms",
                                        "breaker": {"failures": 2, "reset": "200ms"}}})
    return world, redis


async def test_redis_killed_means_bypass_not_5xx(own_redis_world):
    world, redis = own_redis_world
    uid, auth = await world.user("kim")
    assert (await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})).status == 200
    redis.kill()
    for _ in range(6):
        resp = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
        assert resp.status == 200
        assert "detail=CACHE-UNAVAILABLE" in resp.headers["Cache-Status"]
    patched = await world.proxy.patch(f"/users/{uid}", json={"title": "while-down"},
                                      headers={"Authorization": auth})
    assert patched.status == 200
    redis.start()
    # the breaker probes again after its reset; the answer is right whichever way the request goes
    for _ in range(20):
        resp = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
        assert resp.status == 200 and (await resp.json())["title"] == "while-down"


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
