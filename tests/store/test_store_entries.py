"""Entries on the wire: compact encoding, Redis expiry = TTL + grace, and lookups batched into one MGET."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Callable

import redis.asyncio as aioredis

from proxy import records
from proxy.records import make_entry
from proxy.store import CacheStore
from stack.redis import RedisServer
from tests.support.redisclients import admin_client
from tests.support.stores import StoreFactory, client_for, entity


async def test_the_scripts_read_the_layout_of_records_py(redis_client: aioredis.Redis) -> None:
    """The sizes the Lua scripts use come from proxy/records.py and agree with their own struct formats."""
    lua = Path(records.__file__).with_name("lua") / "record.lua"
    script = (records.lua_prelude() + lua.read_text()
              + "\nreturn {struct.size(PREFIX), PREFIX_SIZE, struct.size(WRITER), WRITER_SIZE, WRITING}")
    found = await redis_client.eval(script, 0)
    assert found == [records.PREFIX.size] * 2 + [records.WRITER.size] * 2 + [records.WRITING]


async def test_any_body_bytes_and_headers_round_trip(store: CacheStore) -> None:
    body = bytes(range(256)) * 40 + b"\r\n: \x00"
    headers = [("Content-Type", "application/octet-stream"), ("ETag", 'W/"12"'),
               ("Last-Modified", "Tue, 01 Dec 2026 10:00:00 GMT"), ("Cache-Control", "max-age=60, public")]
    original = make_entry(203, headers, body, version=12, now=time.time(), ttl=60, grace=5)
    await store.write("blob:1", original)
    found = (await store.lookup("blob:1")).entry
    assert found == original


async def test_the_stored_value_holds_the_raw_body_not_json(store: CacheStore,
                                                             redis_admin: aioredis.Redis) -> None:
    body = b'{"name": "\\u00e9l\\u00e8ve"}'
    await store.write("user:1", entity(2, body))
    raw = await redis_admin.get(store.entry_key("user:1"))
    assert raw.endswith(body)
    assert len(raw) - len(body) < 160  # the header is small: prefix, times, the four whitelisted headers


async def test_redis_expiry_is_ttl_plus_grace(store: CacheStore, redis_admin: aioredis.Redis) -> None:
    await store.write("user:1", entity(1, ttl=60, grace=300))
    pttl = await redis_admin.pttl(store.entry_key("user:1"))
    assert 359_000 < pttl <= 360_000
    entry = (await store.lookup("user:1")).entry
    assert entry.fresh_until - entry.stored_at == 60
    assert entry.stale_until - entry.fresh_until == 300


async def test_a_tombstone_lives_for_its_own_ttl(store: CacheStore, redis_admin: aioredis.Redis) -> None:
    await store.write("user:1", entity(1, ttl=600, grace=600))
    await store.tombstone("user:1", 2, ttl=30)
    assert 29_000 < await redis_admin.pttl(store.entry_key("user:1")) <= 30_000


async def test_an_expired_entry_is_gone(store: CacheStore) -> None:
    await store.write("user:1", entity(1, ttl=0.05, grace=0.05))
    deadline = time.monotonic() + 5
    while (await store.lookup("user:1")).token and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    assert (await store.lookup("user:1")).entry is None


async def _command_calls(client: aioredis.Redis) -> dict[str, int]:
    stats = await client.info("commandstats")
    calls = {name.removeprefix("cmdstat_"): int(value["calls"]) for name, value in stats.items()}
    return {name: n for name, n in calls.items() if name not in ("info", "config|resetstat")}


async def test_concurrent_lookups_of_one_tick_are_one_mget(redis_factory: Callable[..., RedisServer],
                                                           make_store: StoreFactory) -> None:
    server = redis_factory()
    client, observer = client_for(server), admin_client(server)
    try:
        store = make_store(client)
        for n in range(20):
            await store.write(f"user:{n}", entity(n + 1))
        await client.ping()  # the connection is made (and introduced) before counting starts
        await observer.config_resetstat()
        found = await asyncio.gather(*(store.lookup(f"user:{n}", ["user-lists"]) for n in range(20)))
        calls = await _command_calls(observer)
    finally:
        await client.aclose()
        await observer.aclose()
    assert [f.entry.version for f in found] == list(range(1, 21))
    assert calls == {"mget": 1}  # the epoch key and the tag generation rode along


async def test_a_hit_is_one_round_trip(redis_factory: Callable[..., RedisServer],
                                       make_store: StoreFactory) -> None:
    server = redis_factory()
    client, observer = client_for(server), admin_client(server)
    try:
        store = make_store(client)
        await store.write("user:1", entity(1))
        await observer.config_resetstat()
        assert (await store.lookup("user:1")).entry.version == 1
        calls = await _command_calls(observer)
    finally:
        await client.aclose()
        await observer.aclose()
    assert calls == {"mget": 1}
