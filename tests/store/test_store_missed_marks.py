"""A tombstone or a drop that missed a frozen Redis moves the epoch: the entry it ends is never served."""
from __future__ import annotations

from typing import Awaitable, Callable

import pytest

from proxy.errors import CacheUnavailable
from proxy.store import CacheStore
from stack.redis import RedisServer
from tests.support.stores import StoreFactory, client_for, entity

pytestmark = pytest.mark.fault


@pytest.mark.parametrize("mark", [
    lambda store: store.tombstone("user:1", 2, ttl=60.0),
    lambda store: store.drop("user:1", fence=30.0),
], ids=["tombstone", "drop"])
async def test_a_mark_that_missed_redis_moves_the_epoch(redis_factory: Callable[..., RedisServer],
                                                        make_store: StoreFactory,
                                                        mark: Callable[[CacheStore], Awaitable[str]]) -> None:
    server = redis_factory()
    client = client_for(server, timeout=5.0)
    store = make_store(client, timeout=0.2, failures=100)
    try:
        assert await store.write("user:1", entity(1)) == "stored"
        server.pause()  # SIGSTOP: the script may or may not run once Redis is back
        with pytest.raises(CacheUnavailable):
            await mark(store)
        server.resume()
        after = await store.lookup("user:1")
        assert after.entry is None and after.epoch > 0  # moved from 0 (to Redis's clock: a first move)
    finally:
        server.resume()
        await client.aclose()
