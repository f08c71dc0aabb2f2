"""The pipelined lookup connection's life on real sockets: claims share it, a lost one is replaced, aclose
and a protocol error close it."""
from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from proxy.lookups import PipelinedLookups
from stack.net import free_port
from stack.redis import RedisServer
from tests.support.polling import poll

pytestmark = pytest.mark.single_redis  # one lean connection to one server (a cluster has one per node)


def lookups_for(server: RedisServer) -> PipelinedLookups:
    users = server.users
    return PipelinedLookups(server.url, connect_timeout=1.0, username=users.gateway_user,
                            password=users.gateway_password)


async def _ours(redis_admin: aioredis.Redis, server: RedisServer, earlier: set) -> list[dict]:
    return [c for c in await redis_admin.client_list()
            if c["user"] == server.users.gateway_user and c["id"] not in earlier]


async def test_a_claim_is_set_once_with_its_expiry_and_shares_the_connection(
        redis_server: RedisServer, redis_admin: aioredis.Redis) -> None:
    earlier = {c["id"] for c in await redis_admin.client_list()}
    lookups = lookups_for(redis_server)
    try:
        assert await lookups.set_absent("lkc:claim", b"first", 30000) is None
        assert await lookups.set_absent("lkc:claim", b"second", 30000) == b"first"  # left as it was
        assert await redis_admin.get("lkc:claim") == b"first"
        assert 0 < await redis_admin.pttl("lkc:claim") <= 30000
        assert await lookups.mget(["lkc:claim"]) == [b"first"]
        connections = await _ours(redis_admin, redis_server, earlier)
        assert len(connections) == 1, connections  # every call above went over the one connection
    finally:
        await lookups.aclose()
        await redis_admin.delete("lkc:claim")


async def test_a_lost_connection_is_replaced_and_aclose_closes_it(redis_server: RedisServer,
                                                                  redis_admin: aioredis.Redis) -> None:
    earlier = {c["id"] for c in await redis_admin.client_list()}
    lookups = lookups_for(redis_server)
    try:
        assert await lookups.set_absent("lkc:lost", b"1", 30000) is None
        [first] = await _ours(redis_admin, redis_server, earlier)
        await redis_admin.execute_command("CLIENT", "KILL", "ID", first["id"])
        assert await poll_async(lambda: lookups._protocol.lost is not None, 5.0), "the kill was never seen"
        assert await lookups.set_absent("lkc:lost", b"2", 30000) == b"1"  # over a new connection
        [second] = await _ours(redis_admin, redis_server, earlier)
        assert second["id"] != first["id"]
        await lookups.aclose()
        gone = await poll(lambda: _none_left(redis_admin, redis_server, earlier), 5.0)
        assert gone, "aclose left the connection open"
    finally:
        await lookups.aclose()
        await redis_admin.delete("lkc:lost")


async def _none_left(redis_admin: aioredis.Redis, server: RedisServer, earlier: set) -> bool:
    return not await _ours(redis_admin, server, earlier)


async def poll_async(condition, timeout: float) -> bool:
    async def check() -> bool:
        return bool(condition())
    return await poll(check, timeout)


async def test_a_protocol_error_fails_the_call_and_closes_the_connection() -> None:
    """Not Redis: a server that answers garbage. The reply cannot be parsed, so the connection is closed."""
    closed = asyncio.Event()

    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(1024)
        writer.write(b"?not a reply\r\n")
        await writer.drain()
        while await reader.read(1024):  # until the client closes its end
            pass
        closed.set()
        writer.close()

    port = free_port()
    server = await asyncio.start_server(garbage, "127.0.0.1", port)
    lookups = PipelinedLookups(f"redis://127.0.0.1:{port}", connect_timeout=1.0)
    try:
        with pytest.raises(RedisConnectionError, match="protocol error"):
            await asyncio.wait_for(lookups.mget(["k"]), 5.0)
        await asyncio.wait_for(closed.wait(), 5.0)
    finally:
        await lookups.aclose()
        server.close()
        await server.wait_closed()
