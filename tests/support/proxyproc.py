"""A real `python -m proxy` process over a world's backends and Redis, for tests that signal or starve it."""
from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import pytest

from stack.net import http_ok
from stack.process import wait_until
from tests.support.world import World


@dataclass
class ProxyProcess:
    world: World
    popen: subprocess.Popen
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.world.config.proxy.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
async def proxy_process(make_world, tmp_path) -> AsyncIterator[Callable[..., Any]]:
    """Builds a world (a config file), registers a user through its in-process proxy, then serves the same
    ports with a proxy process instead; (process, user id, Bearer header). Killed after the test if alive."""
    started: list[subprocess.Popen] = []

    async def start(overrides: dict | None = None, *, login: str = "proc") -> tuple[ProxyProcess, int, str]:
        world = await make_world(overrides, as_file=True)
        uid, auth = await world.user(login)
        await world.proxy.close()  # the ports are the process's from now on
        await world.admin.close()
        log_path = tmp_path / f"proxy-{len(started)}.log"
        with open(log_path, "wb") as out:
            popen = subprocess.Popen([sys.executable, "-m", "proxy", "--config", str(world.config.path)],
                                     stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        started.append(popen)
        port = world.config.proxy.port
        up = await asyncio.to_thread(
            wait_until, lambda: popen.poll() is not None or http_ok("127.0.0.1", port, "/-/ready"), 30)
        assert up and popen.poll() is None, log_path.read_text(errors="replace")
        return ProxyProcess(world, popen, log_path), uid, auth

    yield start
    for popen in started:
        if popen.poll() is None:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait(timeout=10)
