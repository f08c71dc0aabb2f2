"""The pipelined lookup connection: replies in order, one connection, abandoned replies dropped, reconnect."""
from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import ResponseError

from proxy.lookups import PipelinedLookups
from tests.support.redisclients import admin_client

pytestmark = pytest.mark.single_redis  # the lean connection itself (a cluster has one per node: test_cluster)

def lookups_for(server, url: str | None = None, **options) -> PipelinedLookups:
    """As the proxy makes them: the gateway's user, whose ACL must allow what the connection sends."""
    users = server.users
    return PipelinedLookups(url or server.url, connect_timeout=options.pop("connect_timeout", 1.0),
                            username=users.gateway_user, password=users.gateway_password, **options)


@pytest.fixture
async def lookups(redis_server):
    made = lookups_for(redis_server)
    yield made
    await made.aclose()


async def test_concurrent_mgets_share_one_connection_and_get_their_own_replies(lookups, redis_admin,
                                                                               redis_server):
    await redis_admin.mset({f"lk:{i}": str(i) for i in range(50)})
    # The session's Redis may still list a connection an earlier test's lookups closed: not ours.
    earlier = {c["id"] for c in await redis_admin.client_list()}
    results = await asyncio.gather(*(lookups.mget([f"lk:{i}", "lk:missing", f"lk:{(i + 1) % 50}"])
                                     for i in range(50)))
    for i, values in enumerate(results):
        assert values == [str(i).encode(), None, str((i + 1) % 50).encode()]
    names = [c for c in await redis_admin.client_list() if c.get("cmd") == "mget" and c["id"] not in earlier]
    assert len(names) == 1
    assert names[0]["user"] == redis_server.users.gateway_user


async def test_a_caller_that_gave_up_does_not_shift_the_replies(lookups, redis_admin):
    await redis_admin.mset({"lk:a": "a", "lk:b": "b"})
    first = asyncio.ensure_future(lookups.mget(["lk:a"]))
    second = asyncio.ensure_future(lookups.mget(["lk:b"]))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == [b"b"]
    assert await lookups.mget(["lk:a"]) == [b"a"]


async def test_database_number_in_the_url_is_selected(redis_server):
    url = f"redis://{redis_server.host}:{redis_server.port}/3"
    other = admin_client(redis_server, url=url)
    await other.set("lk:db3", "three")
    lookups = lookups_for(redis_server, url)
    try:
        assert await lookups.mget(["lk:db3"]) == [b"three"]
    finally:
        await lookups.aclose()
        await other.delete("lk:db3")
        await other.aclose()


async def test_a_killed_redis_fails_every_waiter_and_a_restarted_one_is_used_again(redis_factory):
    server = redis_factory()
    lookups = lookups_for(server, connect_timeout=0.5)
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


async def test_without_the_password_or_with_a_wrong_one_no_lookup_is_answered(redis_server, redis_admin):
    """Regression (issue 7): the lookup connection sent AUTH only from credentials in the URL."""
    await redis_admin.set("lk:secret", "entry")
    users = redis_server.users
    anonymous = PipelinedLookups(redis_server.url, connect_timeout=1.0)
    wrong = PipelinedLookups(redis_server.url, connect_timeout=1.0, username=users.gateway_user,
                             password="not-" + users.gateway_password)
    try:
        with pytest.raises(ResponseError, match="NOAUTH"):
            await anonymous.mget(["lk:secret"])
        with pytest.raises(ResponseError, match="WRONGPASS"):
            await wrong.mget(["lk:secret"])
    finally:
        await anonymous.aclose()
        await wrong.aclose()
        await redis_admin.delete("lk:secret")


async def test_get_each_answers_in_order_with_an_error_in_its_keys_place(lookups, redis_admin):
    """A cluster node's batch (ClusterLookups): one write, one waiter, each reply error where its key was."""
    await redis_admin.mset({"ge:1": "one", "ge:3": "three"})
    await redis_admin.rpush("ge:list", "x")  # GET on a list: WRONGTYPE, as MOVED would be a reply error
    found = await lookups.get_each(["ge:1", "ge:2", "ge:list", "ge:3"])
    assert found[0] == b"one" and found[1] is None and found[3] == b"three"
    assert isinstance(found[2], ResponseError) and "WRONGTYPE" in str(found[2])
    assert await lookups.get_each([]) == []
    # A batch abandoned by its caller: its replies are read and dropped, the next batch gets its own.
    abandoned = asyncio.ensure_future(lookups.get_each([f"ge:{i % 4}" for i in range(200)]))
    await asyncio.sleep(0)  # written, its replies on their way
    abandoned.cancel()
    assert await lookups.get_each(["ge:3", "ge:1"]) == [b"three", b"one"]
