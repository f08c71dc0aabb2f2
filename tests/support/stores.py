"""Helpers of the store tests: entities as backends return them, metric samples, Redis clients."""
from __future__ import annotations

import time
from typing import Callable

import redis.asyncio as aioredis

from proxy.metrics import Metrics
from proxy.records import Entry, make_entry
from proxy.store import CacheStore
from stack.redis import RedisServer
from tests.support.redisclients import NO_RETRY, gateway_client

StoreFactory = Callable[..., CacheStore]


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
    """Built like the proxy builds its client: the gateway's user, no retries inside redis-py (the store's
    timeout decides)."""
    return gateway_client(server, socket_timeout=timeout, socket_connect_timeout=timeout, retry=NO_RETRY)
