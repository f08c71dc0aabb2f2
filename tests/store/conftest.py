"""Fixtures of the store tests: Redis clients on the real test servers, stores with a prefix of their own.

`redis_client` (and with it `store` and `make_store`) is parametrized: every test that uses it runs against
the session's single Redis and against the session's Redis Cluster (3 masters, 3 replicas), the latter
with the proxy's own cluster client and its per-node lookups.
"""
from __future__ import annotations

import uuid
from typing import AsyncIterator

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as ClusterClient

from proxy.clusterclient import ClusterLookups
from proxy.metrics import Metrics
from proxy.store import CacheStore
from tests.support.redisclients import admin_client, cluster_admin_client, cluster_gateway_client
from tests.support.stores import StoreFactory, client_for


@pytest.fixture(params=["single", "cluster"])
def topology(request: pytest.FixtureRequest) -> str:
    """Which the test's store runs on. A test on a private Redis of its own (redis_factory), or marked
    single_redis, runs once: the cluster run would test the same server again."""
    if request.param == "cluster" and ("redis_factory" in request.fixturenames
                                       or request.node.get_closest_marker("single_redis")):
        pytest.skip("runs on a single Redis only")
    return request.param


@pytest.fixture
async def redis_client(request: pytest.FixtureRequest, topology: str) -> AsyncIterator[aioredis.Redis]:
    """The session Redis (or Redis Cluster) as the gateway's user: the client the stores under test use."""
    if topology == "single":
        client = client_for(request.getfixturevalue("redis_server"))
    else:
        client = await cluster_gateway_client(request.getfixturevalue("redis_cluster"))
    yield client
    await client.aclose()


@pytest.fixture
async def redis_admin(request: pytest.FixtureRequest, topology: str) -> AsyncIterator[aioredis.Redis]:
    """The session Redis (or cluster) as its admin: for looking at what a store did, and cleaning up."""
    if topology == "single":
        client = admin_client(request.getfixturevalue("redis_server"))
    else:
        client = cluster_admin_client(request.getfixturevalue("redis_cluster"))
    yield client
    await client.aclose()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def make_store(metrics: Metrics, redis_client: aioredis.Redis,
                     redis_admin: aioredis.Redis) -> AsyncIterator[StoreFactory]:
    """Stores with a prefix of their own; their keys on the shared Redis are deleted afterwards. A store on
    the cluster does its lookups as the proxy's does (ClusterLookups, one pipelined connection per node)."""
    made: list[str] = []
    lookups: list[ClusterLookups] = []

    def make(client: aioredis.Redis, *, timeout: float = 1.0, failures: int = 3, reset: float = 0.3,
             prefix: str | None = None) -> CacheStore:
        prefix = prefix or f"s{uuid.uuid4().hex[:12]}"
        if client is redis_client:
            made.append(prefix)
        found = None
        if isinstance(client, ClusterClient):
            users = client.connection_kwargs
            found = ClusterLookups(client, connect_timeout=timeout, username=users.get("username"),
                                   password=users.get("password"))
            lookups.append(found)
        return CacheStore(client, prefix=prefix, timeout=timeout, breaker_failures=failures,
                          breaker_reset=reset, metrics=metrics, lookups=found)

    yield make
    for found in lookups:
        await found.aclose()
    for prefix in made:
        keys = [key async for key in redis_admin.scan_iter(match=f"{prefix}:*", count=500)]
        for key in keys:  # one by one: on a cluster they live on every master
            await redis_admin.delete(key)


@pytest.fixture
def store(make_store: StoreFactory, redis_client: aioredis.Redis) -> CacheStore:
    return make_store(redis_client)
