"""Redis killed and restarted (with its data, so an old entry could be served): one outage, one epoch move.

Regression (issue 9 part 4): after a restart the gateway cleared the whole cache nine times in four seconds:
each pooled connection from before the restart failed once, and each failure counted as a missed write.
"""
from __future__ import annotations

import asyncio
import time

import pytest

from proxy.appkeys import METRICS
from tests.support.keptredis import current_entry_version, kill_keeping_data
from tests.support.polling import poll
from tests.support.redisclients import admin_client

pytestmark = [pytest.mark.slow, pytest.mark.fault]
USERS = 12


def version(resp) -> int:
    return int(resp.headers["ETag"].strip('"'))


async def test_a_redis_restart_moves_the_epoch_once_and_serves_nothing_stale(make_world, redis_factory):
    redis = redis_factory()  # killed with its data kept (tests/support/keptredis.py)
    # No readiness probe: the test's own calls are the first to reach Redis again after the restart.
    world = await make_world({"redis": {"url": redis.url, "timeout": "1s",
                                        "breaker": {"failures": 2, "reset": "200ms"}},
                              "proxy": {"readiness_interval": "1h"}})
    people = [await world.user(f"restart{i}") for i in range(USERS)]

    async def everyone(method: str) -> list:
        calls = []
        for i, (uid, auth) in enumerate(people):
            if method == "PATCH":
                calls.append(world.proxy.patch(f"/users/{uid}", json={"title": f"t{time.monotonic_ns()}"},
                                               headers={"Authorization": auth}))
            else:
                calls.append(world.proxy.get(f"/users/{uid}", headers={"Authorization": auth}))
        return await asyncio.gather(*calls)

    # Concurrent writes and reads: the store's pool holds a few dozen connections to this Redis.
    for method in ("GET", "PATCH", "GET", "GET"):
        assert {r.status for r in await everyone(method)} == {200}
    victim_id, victim_auth = people[0]
    before = await world.proxy.get(f"/users/{victim_id}", headers={"Authorization": victim_auth})
    assert before.headers["Cache-Status"].startswith("cachegate; hit")
    observer = admin_client(redis)
    epoch_key = f"{world.config.cache.prefix}:epoch"
    try:
        epoch = int(await observer.get(epoch_key) or 0)
    finally:
        await observer.aclose()
    metrics = world.app[METRICS].registry
    moves = metrics.get_sample_value("cachegate_epoch_bumps_total") or 0.0

    await kill_keeping_data(redis)
    patched = await world.proxy.patch(f"/users/{victim_id}", json={"title": "while-down"},
                                      headers={"Authorization": victim_auth})
    assert patched.status == 200 and version(patched) == version(before) + 1  # a write Redis never saw
    redis.start()  # with its data: the victim's old entry is back in it, in the current epoch
    prefix = world.config.cache.prefix
    assert await current_entry_version(redis, prefix, f"user:{victim_id}") == version(before)

    async def hits_again() -> bool:
        resp = await world.proxy.get(f"/users/{people[1][0]}", headers={"Authorization": people[1][1]})
        return resp.headers["Cache-Status"].startswith("cachegate; hit")

    assert await poll(hits_again, 30), "the cache was never in use again"  # a hang guard, not a speed
    after = await world.proxy.get(f"/users/{victim_id}", headers={"Authorization": victim_auth})
    assert version(after) == version(patched)  # not the entry Redis kept from before the write
    for method in ("PATCH", "GET", "PATCH", "GET"):  # every pooled connection from before gets used
        replies = await everyone(method)
        assert {r.status for r in replies} == {200}
    for (uid, auth), last in zip(people, replies):
        now = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
        assert version(now) == version(last)
    observer = admin_client(redis)
    try:
        # One move: the next number (or Redis's clock, when the key had never been set: proxy/lua/epoch.lua).
        assert int(await observer.get(epoch_key) or 0) == epoch + 1 or epoch == 0
    finally:
        await observer.aclose()
    assert (metrics.get_sample_value("cachegate_epoch_bumps_total") or 0.0) == moves + 1
