"""Logs people can use, from real processes: one format per file, JSON access lines, the services' access
logs, a log level, and every file reopened on SIGUSR1 so that logrotate works."""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import aiohttp
import pytest

from stack.net import http_ok, port_open
from stack.process import wait_until
from tests.e2e.test_ops import poll

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]


def env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("CACHEGATE")}


@asynccontextmanager
async def process(argv: list[str], log: Path, ready) -> AsyncIterator[subprocess.Popen]:
    """A process of ours with stderr and stdout appended to `log`, as the launcher runs it."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=out, stdin=subprocess.DEVNULL,
                                start_new_session=True, env=env())
    try:
        assert await asyncio.to_thread(wait_until, lambda: proc.poll() is not None or ready(), 30)
        assert proc.poll() is None, log.read_text()[-3000:]
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 30)


@asynccontextmanager
async def stack(make_world, overrides: dict) -> AsyncIterator[tuple]:
    """The proxy and the users service as processes (paths and trips in-process), logging in `logs/`."""
    world = await make_world(overrides, as_file=True)
    await world.proxy.close()
    await world.admin.close()
    await world.backends.servers["users"].close()
    config, logs = world.config, world.config.stack.data_dir / "logs"
    users = config.services["users"]
    service = [sys.executable, "-m", "backends.runner", "users", str(config.path)]
    async with process(service, logs / "users.log",
                       lambda: port_open("127.0.0.1", users.port, timeout=0.2)) as backend:
        async with process([sys.executable, "-m", "proxy", "--config", str(config.path)], logs / "proxy.log",
                           lambda: http_ok("127.0.0.1", config.proxy.port)) as proxy:
            yield world, logs, proxy, backend


async def some_requests(world, http: aiohttp.ClientSession, login: str) -> int:
    base = f"http://127.0.0.1:{world.config.proxy.port}"
    body = {"login": login, "password": "correct-horse-battery", "first_name": "L", "last_name": "Og",
            "email": f"{login}@example.com", "title": "x"}
    async with http.post(base + "/users", json=body) as resp:
        uid = (await resp.json())["id"]
    async with http.post(base + "/auth/token", json={"login": login, "password": body["password"]}) as resp:
        auth = {"Authorization": "Bearer " + (await resp.json())["access_token"]}
    for _ in range(2):
        async with http.get(f"{base}/users/{uid}", headers=auth) as resp:
            assert resp.status == 200
    return uid


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def test_json_access_lines_one_format_per_file_and_the_services_log_too(make_world):
    async with stack(make_world, {"logging": {"access_format": "json"}}) as (world, logs, _, _):
        async with aiohttp.ClientSession() as http:
            uid = await some_requests(world, http, "logan")
        await poll(lambda: _at_least(logs / "proxy-access.log", 4))
        # Not a count of lines: the proxy's readiness checks of /-/health are logged there too.
        await poll(lambda: _has(logs / "users-access.log", f'"/users/{uid}"'), 30)
        proxy = [json.loads(line) for line in lines(logs / "proxy-access.log")]  # every line is JSON
        assert set(proxy[0]) == {"time", "request_id", "method", "target", "status", "route", "cache",
                                 "upstream_ms", "total_ms"}
        read = [p for p in proxy if p["target"] == f"/users/{uid}"]
        assert [p["cache"].split(";")[1].strip() for p in read] == ["fwd=miss", "hit"]
        assert read[0]["upstream_ms"] > 0 and read[1]["upstream_ms"] is None
        users = [json.loads(line) for line in lines(logs / "users-access.log")]
        assert {u["service"] for u in users} == {"users"}
        # The service's line of the miss carries the id the gateway gave the request.
        served = [u for u in users if u["target"] == f"/users/{uid}"]
        assert [u["request_id"] for u in served] == [read[0]["request_id"]] and served[0]["status"] == 200
        own = lines(logs / "proxy.log")
        assert own and not any(" access " in line or line.startswith("{") for line in own)
        assert any(" INFO " in line and "proxy on http" in line for line in own)


async def _has(path: Path, text: str) -> bool:
    return any(text in line for line in lines(path))


async def _at_least(path: Path, count: int) -> bool:
    return len(lines(path)) >= count


async def test_logrotate_with_the_shipped_config_rotates_every_log_file(make_world, tmp_path):
    """docs/logrotate.conf run by the real logrotate: it moves the files away and signals SIGUSR1 by pid
    file; each process opens its files again and goes on in new ones."""
    logrotate = shutil.which("logrotate") or shutil.which("logrotate", path="/usr/sbin")
    assert logrotate, "logrotate is missing: `./run test` installs it (Debian package)"
    async with stack(make_world, {}) as (world, logs, proxy, backend):
        data = world.config.stack.data_dir
        (data / "run").mkdir(exist_ok=True)
        for name, proc in (("proxy", proxy), ("users", backend)):  # as the launcher writes them
            (data / "run" / f"{name}.pid").write_text(f"{proc.pid}\n")
        conf = tmp_path / "logrotate.conf"
        shipped = (REPO / "docs" / "logrotate.conf").read_text()
        conf.write_text(shipped.replace("/srv/cachegate/.stack", str(data)))
        conf.chmod(0o644)
        async with aiohttp.ClientSession() as http:
            await some_requests(world, http, "rota")
            names = ("proxy.log", "proxy-access.log", "users.log", "users-access.log")
            await poll(lambda: _at_least(logs / "proxy-access.log", 4))
            await poll(lambda: _at_least(logs / "users-access.log", 3))
            rotated = subprocess.run([logrotate, "--force", "--state", str(tmp_path / "state"), str(conf)],
                                     capture_output=True, text=True, timeout=60)
            assert rotated.returncode == 0, rotated.stdout + rotated.stderr
            assert all(lines(logs / f"{name}.1") for name in names)  # moved away, with what they held
            await poll(lambda: _has(logs / "proxy.log", "log files reopened"))
            await poll(lambda: _has(logs / "users.log", "log files reopened"))
            # Each process says so after it reopened (on its one loop, where every flush runs too): from
            # now on nothing may reach the moved files.
            before = {name: len(lines(logs / f"{name}.1")) for name in names}
            await some_requests(world, http, "tion")
            await poll(lambda: _at_least(logs / "proxy-access.log", 4))
            await poll(lambda: _at_least(logs / "users-access.log", 3))
        assert all(" access " in line for line in lines(logs / "proxy-access.log"))
        assert {name: len(lines(logs / f"{name}.1")) for name in names} == before  # the old files rest


async def _has(path: Path, text: str) -> bool:
    return any(text in line for line in lines(path))


async def test_the_log_level_applies_to_the_processes_own_logs(make_world):
    async with stack(make_world, {"logging": {"level": "warning"}}) as (world, logs, proxy, _):
        async with aiohttp.ClientSession() as http:
            await some_requests(world, http, "quiet")
        await poll(lambda: _at_least(logs / "proxy-access.log", 4))  # it served, and logged the requests
        os.kill(proxy.pid, signal.SIGUSR1)  # an INFO line, were it at info
        await asyncio.sleep(0.2)  # nothing to poll for: the line must not come
    for name in ("proxy.log", "users.log"):
        assert not any(" INFO " in line for line in lines(logs / name)), name


async def test_a_service_logs_no_access_when_told_not_to(make_world):
    world = await make_world({"services": {"users": {"access_log": False}}})
    uid, auth = await world.user("mute")
    assert (await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})).status == 200
    for server in world.backends.servers.values():  # stopping an app writes its last lines
        await server.close()
    logs = world.config.logging.access_dir
    assert not (logs / "users-access.log").exists() and (logs / "paths-access.log").exists()
