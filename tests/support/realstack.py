"""The three services and the proxy as real processes (`python -m backends.runner`, `python -m proxy`) over
the test Redis and MariaDB, with seeded users: for tests where listen backlogs and pools must be real."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest

from backends.migrate import migrate
from backends.runner import SERVICES
from backends.seed import credentials_path, seed, seeded_ids
from cachegate.config import Config
from stack.net import http_ok, port_open
from stack.process import wait_until

REPO = Path(__file__).resolve().parents[2]


@dataclass
class RealStack:
    config: Config
    ids: list[int]          # the seeded users
    authorization: str      # a Bearer header of one of them
    logs: Path
    proxy: subprocess.Popen | None = None
    # Starts the proxy again (after a test killed it) and waits until it is ready.
    start_proxy: Callable[[], Any] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.config.proxy.port}"


@pytest.fixture
async def real_stack(make_config, tmp_path) -> AsyncIterator[Callable[..., Any]]:
    procs: list[subprocess.Popen] = []

    def spawn(argv: list[str], log: Path) -> subprocess.Popen:
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, *argv], cwd=REPO, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        return proc

    async def start(overrides: dict | None = None, *, users: int = 1000) -> RealStack:
        config = make_config.file(overrides)
        await migrate(config)
        await seed(config, users=users)
        ids = await seeded_ids(config, users)
        logs = tmp_path / "logs"
        logs.mkdir(exist_ok=True)
        for name in SERVICES:
            proc = spawn(["-m", "backends.runner", name, str(config.path)], logs / f"{name}.log")
            where = config.services[name]
            assert await asyncio.to_thread(
                wait_until, lambda: proc.poll() is not None or port_open(where.host, where.port), 30)
            assert proc.poll() is None, (logs / f"{name}.log").read_text()
        port = config.proxy.port

        async def start_proxy() -> subprocess.Popen:
            proxy = spawn(["-m", "proxy", "--config", str(config.path)], logs / "proxy.log")
            assert await asyncio.to_thread(
                wait_until, lambda: proxy.poll() is not None or http_ok("127.0.0.1", port, "/-/ready"), 30)
            assert proxy.poll() is None, (logs / "proxy.log").read_text()
            return proxy
        proxy = await start_proxy()
        known = json.loads(credentials_path(config).read_text())["users"][0]
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/auth/token",
                                 json={"login": known["login"], "password": known["password"]}) as resp:
                assert resp.status == 200, await resp.text()
                token = (await resp.json())["access_token"]
        found = RealStack(config, ids, f"Bearer {token}", logs, proxy)

        async def restart() -> subprocess.Popen:
            found.proxy = await start_proxy()
            return found.proxy
        found.start_proxy = restart
        return found

    yield start
    for proc in reversed(procs):
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
