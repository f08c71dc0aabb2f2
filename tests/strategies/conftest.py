"""Fixtures of the strategy tests: a real backend on a socket, the real upstream client, a real Redis."""
from __future__ import annotations

import uuid
from typing import Any, AsyncIterator

import aiohttp
import pytest
import redis.asyncio as aioredis

from proxy.metrics import Metrics
from proxy.store import CacheStore
from proxy.upstream import Upstream, make_session
from stack.net import free_port
from stack.redis import RedisServer
from tests.support.redisclients import NO_RETRY, admin_client, gateway_client
from tests.support.strategy_world import Backend, StrategyWorld, WorldFactory


@pytest.fixture
def backend() -> Backend:
    return Backend()


@pytest.fixture
async def make_world(aiohttp_server: Any, backend: Backend,
                     redis_server: RedisServer) -> AsyncIterator[WorldFactory]:
    """Worlds around one backend; `redis_url` points a world at a private (killable) server instead.

    Every world's store runs as the gateway's Redis user (private servers have the same users).
    """
    server = await aiohttp_server(backend.app())
    base = str(server.make_url("")).rstrip("/")
    sessions: list[aiohttp.ClientSession] = []
    clients: list[aioredis.Redis] = []
    worlds: list[StrategyWorld] = []

    async def make(*, redis_url: str | None = None, timeout: float = 1.0, failures: int = 3,
                   reset: float = 0.3, upstream_timeout: float = 2.0) -> StrategyWorld:
        session = make_session()
        sessions.append(session)
        client = gateway_client(redis_server, url=redis_url, socket_timeout=5.0, socket_connect_timeout=1.0,
                                retry=NO_RETRY)
        clients.append(client)
        metrics = Metrics()
        prefix = f"s{uuid.uuid4().hex[:12]}"
        store = CacheStore(client, prefix=prefix, timeout=timeout, breaker_failures=failures,
                           breaker_reset=reset, metrics=metrics)
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
    shared = admin_client(redis_server)
    for world in worlds:
        keys = [key async for key in shared.scan_iter(match=f"{world.prefix}:*", count=500)]
        if keys:
            await shared.delete(*keys)
    await shared.aclose()
    for client in clients:
        await client.aclose()


@pytest.fixture
async def world(make_world: WorldFactory) -> StrategyWorld:
    return await make_world()
