"""Redis dead, killed or frozen: CacheUnavailable, an open breaker, and missed writes move the epoch."""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Callable

import pytest
import redis.asyncio as aioredis

from proxy.errors import CacheUnavailable
from proxy.metrics import Metrics
from proxy.records import Lookup, new_writer
from proxy.store import CacheStore
from stack.net import free_port
from stack.redis import RedisServer
from tests.support.stores import NO_RETRY, StoreFactory, client_for, entity, sample

pytestmark = pytest.mark.fault


async def _wait_for_state(store: CacheStore, state: str, limit: float = 10.0) -> None:
    deadline = time.monotonic() + limit
    while store.breaker_state != state and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert store.breaker_state == state


async def test_nothing_listening_means_cache_unavailable_then_fail_fast(make_store: StoreFactory,
                                                                         metrics: Metrics) -> None:
    client = aioredis.Redis(host="127.0.0.1", port=free_port(), socket_connect_timeout=0.5, retry=NO_RETRY)
    store = make_store(client, failures=3, reset=60)
    try:
        for _ in range(3):
            with pytest.raises(CacheUnavailable):
                await store.lookup("user:1")
        assert store.breaker_state == "open"
        assert sample(metrics, "cachegate_redis_errors_total", op="mget") == 3
        assert sample(metrics, "cachegate_breaker_state") == 1
        with pytest.raises(CacheUnavailable, match="circuit breaker open"):
            await store.fill("user:1", entity(1), seen=Lookup(None, b"", 0, ()))
        assert sample(metrics, "cachegate_redis_errors_total", op="mget") == 3  # Redis was not asked
        assert not await store.ping()
    finally:
        await client.aclose()


async def test_killed_redis_fails_every_operation(redis_factory: Callable[..., RedisServer],
                                                  make_store: StoreFactory) -> None:
    server = redis_factory()
    client = client_for(server, timeout=0.5)
    store = make_store(client, failures=100)
    try:
        seen = await store.lookup("user:1")
        server.kill()
        for call in (lambda: store.lookup("user:1"), lambda: store.fill("user:1", entity(1), seen=seen),
                     lambda: store.write("user:1", entity(1)), lambda: store.tombstone("user:1", 2, ttl=30),
                     lambda: store.drop("user:1", fence=30), lambda: store.invalidate_tag("user-lists"),
                     lambda: store.new_epoch(), lambda: store.reopen("user:1", seen),
                     lambda: store.fence(new_writer(), ["user:1"], ["user-lists"], lifetime=6, linger=30)):
            with pytest.raises(CacheUnavailable):
                await call()
    finally:
        await client.aclose()


async def test_paused_redis_times_out_and_recovers_after_resume(redis_factory: Callable[..., RedisServer],
                                                                make_store: StoreFactory, metrics: Metrics,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    server = redis_factory()
    client = client_for(server, timeout=5.0)  # the store's own timeout must be what ends the wait
    store = make_store(client, timeout=0.2, failures=2, reset=0.2)
    try:
        await store.write("user:1", entity(1))
        server.pause()
        with caplog.at_level(logging.WARNING, logger="cachegate.store"):
            for _ in range(2):
                with pytest.raises(CacheUnavailable):
                    await store.lookup("user:1")
            assert store.breaker_state == "open"
            server.resume()
            await _wait_for_state(store, "half-open")
            assert (await store.lookup("user:1")).entry is not None  # the probe: nothing was missed
            assert store.breaker_state == "closed"
        outage_lines = [r for r in caplog.records if "unavailable" in r.getMessage()]
        assert len(outage_lines) == 1  # logged once per outage, not once per failed call
        assert any("answers again" in r.getMessage() for r in caplog.records)
        assert sample(metrics, "cachegate_redis_errors_total", op="mget") == 2
    finally:
        server.resume()
        await client.aclose()


async def test_a_write_that_missed_redis_moves_the_epoch_before_any_read(
        redis_factory: Callable[..., RedisServer], make_store: StoreFactory, metrics: Metrics) -> None:
    """Bounded staleness: fill, Redis unreachable during a write-through, Redis back -> not the old entry."""
    server = redis_factory()
    client = client_for(server, timeout=5.0)
    store = make_store(client, timeout=0.2, failures=1, reset=0.2)
    try:
        await store.write("user:1", entity(1))
        server.pause()
        with pytest.raises(CacheUnavailable):
            await store.lookup("user:1")          # times out: the breaker opens
        with pytest.raises(CacheUnavailable):
            await store.write("user:1", entity(2))  # refused without touching Redis: surely missed
        server.resume()
        await _wait_for_state(store, "half-open")
        after = await store.lookup("user:1")
        assert after.entry is None                 # version 1 is still in Redis, but of an older epoch
        assert after.epoch > 0
        assert sample(metrics, "cachegate_epoch_bumps_total") == 1
        again = await store.lookup("user:1")
        assert again.epoch == after.epoch          # one move per outage, not one per read
    finally:
        server.resume()
        await client.aclose()


async def test_a_write_of_unknown_outcome_moves_the_epoch(redis_factory: Callable[..., RedisServer],
                                                          make_store: StoreFactory) -> None:
    server = redis_factory()
    client = client_for(server, timeout=5.0)
    store = make_store(client, timeout=0.2, failures=100)
    try:
        await store.write("user:1", entity(1))
        server.pause()
        with pytest.raises(CacheUnavailable):
            await store.drop("user:1", fence=30)   # sent, but did it land? nobody knows
        server.resume()
        after = await store.lookup("user:1")
        assert after.entry is None and after.epoch > 0
    finally:
        server.resume()
        await client.aclose()


async def test_a_fence_that_missed_redis_moves_the_epoch(redis_factory: Callable[..., RedisServer],
                                                         make_store: StoreFactory) -> None:
    """The write goes upstream without its fence: the old entry must not be served once Redis answers."""
    server = redis_factory()
    client = client_for(server, timeout=5.0)
    store = make_store(client, timeout=0.2, failures=100)
    try:
        await store.write("user:1", entity(1))
        server.pause()
        with pytest.raises(CacheUnavailable):
            await store.fence(new_writer(), ["user:1"], [], lifetime=6, linger=30)
        server.resume()
        after = await store.lookup("user:1")
        assert after.entry is None and after.epoch > 0
    finally:
        server.resume()
        await client.aclose()


async def test_a_failed_fill_does_not_move_the_epoch(redis_factory: Callable[..., RedisServer],
                                                     make_store: StoreFactory) -> None:
    """Fills are fenced, so a fill that may or may not have landed is harmless either way."""
    server = redis_factory()
    client = client_for(server, timeout=5.0)
    store = make_store(client, timeout=0.2, failures=100)
    try:
        seen = await store.lookup("user:1")
        server.pause()
        with pytest.raises(CacheUnavailable):
            await store.fill("user:1", entity(1), seen=seen)
        server.resume()
        assert (await store.lookup("user:1")).epoch == 0
    finally:
        server.resume()
        await client.aclose()


async def test_a_timer_that_fired_late_because_the_loop_was_busy_does_not_open_the_breaker(
        make_store: StoreFactory, redis_client) -> None:
    """Regression: under load the proxy's own loop lag made lookups time out against a healthy Redis, the
    breaker opened, and every read went to the backends at the worst moment."""
    store = make_store(redis_client, timeout=0.05, failures=1)
    lookup = asyncio.ensure_future(store.lookup("busy"))
    for _ in range(5):               # the lookup is batched, sent, and its timer armed...
        await asyncio.sleep(0)
    time.sleep(0.3)                  # ...and the loop is blocked far past its timeout (a CPU-bound stretch)
    with pytest.raises(CacheUnavailable):
        await lookup
    assert store.breaker_state == "closed"
    assert (await store.lookup("busy")).entry is None  # still in use
