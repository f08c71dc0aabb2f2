"""What the store counts on a real Redis: tombstones only when stored, and each call's time as it took it."""
from __future__ import annotations

import time

from proxy.metrics import Metrics
from proxy.store import CacheStore
from tests.support.stores import entity, sample


async def test_a_tombstone_counts_only_when_it_was_stored(store: CacheStore, metrics: Metrics) -> None:
    await store.fence(b"writer-a", ["user:1"], [], lifetime=5.0, linger=1.0)
    # Another write to the key is in flight: this tombstone is refused, and so not counted.
    assert await store.tombstone("user:1", 4, ttl=60.0, writer=b"writer-b") == "fenced"
    assert sample(metrics, "cachegate_tombstones_total") == 0
    assert await store.tombstone("user:2", 4, ttl=60.0) == "stored"
    assert sample(metrics, "cachegate_tombstones_total") == 1


async def test_each_call_records_the_time_it_took(store: CacheStore, metrics: Metrics) -> None:
    # Not a speed check: the recorded time must be the call's own, between nothing and what the test saw.
    started = time.monotonic()
    assert await store.write("user:1", entity(2)) == "stored"
    elapsed = time.monotonic() - started
    recorded = sample(metrics, "cachegate_redis_command_duration_seconds_sum", command="write")
    assert sample(metrics, "cachegate_redis_command_duration_seconds_count", command="write") == 1
    assert 0 < recorded <= elapsed
