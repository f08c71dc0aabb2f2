"""A read-through fill that read a row before a direct SQL UPDATE cannot store it after the invalidator has
applied the UPDATE (real services, proxy, invalidator; a relay holds the users service's answer back)."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from stack.net import free_port
from tests.support.holdingrelay import HoldingRelay
from tests.support.invalidatorproc import sql, store_for, trusted
from tests.support.polling import poll

pytestmark = [pytest.mark.slow]


@pytest.fixture
async def relay():
    found = HoldingRelay()
    await found.start()
    yield found
    await found.stop()


async def test_slow_fill_of_the_old_row_is_refused(real_stack, invalidator_process, redis_server, relay):
    stack = await _stack_through(real_stack, relay)
    invalidator = invalidator_process(stack.config)
    await invalidator.start()
    user = stack.ids[3]
    path = f"/users/{user}"
    headers = {"Authorization": stack.authorization}
    store = store_for(stack.config, redis_server)
    async with aiohttp.ClientSession() as http:
        await trusted(http, stack)
        relay.hold(path)
        slow = asyncio.create_task(http.get(stack.base + path, headers=headers))
        await asyncio.wait_for(relay.fetched.wait(), 10)  # the service has read version 1 of the row
        assert sql(stack.config, "UPDATE users SET title = %s, version = version + 1 WHERE id = %s",
                   ("Dr", user)) == 1

        async def applied() -> bool:
            found = await store.inspect(f"user:{user}")
            return found.record is not None and found.record.floor >= 2
        assert await poll(applied, 5), "the invalidator did not apply the UPDATE"
        relay.release()
        async with await slow as resp:
            old = await resp.json()
            assert old["version"] == 1  # what was in flight is answered as it was read...
            assert "stored" not in resp.headers["Cache-Status"]  # ...but not stored
        async with http.get(stack.base + path, headers=headers) as resp:
            now = await resp.json()
        assert now["version"] == 2 and now["title"] == "Dr"
        record = (await store.inspect(f"user:{user}")).record
        assert record is not None and (record.entry is None or record.entry.version == 2)
    await store._redis.aclose()


async def _stack_through(real_stack, relay: HoldingRelay):
    """The stack with the users upstream through the relay, the users service on a port chosen here."""
    port = free_port()
    relay.target = f"http://127.0.0.1:{port}"
    return await real_stack({"invalidator": {"enabled": True}, "upstreams": {"users": relay.url},
                             "services": {"users": {"host": "127.0.0.1", "port": port}}}, users=20)
