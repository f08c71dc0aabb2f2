"""The gateway's Redis Cluster client (proxy/clusterclient.py) against the session's real cluster."""
from __future__ import annotations

import asyncio

from proxy.clusterclient import PIPELINE_ROOM, make_cluster_client
from proxy.metrics import Metrics
from proxy.store import CacheStore


async def test_a_burst_past_the_pool_waits_for_a_connection_instead_of_failing(redis_cluster):
    """redis-py's cluster pool of a node raises past max_connections; a single Redis's blocking pool waits.
    The store's batches (retire_many, purges, tag drops) send up to 48 calls at once and the invalidator's
    pool is smaller: every call must still land, never as a missed write."""
    users = redis_cluster.users
    client = make_cluster_client(redis_cluster.startup_nodes, timeout=5.0, username=users.gateway_user,
                                 password=users.gateway_password, max_connections=PIPELINE_ROOM + 2)
    await client.initialize()
    try:
        # Every key on one slot: its node alone gets the whole burst.
        found = await asyncio.gather(*(client.set(f"burst:{{one}}:{i}", i) for i in range(200)))
        assert found == [True] * 200
        store = CacheStore(client, prefix="burst", timeout=5.0, breaker_failures=100, breaker_reset=1.0,
                           metrics=Metrics(), retries_writes=True)
        outcomes = await store.retire_many([(f"user:{i}", 3, False) for i in range(300)], ttl=5.0)
        assert outcomes == ["absent"] * 300
    finally:
        await client.aclose()


async def test_concurrent_pipelines_past_the_pool_wait_too(redis_cluster):
    """The invalidator sends many batches at once (each a cluster pipeline: one connection per node)."""
    users = redis_cluster.users
    client = make_cluster_client(redis_cluster.startup_nodes, timeout=5.0, username=users.gateway_user,
                                 password=users.gateway_password, max_connections=PIPELINE_ROOM + 2)
    await client.initialize()
    try:
        store = CacheStore(client, prefix="burst2", timeout=5.0, breaker_failures=100, breaker_reset=1.0,
                           metrics=Metrics(), retries_writes=True)
        found = await asyncio.gather(*(store.retire_many([(f"user:{b}:{i}", 3, False) for i in range(20)],
                                                         ttl=5.0) for b in range(40)))
        assert found == [["absent"] * 20] * 40
    finally:
        await client.aclose()
