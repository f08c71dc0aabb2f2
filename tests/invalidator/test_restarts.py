"""The invalidator SIGKILLed in the middle of a stream of SQL writes and started again loses no change; a
replay from an older position changes nothing that is current; a purged position moves the epoch."""
from __future__ import annotations

import asyncio
import re

import aiohttp
import pytest

from tests.support.invalidatorproc import sql, sql_one, store_for, trusted
from tests.support.polling import poll

pytestmark = [pytest.mark.slow, pytest.mark.fault]
ON = {"invalidator": {"enabled": True}}


async def _status(http, stack, path):
    async with http.get(stack.base + path, headers={"Authorization": stack.authorization}) as resp:
        return resp.status, await resp.json(), resp.headers.get("Cache-Status", "")


async def _all_current(http, stack, users, versions) -> bool:
    for user in users:
        status, body, _ = await _status(http, stack, f"/users/{user}")
        if status != 200 or body["version"] != versions[user]:
            return False
    return True


def _metric(text: str, name: str) -> float:
    found = re.search(rf"^{re.escape(name)} ([0-9.e+]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_killed_mid_stream_loses_nothing_and_a_replay_is_harmless(real_stack, invalidator_process,
                                                                       redis_server):
    stack = await real_stack(ON, users=40)
    invalidator = invalidator_process(stack.config)
    await invalidator.start()
    users = stack.ids[:30]
    versions = {}
    async with aiohttp.ClientSession() as http:
        await trusted(http, stack)
        for user in users:  # every profile cached
            for _ in range(2):
                status, body, _ = await _status(http, stack, f"/users/{user}")
            versions[user] = body["version"]
        early = (await invalidator.health())["position"]

        stop = asyncio.Event()

        async def writer() -> None:
            round_ = 0
            while not stop.is_set():
                round_ += 1
                for user in users:
                    await asyncio.to_thread(sql, stack.config, "UPDATE users SET title = %s, "
                                            "version = version + 1 WHERE id = %s", (f"t{round_}", user))
                    versions[user] += 1
        writing = asyncio.create_task(writer())

        async def some_applied() -> bool:
            return _metric(await invalidator.metrics(),
                           'cachegate_invalidator_events_total{kind="update",table="users"}') >= 20
        assert await poll(some_applied, 20)
        invalidator.kill()  # mid-stream: actions applied past the last saved position are lost with it
        rows_before = sum(versions.values())

        async def more_written() -> bool:
            return sum(versions.values()) >= rows_before + 2 * len(users)
        assert await poll(more_written, 20)  # changes made while it is down
        await invalidator.start()
        assert await poll(more_written_again(versions, rows_before), 20)
        stop.set()
        await writing
        # Every row changed before, during and after the outage: the gateway serves its last version.
        assert await poll(lambda: _all_current(http, stack, users, versions), 10)
        final = {u: sql_one(stack.config, "SELECT version FROM users WHERE id = %s", (u,))[0] for u in users}
        assert final == versions

        # Cached again at the last versions; then a replay of everything from the early position.
        await trusted(http, stack)
        for user in users:
            await _status(http, stack, f"/users/{user}")
        for user in users:
            _, _, cache = await _status(http, stack, f"/users/{user}")
            assert "hit" in cache and "fwd=" not in cache, cache
        invalidator.stop()
        store = store_for(stack.config, redis_server)
        await store.write_note("cdc", f"0 {early}")
        await invalidator.start()
        target = sql_one(stack.config, "SELECT @@gtid_binlog_pos")[0]

        async def replayed() -> bool:
            position = (await invalidator.health())["position"]
            return all(part in position.split(",") for part in target.split(","))
        assert await poll(replayed, 20)
        text = await invalidator.metrics()
        assert _metric(text, 'cachegate_invalidator_actions_total{action="key",outcome="current"}') > 0
        await trusted(http, stack)  # the gateway has read that it caught up
        for user in users:  # the replay dropped none of the current entries
            _, body, cache = await _status(http, stack, f"/users/{user}")
            assert body["version"] == versions[user] and "hit" in cache and "fwd=" not in cache, cache
        await store._redis.aclose()


def more_written_again(versions, rows_before):
    async def check() -> bool:
        return sum(versions.values()) >= rows_before + 4 * len(versions)
    return check
