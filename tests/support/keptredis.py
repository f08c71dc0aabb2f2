"""A test Redis SIGKILLed and started again with its data, and what it holds for a key, read from outside.

The data comes back from a snapshot taken just before the kill (SAVE, then SIGKILL, then a start that loads
the RDB file), not from an append-only file: Redis 7.0 replays a script's writes from its AOF as MULTI/EXEC
run by the default user, which our ACL disables, so every entry the Lua scripts wrote is silently dropped
on load (redis/redis#14541) and a "restarted with its data" Redis would come back without any entry.
"""
from __future__ import annotations

from proxy.metrics import Metrics
from proxy.store import CacheStore
from stack.redis import RedisServer
from tests.support.redisclients import admin_client
from tests.support.stores import client_for


async def kill_keeping_data(server: RedisServer) -> None:
    """Snapshot everything to the RDB file, then SIGKILL: `server.start()` brings it all back."""
    assert not server.appendonly, "a Redis with an append-only file loads that, not the snapshot"
    client = admin_client(server)
    try:
        await client.save()
    finally:
        await client.aclose()
    server.kill()


async def current_entry_version(server: RedisServer, prefix: str, key: str) -> int | None:
    """The version of the entry `server` holds under the cache key `key` in the current epoch (None: none
    there, or one of an older epoch), looked up by a store of its own: one that missed no write, so
    looking moves no epoch."""
    client = client_for(server)
    store = CacheStore(client, prefix=prefix, timeout=2.0, breaker_failures=5, breaker_reset=1.0,
                       metrics=Metrics())
    try:
        found = await store.inspect(key)
    finally:
        await client.aclose()
    record = found.record
    if record is None or record.entry is None or record.epoch != found.epoch:
        return None
    return record.entry.version
