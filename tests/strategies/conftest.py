"""Fixtures of the strategy tests: a real backend on a socket, the real upstream client, a real Redis.

Every world runs twice: on the session's single Redis and on the session's Redis Cluster (the proxy's
cluster client and per-node lookups), except a world on a private server of its test (`redis_url`), and
the tests in strategies/test_strategy_faults.py, which kill or pause a single Redis.
"""
from __future__ import annotations

import uuid
from typing import Any, AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from proxy.clusterclient import ClusterLookups
from proxy.metrics import Metrics
from proxy.store import CacheStore
from proxy.upstream import Upstream, make_session
from stack.net import free_port
from stack.redis import RedisServer
from tests.support.redisclients import (NO_RETRY, admin_client, cluster_admin_client, cluster_gateway_client,
                                       gateway_client)
from tests.support.strategy_world import Backend, StrategyWorld, WorldFactory


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture(params=["single", "cluster"])
def topology(request: pytest.FixtureRequest) -> str:
    if request.param == "cluster" and request.module.__name__.endswith("test_strategy_faults"):
        pytest.skip("kills or pauses a single Redis")
    return request.param


@pytest.fixture
async def make_world(aiohttp_server: Any, backend: Backend, redis_server: RedisServer, topology: str,
                     request: pytest.FixtureRequest) -> AsyncIterator[WorldFactory]:
    """Worlds around one backend; `redis_url` points a world at a private (killable) server instead.

    Every world's store runs as the gateway's Redis user (private servers have the same users).
    """
    server = await aiohttp_server(backend.app())
    base = str(server.make_url("")).rstrip("/")
    sessions: list[aiohttp.ClientSession] = []
    clients: list[aioredis.Redis] = []
    worlds: list[StrategyWorld] = []
    lookups: list[ClusterLookups] = []
    cluster = request.getfixturevalue("redis_cluster") if topology == "cluster" else None

    async def make(*, redis_url: str | None = None, timeout: float = 1.0, failures: int = 3,
                   reset: float = 0.3, upstream_timeout: float = 2.0) -> StrategyWorld:
        session = make_session()
        sessions.append(session)
        found = None
        if cluster is not None and redis_url is None:
            client = await cluster_gateway_client(cluster, timeout=5.0)
            found = ClusterLookups(client, connect_timeout=1.0, username=cluster.users.gateway_user,
                                   password=cluster.users.gateway_password)
            lookups.append(found)
        else:
            client = gateway_client(redis_server, url=redis_url, socket_timeout=5.0,
                                    socket_connect_timeout=1.0, retry=NO_RETRY)
        clients.append(client)
        metrics = Metrics()
        prefix = f"s{uuid.uuid4().hex[:12]}"
        store = CacheStore(client, prefix=prefix, timeout=timeout, breaker_failures=failures,
                           breaker_reset=reset, metrics=metrics, lookups=found)
        bases = {"items": base, "dead": f"http://127.0.0.1:{free_port()}"}  # nothing listens on "dead"
        upstream = Upstream(session, bases, metrics, max_body=1 << 20, connect_timeout=1.0,
                            timeout=upstream_timeout)
        world = StrategyWorld(backend, upstream, store, metrics, prefix)
        worlds.append(world)
        return world

    yield make
    backend.stop.set()
    for gate in (backend.gate, backend.write_gate):
        if gate is not None:
            gate.set()
    for world in worlds:
        for strategy in world.made:
            await strategy.close()
    for session in sessions:
        await session.close()
    for found in lookups:
        await found.aclose()
    shared = admin_client(redis_server) if cluster is None else cluster_admin_client(cluster)
    for world in worlds:
        keys = [key async for key in shared.scan_iter(match=f"{world.prefix}:*", count=500)]
        for key in keys:  # one by one: on a cluster they live on every master
            await shared.delete(key)
    await shared.aclose()
    for client in clients:
        await client.aclose()


@pytest.fixture
async def world(make_world: WorldFactory) -> StrategyWorld:
    return await make_world()


@pytest.fixture
async def redis_admin(topology: str, redis_server: RedisServer,
                      request: pytest.FixtureRequest) -> AsyncIterator[aioredis.Redis]:
    """The admin's client of the Redis (or cluster) the test's worlds run on."""
    if topology == "cluster":
        client = cluster_admin_client(request.getfixturevalue("redis_cluster"))
    else:
        client = admin_client(redis_server)
    yield client
    await client.aclose()
