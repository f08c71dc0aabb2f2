"""Helpers of the store tests: entities as backends return them, metric samples, Redis clients and clock,
the record layout."""
from __future__ import annotations

import asyncio
import struct
import time
from typing import Callable

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from proxy.metrics import Metrics
from proxy.store import WRITER, WRITING, CacheStore, Entry, make_entry
from stack.redis import RedisServer

StoreFactory = Callable[..., CacheStore]
NO_RETRY = Retry(NoBackoff(), 0)
PREFIX = struct.Struct(">BBQQ8s")  # the record prefix, as specified (proxy/store.py, proxy/lua/record.lua)


def entity(version: int, body: bytes | None = None, *, ttl: float = 60.0, grace: float = 300.0,
           status: int = 200) -> Entry:
    """An entity as a backend would return it: JSON with its version in the ETag."""
    body = body if body is not None else b'{"id": 1, "version": %d}' % version
    headers = [("Content-Type", "application/json"), ("ETag", f'"{version}"')] if version else \
        [("Content-Type", "application/json")]
    return make_entry(status, headers, body, version=version, now=time.time(), ttl=ttl, grace=grace)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def client_for(server: RedisServer, timeout: float = 2.0) -> aioredis.Redis:
    """Built like the proxy builds its client (no retries inside redis-py: the store's timeout decides)."""
    return aioredis.Redis.from_url(server.url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                   retry=NO_RETRY)


async def redis_ms(client: aioredis.Redis) -> int:
    """Redis's own clock in milliseconds: what fence deadlines are written in."""
    seconds, micros = await client.time()
    return seconds * 1000 + micros // 1000


async def wait_for_redis_time(client: aioredis.Redis, past_ms: int, limit: float = 30.0) -> None:
    """Poll Redis's clock until it is past `past_ms` (a fence's deadline)."""
    deadline = time.monotonic() + limit
    while await redis_ms(client) <= past_ms:
        assert time.monotonic() < deadline, "Redis's clock did not pass the deadline"
        await asyncio.sleep(0.05)


def fence_of(raw: bytes | None) -> tuple[int, int, list[tuple[bytes, int]]]:
    """A record's (kind, floor, writes in flight as (writer, deadline ms)), read the way the scripts do."""
    assert raw is not None and len(raw) >= PREFIX.size
    _, kind, _, floor, _ = PREFIX.unpack_from(raw)
    if kind != WRITING:
        return kind, floor, []
    writers = [WRITER.unpack_from(raw, at) for at in range(PREFIX.size, len(raw), WRITER.size)]
    return kind, floor, writers
