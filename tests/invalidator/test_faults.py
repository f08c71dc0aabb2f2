"""The invalidator paused: the gateway stops trusting the covered routes past the lag bound and trusts them
again once it catches up; a position purged from the binary log moves the cache to a new epoch."""
from __future__ import annotations

import os
import re
import signal

import aiohttp
import pytest

from tests.support.invalidatorproc import sql, sql_one, store_for, trusted
from tests.support.polling import poll

pytestmark = [pytest.mark.slow, pytest.mark.fault]
ON = {"invalidator": {"enabled": True}}


async def _cache_status(http, stack, path: str) -> str:
    async with http.get(stack.base + path, headers={"Authorization": stack.authorization}) as resp:
        await resp.read()
        return resp.headers.get("Cache-Status", "")


async def test_a_paused_invalidator_makes_the_covered_routes_bypass_until_it_catches_up(
        real_stack, invalidator_process):
    stack = await real_stack(ON, users=10)
    invalidator = invalidator_process(stack.config)
    await invalidator.start()
    user = stack.ids[2]
    async with aiohttp.ClientSession() as http:
        await trusted(http, stack)
        os.killpg(invalidator.pid, signal.SIGSTOP)
        try:
            sql(stack.config, "UPDATE users SET title = 'paused', version = version + 1 WHERE id = %s",
                (user,))
            bound = stack.config.invalidator.lag_bound + 2 * stack.config.invalidator.check_interval

            async def behind() -> bool:
                return "INVALIDATOR-BEHIND" in await _cache_status(http, stack, f"/users/{user}")
            assert await poll(behind, bound + 5)
            async with http.get(stack.base + f"/users/{user}",
                                headers={"Authorization": stack.authorization}) as resp:
                assert (await resp.json())["title"] == "paused"  # from the service, not the stale entry
        finally:
            os.killpg(invalidator.pid, signal.SIGCONT)
        await trusted(http, stack)


async def test_a_purged_position_moves_the_epoch_and_follows_from_the_current_one(
        real_stack, invalidator_process, redis_server, mariadb_server):
    stack = await real_stack(ON, users=5)
    invalidator = invalidator_process(stack.config)
    await invalidator.start()
    invalidator.stop()
    store = store_for(stack.config, redis_server)
    epoch = (await store.inspect("user:1")).epoch
    # A position the server no longer has: its binary logs up to now are purged.
    mariadb_server.root_execute("FLUSH BINARY LOGS")
    newest = mariadb_server.root_execute("SHOW BINARY LOGS")[-1][0]
    mariadb_server.root_execute(f"PURGE BINARY LOGS TO '{newest}'")
    await store.write_note("cdc", "0 0-1-1")
    await invalidator.start()

    async def moved() -> bool:
        return (await store.inspect("user:1")).epoch > epoch
    assert await poll(moved, 10)
    text = await invalidator.metrics()
    assert re.search(r'^cachegate_invalidator_epoch_moves_total\{reason="purged"\} 1\.0$', text, re.M), text
    assert "cannot continue from" in invalidator.log.read_text()
    # And it follows again: a change made now is applied.
    user = stack.ids[0]
    sql(stack.config, "UPDATE users SET title = 'after', version = version + 1 WHERE id = %s", (user,))
    version = sql_one(stack.config, "SELECT version FROM users WHERE id = %s", (user,))[0]
    async with aiohttp.ClientSession() as http:
        await trusted(http, stack)
        headers = {"Authorization": stack.authorization}
        async with http.get(stack.base + f"/users/{user}", headers=headers) as resp:
            assert (await resp.json())["version"] == version
    await store._redis.aclose()


async def test_redis_away_holds_the_position_and_applies_the_change_when_it_returns(
        real_stack, invalidator_process, redis_factory):
    redis = redis_factory()
    stack = await real_stack({**ON, "redis": {"url": redis.url}}, users=10)
    invalidator = invalidator_process(stack.config)
    await invalidator.start()
    user = stack.ids[4]
    async with aiohttp.ClientSession() as http:
        await trusted(http, stack)
        for _ in range(2):
            await _cache_status(http, stack, f"/users/{user}")
        assert "hit" in await _cache_status(http, stack, f"/users/{user}")
        os.kill(redis.pid, signal.SIGSTOP)
        try:
            sql(stack.config, "UPDATE users SET title = 'held', version = version + 1 WHERE id = %s", (user,))
            after = sql_one(stack.config, "SELECT @@gtid_binlog_pos")[0]

            async def retrying() -> bool:
                found = re.search(r"^cachegate_invalidator_redis_retries_total ([0-9.]+)$",
                                  await invalidator.metrics(), re.M)
                return found is not None and float(found.group(1)) >= 2
            assert await poll(retrying, 10)
            health = await invalidator.health()
        finally:
            os.kill(redis.pid, signal.SIGCONT)
        version = sql_one(stack.config, "SELECT version FROM users WHERE id = %s", (user,))[0]
        assert health["position"] != after  # held before the change whose actions Redis has not taken
        seen: list[str] = []

        async def current() -> bool:
            async with http.get(stack.base + f"/users/{user}",
                                headers={"Authorization": stack.authorization}) as resp:
                body = await resp.json()
                seen.append(resp.headers.get("Cache-Status", ""))
                return body["version"] == version and "hit" in seen[-1] and "fwd=" not in seen[-1]
        assert await poll(current, 15), seen[-3:]
        text = await invalidator.metrics()
        # One epoch move only: its first start; a batch that waited for Redis is no lost write.
        moves = r'^cachegate_invalidator_epoch_moves_total\{reason="no-position"\} 1\.0$'
        assert re.search(moves, text, re.M)
        assert "purged" not in "".join(re.findall(r"^cachegate_invalidator_epoch_moves_total.*$", text, re.M))


async def test_a_rule_naming_a_column_the_table_lacks_stops_it_and_the_gateway_bypasses(
        real_stack, invalidator_process):
    rules = [{"table": "users", "keys": ["user:{nickname}"]}]
    stack = await real_stack({**ON, "invalidations": rules}, users=5)
    invalidator = invalidator_process(stack.config)
    await invalidator.start()
    async with aiohttp.ClientSession() as http:
        await trusted(http, stack)
        sql(stack.config, "UPDATE users SET title = 'x', version = version + 1 WHERE id = %s",
            (stack.ids[0],))
        assert await poll(lambda: _exited(invalidator), 10)
        assert invalidator.proc.returncode == 2
        assert "table users has no column nickname" in invalidator.log.read_text()

        async def bypassed() -> bool:
            return "INVALIDATOR-BEHIND" in await _cache_status(http, stack, f"/users/{stack.ids[0]}")
        bound = stack.config.invalidator.lag_bound + 2 * stack.config.invalidator.check_interval
        assert await poll(bypassed, bound + 5)


async def _exited(invalidator) -> bool:
    return invalidator.proc.poll() is not None
