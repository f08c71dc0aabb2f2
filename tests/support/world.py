"""The whole request path on real sockets: three services over the test MariaDB, the proxy over its Redis.

Each backend counts the requests it served, so a test can tell what the cache saved; a backend can also be
given a random delay per request, before its handler runs or after it (the row read or the write committed,
the answer late), to shuffle the order in which concurrent reads and writes finish, hold its answers to writes
after they committed (`hold_writes`), or hold the answer to one request of its choice (`hold`).
"""
from __future__ import annotations

import asyncio
import collections
import importlib
import random
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from cachegate.config import Config
from proxy.admin import create_admin_app
from proxy.app import create_app
from proxy.control import ProcessControl
from strategies.registry import REGISTRY

SERVICES = ("users", "paths", "trips")


@dataclass
class Hold:
    """The next request of `method` and `path`: its handler runs (a read has read its row, a write has
    committed), then `reached` is set and the answer waits until `release()`."""
    method: str
    path: str
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


@dataclass
class Backends:
    counts: collections.Counter = field(default_factory=collections.Counter)
    targets: collections.Counter = field(default_factory=collections.Counter)  # (method, target as received)
    max_delay: float = 0.0   # a random delay up to this, per request, before the handler
    delay: float = 0.0       # a fixed delay, per request
    max_answer_delay: float = 0.0  # a random delay up to this after the handler: what it read is sent late
    hold_writes: asyncio.Event | None = None  # answers to writes wait for it, after the handler committed
    hold_reads: asyncio.Event | None = None   # the next `reads_to_hold` GETs wait for it, before the handler
    reads_to_hold: int = 0
    servers: dict[str, TestServer] = field(default_factory=dict)
    holds: list[Hold] = field(default_factory=list)

    def served(self, method: str, path: str) -> int:
        return self.counts[(method, path)]

    def hold(self, method: str, path: str) -> Hold:
        found = Hold(method, path)
        self.holds.append(found)
        return found

    def middleware(self) -> Callable:
        @web.middleware
        async def count_and_delay(request: web.Request, handler):
            self.counts[(request.method, request.path)] += 1
            self.targets[(request.method, request.raw_path)] += 1
            held = next((h for h in self.holds if (h.method, h.path) == (request.method, request.path)), None)
            if held is not None:
                self.holds.remove(held)
            if self.max_delay or self.delay:
                await asyncio.sleep(self.delay + random.uniform(0, self.max_delay))
            if self.hold_reads is not None and self.reads_to_hold > 0 and request.method == "GET":
                self.reads_to_hold -= 1
                await asyncio.wait_for(self.hold_reads.wait(), 60)
            response = await handler(request)
            if held is not None:
                held.reached.set()
                await asyncio.wait_for(held.released.wait(), 60)  # a hang guard, not a time limit
            elif self.max_answer_delay:
                await asyncio.sleep(random.uniform(0, self.max_answer_delay))
            if self.hold_writes is not None and request.method not in ("GET", "HEAD"):
                await asyncio.wait_for(self.hold_writes.wait(), 60)
            return response
        return count_and_delay


@dataclass
class World:
    config: Config
    proxy: TestClient
    admin: TestClient
    backends: Backends
    app: web.Application
    _tokens: dict[str, str] = field(default_factory=dict)

    async def user(self, login: str, password: str = "correct-horse-battery") -> tuple[int, str]:
        """Register a user through the proxy; returns (id, Bearer header value)."""
        resp = await self.proxy.post("/users", json={
            "login": login, "password": password, "first_name": login.capitalize(), "last_name": "Tester",
            "email": f"{login}@example.com", "title": "traveller"})
        assert resp.status == 201, await resp.text()
        uid = (await resp.json())["id"]
        resp = await self.proxy.post("/auth/token", json={"login": login, "password": password})
        assert resp.status == 200, await resp.text()
        return uid, "Bearer " + (await resp.json())["access_token"]


async def start_backends(config: Config, backends: Backends) -> None:
    for name in SERVICES:
        app = importlib.import_module(f"backends.{name}.app").create_app(config)
        app.middlewares.insert(0, backends.middleware())
        server = TestServer(app, host="127.0.0.1", port=config.services[name].port)
        await server.start_server()
        backends.servers[name] = server


@pytest.fixture
async def make_world(make_config) -> AsyncIterator[Callable[..., Any]]:
    """Builds a World from config overrides; everything it started is closed after the test."""
    from backends.migrate import migrate
    closers: list[Callable[[], Any]] = []

    async def build(overrides: dict | None = None, *, as_file: bool = False) -> World:
        # as_file: written to a config.yaml first, for tests that edit the file and reload it
        made = make_config.file if as_file else make_config
        config = made(overrides, strategies=REGISTRY)  # as the proxy loads it
        await migrate(config)
        backends = Backends()
        await start_backends(config, backends)
        closers.extend(s.close for s in backends.servers.values())
        app = create_app(config)
        proxy = TestClient(TestServer(app, host="127.0.0.1", port=config.proxy.port))
        await proxy.start_server()
        closers.append(proxy.close)
        # The admin client carries the token on every call, as `cachegate admin` does.
        admin = TestClient(TestServer(create_admin_app(config, ProcessControl(app)), host="127.0.0.1",
                                      port=config.proxy.admin_port),
                           headers={"Authorization": f"Bearer {config.proxy.admin_token()}"})
        await admin.start_server()
        closers.append(admin.close)
        return World(config, proxy, admin, backends, app)

    yield build
    for close in reversed(closers):
        await close()


@pytest.fixture
async def world(make_world) -> World:
    return await make_world()


async def world_on(topology: str, request: pytest.FixtureRequest, make_world, **options: Any) -> World:
    """A World with its cache on the session's single Redis or on the session's Redis Cluster."""
    if topology == "single":
        return await make_world(**options)
    from tests.support.configs import on_cluster
    return await make_world(on_cluster(request.getfixturevalue("redis_cluster")), **options)
