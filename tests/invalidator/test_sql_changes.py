"""Writes made around the gateway, straight in SQL, reach the cache through the invalidator (real processes).

The bound stated for them: the gateway stops serving a changed row within invalidator.lag_bound +
invalidator.check_interval of its commit, whatever the invalidator does (past that the routes bypass the
cache); what the invalidator itself takes is measured here and printed (milliseconds on loopback)."""
from __future__ import annotations

import time

import aiohttp
import pytest

from proxy.metrics import Metrics
from proxy.store import CacheStore
from tests.support.configs import deep_merge, on_cluster
from tests.support.invalidatorproc import sql, store_for
from tests.support.polling import poll
from tests.support.redisclients import cluster_gateway_client

pytestmark = [pytest.mark.slow]
ON = {"invalidator": {"enabled": True}}


def bound(config) -> float:
    return config.invalidator.lag_bound + config.invalidator.check_interval


async def _get(http: aiohttp.ClientSession, stack, path: str) -> tuple[int, dict, str]:
    async with http.get(stack.base + path, headers={"Authorization": stack.authorization}) as resp:
        body = await resp.json()
        return resp.status, body, resp.headers.get("Cache-Status", "")


async def _cached(http, stack, path: str) -> dict:
    """GET until the answer is a hit (the entry is in the cache); returns its body."""
    found: dict = {}

    async def hit() -> bool:
        status, body, cache = await _get(http, stack, path)
        found.update(body)
        return status == 200 and "hit" in cache and "fwd=" not in cache
    assert await poll(hit, 10), found
    return found


async def _store_of(request, topology: str, config) -> CacheStore:
    if topology == "single":
        return store_for(config, request.getfixturevalue("redis_server"))
    client = await cluster_gateway_client(request.getfixturevalue("redis_cluster"))
    return CacheStore(client, prefix=config.cache.prefix, timeout=2.0, breaker_failures=100,
                      breaker_reset=0.1, metrics=Metrics())


@pytest.mark.parametrize("topology", ["single", "cluster"])
async def test_sql_update_and_delete_stop_being_served(real_stack, invalidator_process, request, topology):
    """On a single Redis and on a Redis Cluster (the invalidator's actions, note and position on it too)."""
    overrides = ON if topology == "single" else deep_merge(on_cluster(request.getfixturevalue("redis_cluster")),
                                                            ON)
    stack = await real_stack(overrides, users=20)
    invalidator = invalidator_process(stack.config)
    await invalidator.start()
    user = stack.ids[5]
    path = f"/users/{user}"
    async with aiohttp.ClientSession() as http:
        before = await _cached(http, stack, path)
        committed = time.monotonic()
        assert sql(stack.config, "UPDATE users SET first_name = %s, version = version + 1 WHERE id = %s",
                   ("Renamed", user)) == 1
        seen: dict = {}

        async def renamed() -> bool:
            status, body, _ = await _get(http, stack, path)
            seen.update(body)
            return status == 200 and body["first_name"] == "Renamed"
        assert await poll(renamed, bound(stack.config), interval=0.005), seen
        took = time.monotonic() - committed
        assert seen["version"] == before["version"] + 1
        # What the invalidator left: a drop marker at the new version, so no older fill can land.
        store = await _store_of(request, topology, stack.config)
        print(f"\nSQL UPDATE no longer served after {took * 1000:.1f} ms (bound {bound(stack.config):g} s)")

        committed = time.monotonic()
        assert sql(stack.config, "DELETE FROM users WHERE id = %s", (user,)) == 1

        async def gone() -> bool:
            status, _, _ = await _get(http, stack, path)
            return status == 404
        assert await poll(gone, bound(stack.config), interval=0.005)
        print(f"SQL DELETE no longer served after {(time.monotonic() - committed) * 1000:.1f} ms")
        found = await store.inspect(f"user:{user}")
        assert found.record is not None and found.record.floor >= before["version"] + 2
        await store._redis.aclose()
    text = await invalidator.metrics()
    assert 'cachegate_invalidator_events_total{kind="update",table="users"} 1.0' in text
    assert 'cachegate_invalidator_events_total{kind="delete",table="users"} 1.0' in text
