"""`cachegate proxy --workers N`: N processes share the port, the master's admin calls reach every one."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys

import aiohttp
import pytest

from stack.admin_client import AdminError, admin_call
from stack.net import http_ok
from stack.process import wait_until

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


async def test_workers_share_the_port_and_follow_the_master(two_workers):
    world, base, admin = two_workers
    token = {"Authorization": f"Bearer {world.config.proxy.admin_token()}"}
    async with aiohttp.ClientSession() as http:
        async with http.get(admin + "/-/admin/state") as resp:
            assert resp.status == 401  # the master's listener asks for the token too
        async with http.get(admin + "/-/admin/state", headers=token) as resp:
            state = await resp.json()
        assert len(state["workers"]) == 2
        async with http.post(base + "/users", json={
                "login": "wendy", "password": "correct-horse-battery", "first_name": "Wendy", "last_name": "W",
                "email": "wendy@example.com", "title": "x"}) as resp:
            uid = (await resp.json())["id"]
        async with http.post(base + "/auth/token", json={"login": "wendy", "password": "correct-horse-battery"}) as r:
            auth = {"Authorization": "Bearer " + (await r.json())["access_token"]}

        async def statuses() -> set[str]:
            seen = set()
            for _ in range(30):  # new connections, so the kernel spreads them over both workers
                async with aiohttp.ClientSession() as one:
                    async with one.get(f"{base}/users/{uid}", headers=auth) as resp:
                        assert resp.status == 200
                        seen.add(resp.headers["Cache-Status"])
            return seen

        assert any("hit" in s for s in await statuses())
        async with http.post(admin + "/-/admin/cache", json={"enabled": False}, headers=token) as resp:
            assert resp.status == 200
        await asyncio.sleep(0.5)  # signals are delivered asynchronously
        assert await statuses() == {"cachegate; fwd=bypass; detail=CACHE-OFF"}
        async with http.post(admin + "/-/admin/cache", json={"enabled": True}, headers=token) as resp:
            assert resp.status == 200
        await asyncio.sleep(0.5)
        assert "cachegate; fwd=bypass; detail=CACHE-OFF" not in await statuses()
