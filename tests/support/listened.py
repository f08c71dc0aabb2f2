"""The gateway behind its own listener (proxy/listener.py), as `python -m proxy` serves it, in this process.

The world's backends and Redis are real; the proxy app is a second one, on a port of its own, behind the
Listener with the config's bounds, so tests can abuse it on raw sockets and read its metrics.
"""
from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from proxy.app import create_app
from proxy.appkeys import METRICS
from proxy.listener import Listener
from proxy.server import listen, runner_options
from stack.net import free_port
from tests.support.world import World


@dataclass
class Listened:
    world: World
    port: int
    listener: Listener
    app: web.Application

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def metric(self, name: str, **labels: str) -> float:
        value = self.app[METRICS].registry.get_sample_value(name, labels or None)
        return value or 0.0


@pytest.fixture
async def listened(make_world) -> AsyncIterator[Callable[..., Any]]:
    started: list[tuple[web.AppRunner, Listener]] = []

    async def build(overrides: dict | None = None) -> Listened:
        world = await make_world(overrides)
        config = world.config
        app = create_app(config)
        runner = web.AppRunner(app, **runner_options(config))
        await runner.setup()
        port = free_port()
        listener = await listen(runner, config, "127.0.0.1", port,
                                max_connections=config.proxy.max_connections, metrics=app[METRICS])
        started.append((runner, listener))
        return Listened(world, port, listener, app)

    yield build
    for runner, listener in reversed(started):
        await listener.close()
        await runner.cleanup()


async def open_raw(port: int, first: bytes = b"") -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    if first:
        writer.write(first)
        await writer.drain()
    return reader, writer


async def read_answer(reader: asyncio.StreamReader,
                      timeout: float = 10.0) -> tuple[int, dict[str, str], bytes]:
    """Everything the gateway sends until it closes: (status or 0 for nothing, headers, body)."""
    data = await asyncio.wait_for(reader.read(), timeout)
    if not data:
        return 0, {}, b""
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def error_code(body: bytes) -> str:
    return json.loads(body)["error"]["code"]


async def steady_reads(base: str, path: str, auth: str, stop: asyncio.Event,
                       statuses: list[int]) -> None:
    """Normal traffic: one keep-alive client reading `path` until `stop`, every status kept."""
    async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=10)) as http:
        while not stop.is_set():
            async with http.get(path, headers={"Authorization": auth}) as resp:
                await resp.read()
                statuses.append(resp.status)
            await asyncio.sleep(0.01)  # pacing, not synchronisation


async def new_connection_read(base: str, path: str, auth: str) -> tuple[int, str]:
    """One request on a connection of its own: (status, body)."""
    async with aiohttp.ClientSession(base, timeout=aiohttp.ClientTimeout(total=10),
                                     connector=aiohttp.TCPConnector(force_close=True)) as http:
        async with http.get(path, headers={"Authorization": auth}) as resp:
            return resp.status, await resp.text()
