"""Fixtures of the store tests: Redis clients on the real test servers, stores with a prefix of their own."""
from __future__ import annotations

import uuid
from typing import AsyncIterator

import pytest
import redis.asyncio as aioredis

from proxy.metrics import Metrics
from proxy.store import CacheStore
from stack.redis import RedisServer
from tests.support.redisclients import admin_client
from tests.support.stores import StoreFactory, client_for


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """The session Redis as the gateway's user: the client the stores under test use."""
    client = client_for(redis_server)
    yield client
    await client.aclose()


@pytest.fixture
async def redis_admin(redis_server: RedisServer) -> AsyncIterator[aioredis.Redis]:
    """The session Redis as its admin: for looking at what a store did, and cleaning up."""
    client = admin_client(redis_server)
    yield client
    await client.aclose()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def make_store(metrics: Metrics, redis_client: aioredis.Redis,
                     redis_admin: aioredis.Redis) -> AsyncIterator[StoreFactory]:
    """Stores with a prefix of their own; their keys on the shared Redis are deleted afterwards."""
    made: list[str] = []

    def make(client: aioredis.Redis, *, timeout: float = 1.0, failures: int = 3, reset: float = 0.3,
             prefix: str | None = None) -> CacheStore:
        prefix = prefix or f"s{uuid.uuid4().hex[:12]}"
        if client is redis_client:
            made.append(prefix)
        return CacheStore(client, prefix=prefix, timeout=timeout, breaker_failures=failures,
                          breaker_reset=reset, metrics=metrics)

    yield make
    for prefix in made:
        keys = [key async for key in redis_admin.scan_iter(match=f"{prefix}:*", count=500)]
        if keys:
            await redis_admin.delete(*keys)


@pytest.fixture
def store(make_store: StoreFactory, redis_client: aioredis.Redis) -> CacheStore:
    return make_store(redis_client)
