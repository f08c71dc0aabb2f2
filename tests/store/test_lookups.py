"""The pipelined lookup connection: replies in order, one connection, abandoned replies dropped, reconnects."""
from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from proxy.lookups import PipelinedLookups


@pytest.fixture
async def lookups(redis_server):
    made = PipelinedLookups(redis_server.url, connect_timeout=1.0)
    yield made
    await made.aclose()


async def test_concurrent_mgets_share_one_connection_and_get_their_own_replies(lookups, redis_client):
    await redis_client.mset({f"lk:{i}": str(i) for i in range(50)})
    results = await asyncio.gather(*(lookups.mget([f"lk:{i}", "lk:missing", f"lk:{(i + 1) % 50}"])
                                     for i in range(50)))
    for i, values in enumerate(results):
        assert values == [str(i).encode(), None, str((i + 1) % 50).encode()]
    names = [c for c in await redis_client.client_list() if c.get("cmd") == "mget"]
    assert len(names) == 1


async def test_a_caller_that_gave_up_does_not_shift_the_replies(lookups, redis_client):
    await redis_client.mset({"lk:a": "a", "lk:b": "b"})
    first = asyncio.ensure_future(lookups.mget(["lk:a"]))
    second = asyncio.ensure_future(lookups.mget(["lk:b"]))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == [b"b"]
    assert await lookups.mget(["lk:a"]) == [b"a"]


async def test_database_number_in_the_url_is_selected(redis_server):
    other = aioredis.Redis(host=redis_server.host, port=redis_server.port, db=3)
    await other.set("lk:db3", "three")
    lookups = PipelinedLookups(f"redis://{redis_server.host}:{redis_server.port}/3", connect_timeout=1.0)
    try:
        assert await lookups.mget(["lk:db3"]) == [b"three"]
    finally:
        await lookups.aclose()
        await other.delete("lk:db3")
        await other.aclose()


async def test_a_killed_redis_fails_every_waiter_and_a_restarted_one_is_used_again(redis_factory):
    server = redis_factory()
    lookups = PipelinedLookups(server.url, connect_timeout=0.5)
    try:
        assert await lookups.mget(["x"]) == [None]
        server.kill()
        with pytest.raises(RedisConnectionError):
            await lookups.mget(["x"])
        with pytest.raises(RedisConnectionError):
            await lookups.mget(["x"])   # nothing listens: refused, not hung
        server.start()
        assert await lookups.mget(["x"]) == [None]
    finally:
        await lookups.aclose()
