"""Reading cache records in Redis directly, as the Lua scripts do, and Redis's own clock that fences use."""
from __future__ import annotations

import struct

import redis.asyncio as aioredis

from proxy.records import WRITER, WRITING
from tests.support.polling import poll

PREFIX = struct.Struct(">BBQQ8s")  # the record prefix, as specified (proxy/records.py, proxy/lua/record.lua)


async def redis_ms(client: aioredis.Redis) -> int:
    """Redis's own clock in milliseconds: what fence deadlines are written in."""
    seconds, micros = await client.time()
    return seconds * 1000 + micros // 1000


async def wait_for_redis_time(client: aioredis.Redis, past_ms: int, limit: float = 30.0) -> None:
    """Poll Redis's clock until it is past `past_ms` (a fence's deadline)."""
    async def past() -> bool:
        return await redis_ms(client) > past_ms

    assert await poll(past, limit), "Redis's clock did not pass the deadline"


def fence_of(raw: bytes | None) -> tuple[int, int, list[tuple[bytes, int]]]:
    """A record's (kind, floor, writes in flight as (writer, deadline ms)), read the way the scripts do."""
    assert raw is not None and len(raw) >= PREFIX.size
    _, kind, _, floor, _ = PREFIX.unpack_from(raw)
    if kind != WRITING:
        return kind, floor, []
    writers = [WRITER.unpack_from(raw, at) for at in range(PREFIX.size, len(raw), WRITER.size)]
    return kind, floor, writers
