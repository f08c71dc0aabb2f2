"""A real gateway SIGKILLed after its writes committed, before they answered: misses, never old entries."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, AsyncIterator

import aiohttp
import pytest

from cachegate.config import Config
from proxy.metrics import Metrics
from proxy.records import WRITING
from proxy.store import CacheStore
from stack.net import http_ok
from stack.process import wait_until
from tests.support.dbrows import fetch_rows
from tests.support.records import fence_of, redis_ms, wait_for_redis_time
from tests.support.redisclients import gateway_client

pytestmark = [pytest.mark.slow, pytest.mark.fault]
PASSWORD = "correct-horse-battery"
STORED = "cachegate; fwd=miss; fwd-status=200; stored"


@asynccontextmanager
async def gateway(config: Config, log: Path) -> AsyncIterator[subprocess.Popen]:
    """`cachegate proxy` as a process of its own, on the config's port; stopped by pid if still alive."""
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "cachegate", "proxy", "--config", str(config.path)],
                                start_new_session=True, stdout=out, stderr=out)
    try:
        up = await asyncio.to_thread(wait_until, lambda: http_ok("127.0.0.1", config.proxy.port), 60)
        assert up, log.read_text()[-2000:]
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
        try:
            await asyncio.to_thread(proc.wait, 30)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise AssertionError("the gateway did not exit within 30 s of SIGTERM; its log ends:\n"
                                 + log.read_text()[-3000:]) from None


class Api:
    """The public API of whichever gateway listens on the config's port, over plain HTTP."""

    def __init__(self, http: aiohttp.ClientSession, config: Config) -> None:
        self.http, self.base = http, f"http://127.0.0.1:{config.proxy.port}"
        self.auth: dict[str, str] = {}

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, dict, Any]:
        async with self.http.request(method, self.base + path, headers=self.auth, **kwargs) as resp:
            return resp.status, dict(resp.headers), await resp.json()

    async def sign_up(self, login: str) -> int:
        status, _, user = await self.call("POST", "/users", json={
            "login": login, "password": PASSWORD, "first_name": "Crash", "last_name": "Crashtest",
            "email": f"{login}@example.com", "title": "before"})
        assert status == 201, user
        status, _, token = await self.call("POST", "/auth/token", json={"login": login, "password": PASSWORD})
        assert status == 200, token
        self.auth = {"Authorization": "Bearer " + token["access_token"]}
        return user["id"]

    async def trip(self) -> int:
        _, _, path = await self.call("POST", "/paths", json={"start_point": "A", "end_point": "B"})
        status, _, trip = await self.call("POST", "/trips", json={
            "path_id": path["id"], "name": "Crash", "starts_at": "2030-06-01T09:00:00Z",
            "finishes_at": "2030-06-02T09:00:00Z"})
        assert status == 201, trip
        return trip["id"]


async def db_versions(config: Config, uid: int, trip: int) -> dict[str, int]:
    (user,) = await fetch_rows(config, "SELECT version FROM users WHERE id = %s", (uid,))
    (row,) = await fetch_rows(config, "SELECT version FROM trips WHERE id = %s", (trip,))
    return {"user": user[0], "trip": row[0]}


def served(path: str, body: Any, uid: int) -> int:
    """The version of the user or trip an answer shows (in a search list: the user's item)."""
    if path.startswith("/users/search"):
        return next(item["version"] for item in body["items"] if item["id"] == uid)
    return body["version"]


async def test_a_gateway_killed_after_the_commits_leaves_no_old_entry(make_world, redis_server, tmp_path):
    """Issue 7: a user's PATCH (its key and a tag) and a trip join (two other keys) commit, their answers are
    held, and the gateway is SIGKILLed. Every affected key, read through a fresh gateway and in Redis itself,
    is a miss or the new version, never the old one; after the fence's lifetime it fills from the database."""
    world = await make_world({"proxy": {"upstream_timeout": "4s"}}, as_file=True)
    await world.proxy.close()   # the gateways here are processes of their own, on the same port
    await world.admin.close()
    config, log = world.config, tmp_path / "gateway.log"
    redis = gateway_client(redis_server, url=config.redis.url)
    store = CacheStore(redis, prefix=config.cache.prefix, timeout=2.0, breaker_failures=100,
                       breaker_reset=1.0, metrics=Metrics())
    hold = world.backends.hold_writes = asyncio.Event()
    hold.set()   # (answers flow until the writes under test)
    writes: list[asyncio.Task] = []
    try:
        async with aiohttp.ClientSession() as http:
            api = Api(http, config)
            async with gateway(config, log) as first:
                uid, trip = await api.sign_up("crash1"), await api.trip()
                reads = {f"user:{uid}": f"/users/{uid}",
                         "user-search:last_name=Crashtest": "/users/search?last_name=Crashtest",
                         f"trip:{trip}": f"/trips/{trip}", f"trip-members:{trip}": f"/trips/{trip}/members"}
                old = {}
                for key, path in reads.items():
                    await api.call("GET", path)
                    status, headers, body = await api.call("GET", path)
                    assert status == 200 and headers["Cache-Status"].startswith("cachegate; hit"), key
                    old[key] = served(path, body, uid)
                before = await db_versions(config, uid, trip)
                hold.clear()
                started = await redis_ms(redis)
                writes = [asyncio.create_task(api.call("PATCH", f"/users/{uid}", json={"title": "after"})),
                          asyncio.create_task(api.call("POST", f"/trips/{trip}/members"))]
                deadline = time.monotonic() + 10
                while True:
                    now = await db_versions(config, uid, trip)
                    if all(now[k] > before[k] for k in before):
                        break
                    assert time.monotonic() < deadline, "the backends never committed"
                    await asyncio.sleep(0.02)
                committed = await redis_ms(redis)
                os.kill(first.pid, signal.SIGKILL)   # after the commits, before the answers reach Redis
                await asyncio.to_thread(first.wait, 10)
                for task in writes:  # cut off by the kill, not answered by the gateway's own timeout
                    with pytest.raises(aiohttp.ClientError):
                        await task
            new = {f"user:{uid}": now["user"], "user-search:last_name=Crashtest": now["user"],
                   f"trip:{trip}": now["trip"], f"trip-members:{trip}": now["trip"]}
            assert all(new[key] == old[key] + 1 for key in new)
            async with gateway(config, log):
                for key, path in reads.items():   # a fresh gateway, while the fences are live
                    status, headers, body = await api.call("GET", path)
                    assert status == 200 and served(path, body, uid) == new[key], (key, headers)
                    assert "hit" not in headers["Cache-Status"], (key, headers)
                lifetime = round(config.cache.write_fence * 1000)
                assert lifetime == 4000 + 2 * 250 + 1000   # upstream_timeout + 2 x redis.timeout + 1s, in ms
                deadlines = []
                for key in (f"user:{uid}", f"trip:{trip}", f"trip-members:{trip}"):
                    assert (await store.lookup(key)).entry is None, key
                    kind, _, writers = fence_of(await redis.get(store.entry_key(key)))
                    assert kind == WRITING and len(writers) == 1, key
                    deadlines.append(writers[0][1])
                tag = await redis.zrange(store.writers_key("user-lists"), 0, -1, withscores=True)
                assert len(tag) == 1
                deadlines.append(int(tag[0][1]))
                for at in deadlines:   # the bound: each fence lasts its lifetime from when it was set
                    assert started + lifetime <= at <= committed + lifetime
                await wait_for_redis_time(redis, max(deadlines))
                for key, path in reads.items():   # after the lifetime: filled from the database, then hits
                    seen = []
                    for _ in range(3):
                        status, headers, body = await api.call("GET", path)
                        assert status == 200 and served(path, body, uid) == new[key], (key, headers)
                        seen.append(headers["Cache-Status"])
                        if seen[-1].startswith("cachegate; hit"):
                            break
                    if key.startswith("user-search:"):
                        # A tag's expired write counts as its invalidation: one refused fill at most.
                        assert seen[-1].startswith("cachegate; hit"), (key, seen)
                    else:   # the next read reopens the key and fills it
                        assert seen[0] == STORED and seen[1].startswith("cachegate; hit"), (key, seen)
                        assert (await store.lookup(key)).entry.version == new[key], key
    finally:
        hold.set()
        for task in writes:
            task.cancel()
        await asyncio.gather(*writes, return_exceptions=True)
        await redis.aclose()
