"""`cachegate proxy --workers N`: N processes share the port, the master's admin calls reach every one,
with the same rules as one process (proxy/control.py)."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp
import pytest
import yaml

from stack.admin_client import AdminError, admin_call
from stack.net import http_ok
from stack.process import wait_until
from tests.support.redisclients import admin_client
from tests.support.servedby import request_on_new_connection

pytestmark = pytest.mark.slow


@pytest.fixture
async def two_workers(make_world):
    world = await make_world(as_file=True)
    # The in-process proxy of the world is not used here: the workers listen on a port of their own.
    await world.proxy.close()
    await world.admin.close()
    proc = subprocess.Popen([sys.executable, "-m", "cachegate", "proxy", "--workers", "2",
                             "--config", str(world.config.path)], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    port, admin_port = world.config.proxy.port, world.config.proxy.admin_port

    def admin_answers() -> bool:
        try:
            return bool(admin_call(world.config, "GET", "/-/admin/state", timeout=1.0))
        except AdminError:
            return False

    try:
        assert await asyncio.to_thread(wait_until, lambda: http_ok("127.0.0.1", port), 30)
        assert await asyncio.to_thread(wait_until, admin_answers, 30)
        yield world, f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


async def round_of(port: int, workers: list[int], path: str, headers: dict[str, str] | None = None,
                   method: str = "GET", json: dict | None = None,
                   count: int = 30) -> list[tuple[int | None, int, str]]:
    """(serving worker pid, status, Cache-Status) of `count` requests, each on a new connection so that the
    kernel spreads them over the workers."""
    seen = []
    for _ in range(count):
        status, answer, pid = await request_on_new_connection(port, method, path, workers, headers=headers,
                                                              json=json)
        seen.append((pid, status, answer["cache-status"]))
    return seen


def every_worker_said(seen: list[tuple[int | None, int, str]], workers: list[int], check) -> bool:
    """Each worker served some of `seen`, and every answer passes `check(status, cache_status)`."""
    return {pid for pid, _, _ in seen} == set(workers) and all(check(st, cs) for _, st, cs in seen)


async def workers_of(admin: str, token: dict[str, str]) -> list[int]:
    async with aiohttp.ClientSession() as http:
        async with http.get(admin + "/-/admin/state", headers=token) as resp:
            workers = (await resp.json())["workers"]
    assert len(workers) == 2
    return workers


async def test_workers_share_the_port_and_follow_the_master(two_workers):
    world, base, admin = two_workers
    port = world.config.proxy.port
    token = {"Authorization": f"Bearer {world.config.proxy.admin_token()}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(admin + "/-/admin/state") as resp:
            assert resp.status == 401  # the master's listener asks for the token too
        workers = await workers_of(admin, token)
        async with http.post(base + "/users", json={
                "login": "wendy", "password": "correct-horse-battery", "first_name": "Wendy",
                "last_name": "W",
                "email": "wendy@example.com", "title": "x"}) as resp:
            uid = (await resp.json())["id"]
        credentials = {"login": "wendy", "password": "correct-horse-battery"}
        async with http.post(base + "/auth/token", json=credentials) as r:
            auth = {"Authorization": "Bearer " + (await r.json())["access_token"]}

        async def every_worker(check) -> bool:
            return every_worker_said(await round_of(port, workers, f"/users/{uid}", auth), workers, check)

        # Both workers serve the port, and they share one cache: each of them answers hits.
        await until(lambda: every_worker(lambda st, cs: st == 200), "both workers serving")
        async with http.post(admin + "/-/admin/cache", json={"enabled": False}, headers=token) as resp:
            assert resp.status == 200
        # Signals are delivered asynchronously: poll until both workers answer with the cache off.
        await until(lambda: every_worker(lambda st, cs: st == 200 and cs == CACHE_OFF), "both workers off")
        async with http.post(admin + "/-/admin/cache", json={"enabled": True}, headers=token) as resp:
            assert resp.status == 200
        await until(lambda: every_worker(lambda st, cs: st == 200 and cs != CACHE_OFF), "both workers on")
        await until(lambda: every_worker(lambda st, cs: st == 200 and cs.startswith("cachegate; hit")),
                    "both workers hitting the one cache")


CACHE_OFF = "cachegate; fwd=bypass; detail=CACHE-OFF"


async def until(probe, what: str, deadline: float = 20.0) -> None:
    """Poll `probe()` until it is true; `what` names the condition when it never is (a hang guard)."""
    stop = asyncio.get_running_loop().time() + deadline
    while not await probe():
        assert asyncio.get_running_loop().time() < stop, f"never reached: {what}"
        await asyncio.sleep(0.05)


async def test_cache_on_moves_the_epoch_once_however_many_workers(two_workers, redis_server):
    """Regression: the master moved the epoch, then each worker moved it again (N+1 moves for one switch)."""
    world, base, admin = two_workers
    token = {"Authorization": f"Bearer {world.config.proxy.admin_token()}"}
    workers = await workers_of(admin, token)
    observer = admin_client(redis_server)
    epoch_key = f"{world.config.cache.prefix}:epoch"
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(admin + "/-/admin/cache", json={"enabled": False}, headers=token) as resp:
                assert resp.status == 200
            await observer.set(epoch_key, 100)  # counted from here: one move is 101
            before = int(await observer.get(epoch_key) or 0)
            async with http.post(admin + "/-/admin/cache", json={"enabled": True}, headers=token) as resp:
                assert resp.status == 200

            async def every_worker_is_on() -> bool:
                seen = await round_of(world.config.proxy.port, workers, "/auth/token", method="POST",
                                      json={"login": "x", "password": "y"})
                for _, _, status in seen:
                    assert status in (PASSTHROUGH, CACHE_OFF), status
                return every_worker_said(seen, workers, lambda st, cs: cs == PASSTHROUGH)

            await until(every_worker_is_on, "both workers with the cache on")
        assert int(await observer.get(epoch_key) or 0) == before + 1
    finally:
        await observer.aclose()


PASSTHROUGH = "cachegate; fwd=bypass; detail=passthrough"


async def test_the_master_refuses_a_process_setting_as_one_process_does(two_workers):
    """Regression: the master skipped the restart-needed checks and counted generations workers refused."""
    world, _, admin = two_workers
    token = {"Authorization": f"Bearer {world.config.proxy.admin_token()}"}
    path = world.config.path
    data = yaml.safe_load(path.read_text())
    data["redis"]["timeout"] = "400ms"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    async with aiohttp.ClientSession(headers=token) as http:
        async with http.post(admin + "/-/admin/reload") as resp:
            assert resp.status == 422
            assert "redis.timeout: changed from 0.25 to 0.4" in (await resp.json())["error"]["message"]
        async with http.get(admin + "/-/admin/state") as resp:
            assert (await resp.json())["generation"] == 1
        data["redis"]["timeout"] = "250ms"
        data["cache"]["fill_wait"] = "3s"  # a setting of the generation: applied
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        async with http.post(admin + "/-/admin/reload") as resp:
            assert resp.status == 200 and (await resp.json())["generation"] == 2


async def test_sigusr1_to_the_master_reopens_every_workers_access_log(two_workers):
    """logrotate signals the pid in the pid file, the master's: it passes SIGUSR1 on to every worker."""
    world, base, admin = two_workers
    token = {"Authorization": f"Bearer {world.config.proxy.admin_token()}"}
    workers = await workers_of(admin, token)
    access = world.config.logging.access_file("proxy")
    rotated = access.with_name(access.name + ".1")
    master = admin_call(world.config, "GET", "/-/admin/state")["pid"]
    rounds = iter(range(1_000_000))

    def ids_in(path) -> set[str]:
        found = path.read_text().splitlines() if path.exists() else []
        return {line.split()[2] for line in found if " access " in line}

    async def logged_round() -> dict[str, tuple[int | None, str]]:
        """20 requests on new connections, each with an id of its own: id -> (serving pid, file it is in),
        once every line is written (the lines are buffered, and written once a second)."""
        served: dict[str, int | None] = {}
        for _ in range(20):
            rid = f"sigusr1-{next(rounds)}"
            status, _, served[rid] = await request_on_new_connection(
                world.config.proxy.port, "GET", "/nowhere", workers, headers={"X-Request-Id": rid})
            assert status == 404
        where: dict[str, tuple[int | None, str]] = {}

        async def all_written() -> bool:
            new, old = ids_in(access), ids_in(rotated)
            where.update({rid: (pid, "new" if rid in new else "rotated") for rid, pid in served.items()
                          if rid in new or rid in old})
            return len(where) == len(served)
        await until(all_written, "every access line written", deadline=20)
        return where

    async def every_worker_writes_the_new_file() -> bool:
        where = await logged_round()
        return ({pid for pid, _ in where.values()} == set(workers)
                and {place for _, place in where.values()} == {"new"})

    await until(every_worker_writes_the_new_file, "both workers writing the access log", deadline=30)
    access.rename(rotated)
    os.kill(master, signal.SIGUSR1)
    await until(every_worker_writes_the_new_file, "both workers writing the reopened file", deadline=30)


def requests_total(text: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("cachegate_requests_total{"))


async def test_a_scrape_sees_the_requests_of_every_worker(two_workers):
    """With workers, whichever worker a scrape reaches answers for all of them: the sum of
    cachegate_requests_total is every request sent (each on a new connection, so both workers get some),
    and promtool accepts the merged page."""
    world, base, _ = two_workers
    sent = 120
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
        for i in range(sent):
            async with session.get(f"{base}/users/{i + 1}") as resp:  # no token: a 401, counted once
                assert resp.status == 401
        deadline = asyncio.get_running_loop().time() + 15
        while True:
            async with session.get(f"{base}/-/metrics") as resp:
                text = await resp.text()
            if requests_total(text) == sent or asyncio.get_running_loop().time() > deadline:
                break
            await asyncio.sleep(0.1)
    assert requests_total(text) == sent
    assert len(list(world.config.stack.data_dir.glob("run/proxy-*-metrics/*.prom"))) == 2
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0 and not checked.stderr.strip(), checked.stdout + checked.stderr
