"""`cachegate admin ...` against a real `cachegate proxy` process: each verb works, a wrong token refused."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys

import aiohttp
import pytest

from stack.net import http_ok
from stack.process import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
async def proxy_process(make_world):
    """The world's services, and the proxy as its own process reading the world's config file."""
    world = await make_world(as_file=True)
    await world.proxy.close()  # the in-process proxy and admin listener give their ports to the process
    await world.admin.close()
    proc = subprocess.Popen([sys.executable, "-m", "cachegate", "proxy", "--config", str(world.config.path)],
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env=_env())
    try:
        assert await asyncio.to_thread(wait_until, lambda: http_ok("127.0.0.1", world.config.proxy.port), 30)
        yield world
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)


def _env(**extra: str) -> dict[str, str]:
    """The developer's CACHEGATE_* variables stay out: the config file alone decides."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith("CACHEGATE")}, **extra}


async def cachegate(world, *args: str, **env: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "cachegate", *args, "--config", str(world.config.path), env=_env(**env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    return proc.returncode, out.decode(), err.decode()


async def test_admin_verbs_drive_the_running_proxy(proxy_process):
    """Regression (issue 7): README's admin calls were bare curls that any local process could make."""
    world = proxy_process
    base = f"http://127.0.0.1:{world.config.proxy.port}"
    async with aiohttp.ClientSession() as http:
        async with http.post(base + "/users", json={
                "login": "vera", "password": "correct-horse-battery", "first_name": "Vera", "last_name": "V",
                "email": "vera@example.com", "title": "x"}) as resp:
            uid = (await resp.json())["id"]
        login = {"login": "vera", "password": "correct-horse-battery"}
        async with http.post(base + "/auth/token", json=login) as resp:
            auth = {"Authorization": "Bearer " + (await resp.json())["access_token"]}

        async def cache_status() -> str:
            async with http.get(f"{base}/users/{uid}", headers=auth) as resp:
                assert resp.status == 200
                return resp.headers["Cache-Status"]

        await cache_status()
        assert "hit" in await cache_status()

        code, out, err = await cachegate(world, "admin", "state")
        assert code == 0, err
        state = json.loads(out)
        assert state["cache_enabled"] is True and state["generation"] == 1

        assert await cachegate(world, "admin", "cache", "off") == (0, "cache off\n", "")
        assert await cache_status() == "cachegate; fwd=bypass; detail=CACHE-OFF"
        assert json.loads((await cachegate(world, "admin", "state"))[1])["cache_enabled"] is False
        assert await cachegate(world, "admin", "cache", "on") == (0, "cache on\n", "")
        assert "fwd=miss" in await cache_status()  # a new epoch: nothing from before is served
        assert "hit" in await cache_status()

        purged = await cachegate(world, "admin", "purge", "--key", f"user:{uid}")
        assert purged == (0, f"purged key user:{uid}: 1 entry removed\n", "")
        assert "fwd=miss" in await cache_status()
        assert (await cachegate(world, "admin", "purge", "--tag", "user-lists"))[0] == 0
        assert "hit" in await cache_status()
        purged = await cachegate(world, "admin", "purge", "--url", f"/users/{uid}")
        assert purged == (0, f"purged url /users/{uid} (key user:{uid}): 1 entry removed\n", "")
        assert "fwd=miss" in await cache_status()
        purged = await cachegate(world, "admin", "purge", "--prefix", "user:")
        assert purged == (0, "purged prefix user:: 1 entry removed\n", "")
        code, _, err = await cachegate(world, "admin", "purge", "--key", "user:*")
        assert code == 1 and '{"prefix": "user:"}' in err and "Traceback" not in err

        await cache_status()
        code, out, err = await cachegate(world, "explain", "GET", f"/users/{uid}")
        assert code == 0, err
        assert f"rule        routes[4] GET /users/{{id:int}}: read-through, upstream users" in out
        assert f"key         user:{uid}   (ttl 300s, negative_ttl 10s, grace 300s)" in out
        assert "entry       entry, version 1, status 200" in out and f"tags user-{uid}" in out
        assert "served      yes: fresh (a hit)" in out
        code, out, _ = await cachegate(world, "explain", "GET", "/users/me", "--caller", str(uid), "--json")
        assert code == 0 and json.loads(out)["key"] == f"user-me:{uid}"
        code, out, _ = await cachegate(world, "explain", "DELETE", "/nowhere")
        assert (code, out) == (0, "DELETE /nowhere: refused before the cache with 404 not_found: "
                                  "no route for /nowhere\n")
        assert await cachegate(world, "admin", "reload") == (0, "reloaded: config generation 2\n", "")

        code, out, err = await cachegate(world, "admin", "cache", "off",
                                         CACHEGATE_ADMIN_TOKEN="a-wrong-admin-token")
        assert code == 1 and out == ""
        assert "refused the token" in err and "Traceback" not in err
        assert "hit" in await cache_status()  # the refused call changed nothing
