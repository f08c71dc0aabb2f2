"""What a miss's claim finds when it is not the first (real Redis, single and cluster): another fill's
lease, or a write fence that came in between its lookup and its claim; and a cluster batch whose nodes
partly failed."""
from __future__ import annotations

from redis.exceptions import ConnectionError as RedisConnectionError
import pytest

from proxy.errors import CacheUnavailable
from proxy.store import CacheStore


async def test_a_claim_after_another_fills_lease_says_leased_not_fenced(store: CacheStore) -> None:
    seen = await store.lookup("user:1")
    mine = await store.claim("user:1", seen, lifetime=5.0)
    assert mine.token and not mine.leased and not mine.fenced
    # A second process missed on the same empty key: it finds the first one's lease (and waits for it).
    other = await store.claim("user:1", seen, lifetime=5.0)
    assert other.leased and not other.fenced and other.token == mine.token
    assert (await store.lookup("user:1")).leased


async def test_a_claim_after_a_write_fence_says_fenced_not_leased(store: CacheStore) -> None:
    seen = await store.lookup("user:2")  # empty: the miss goes on to claim...
    await store.fence(b"writer-1", ["user:2"], [], lifetime=5.0, linger=1.0)  # ...but a write came first
    found = await store.claim("user:2", seen, lifetime=5.0)
    assert found.fenced and not found.leased and found.entry is None


def test_a_cluster_batch_without_the_epochs_node_fails_whole_and_one_without_a_key_only_that_key(
        store: CacheStore) -> None:
    """The epoch comes first in a batch: without it nothing may be served; any other node's failure fails
    its own keys only (their places hold the error, the lookups of those keys bypass)."""
    down = RedisConnectionError("node down")
    with pytest.raises(CacheUnavailable, match="epoch"):
        store._partial([down, b"entry"])
    assert store._partial([b"7", down, b"entry"]) == [b"7", down, b"entry"]
