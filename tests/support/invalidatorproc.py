"""The invalidator as a real process (`python -m invalidator`) over a config file; helpers of its tests."""
from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, AsyncIterator, Callable

import aiohttp
import pymysql
import pytest

from cachegate.config import Config
from proxy.metrics import Metrics
from proxy.store import CacheStore
from stack.redis import RedisServer
from tests.support.polling import poll
from tests.support.redisclients import NO_RETRY, gateway_client

REPO = Path(__file__).resolve().parents[2]


class InvalidatorProcess:
    def __init__(self, config: Config, log: Path) -> None:
        self.config, self.log = config, log
        self.proc: subprocess.Popen | None = None
        self.starts = 0

    @property
    def base(self) -> str:
        assert self.config.invalidator is not None
        return f"http://127.0.0.1:{self.config.invalidator.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def spawn(self) -> None:
        self.starts += 1
        with open(self.log, "ab") as out:
            argv = [sys.executable, "-m", "invalidator", "--config", str(self.config.path)]
            self.proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)

    async def start(self, timeout: float = 30.0) -> dict:
        """Spawn and wait until it follows the binary log (its /-/health answers 200)."""
        self.spawn()
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc is not None and self.proc.poll() is None, self.log.read_text()
                try:
                    async with http.get(self.base + "/-/health") as resp:
                        if resp.status == 200:
                            return await resp.json()
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)  # polling for readiness, with a deadline
        raise AssertionError(f"the invalidator did not start:\n{self.log.read_text()}")

    async def health(self) -> dict:
        async with aiohttp.ClientSession() as http:
            async with http.get(self.base + "/-/health") as resp:
                return await resp.json()

    async def metrics(self) -> str:
        async with aiohttp.ClientSession() as http:
            async with http.get(self.base + "/metrics") as resp:
                return await resp.text()

    def kill(self) -> None:
        """SIGKILL, as a crash: nothing is saved on the way out."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)


@pytest.fixture
async def invalidator_process(tmp_path) -> AsyncIterator[Callable[[Config], InvalidatorProcess]]:
    made: list[InvalidatorProcess] = []

    def make(config: Config) -> InvalidatorProcess:
        found = InvalidatorProcess(config, tmp_path / f"invalidator{len(made)}.log")
        made.append(found)
        return found

    yield make
    for proc in made:
        proc.stop()


def _run(config: Config, statement: str, params: tuple) -> tuple[int, Any]:
    """One statement as the application's user, committed: (the rows it changed, its first row)."""
    db = config.mariadb
    conn = pymysql.connect(host=db.host, port=db.port, user=db.user, password=db.password(),
                           database=db.database, autocommit=True, ssl_disabled=True)
    try:
        with conn.cursor() as cur:
            changed = cur.execute(statement, params)
            return changed, cur.fetchone()
    finally:
        conn.close()


def sql(config: Config, statement: str, params: tuple = ()) -> int:
    """One statement, committed; returns the rows it changed."""
    return _run(config, statement, params)[0]


def sql_one(config: Config, statement: str, params: tuple = ()) -> Any:
    """One query, committed; returns its first row."""
    return _run(config, statement, params)[1]


def store_for(config: Config, server: RedisServer) -> CacheStore:
    """A store over the config's prefix, for reading what the cache holds (inspect)."""
    client = gateway_client(server, socket_timeout=2, socket_connect_timeout=2, retry=NO_RETRY)
    return CacheStore(client, prefix=config.cache.prefix, timeout=2.0, breaker_failures=100,
                      breaker_reset=0.1, metrics=Metrics())


def body_of(text: str) -> dict:
    return json.loads(text)


async def trusted(http: aiohttp.ClientSession, stack, timeout: float = 10.0) -> None:
    """Wait until the gateway trusts the cache on the invalidator's routes: a user's public profile, read
    twice, is a hit (not INVALIDATOR-BEHIND). Uses the last seeded user."""
    path = f"/users/{stack.ids[-1]}"
    seen: list[str] = []

    async def hit() -> bool:
        async with http.get(stack.base + path, headers={"Authorization": stack.authorization}) as resp:
            await resp.read()
            seen.append(resp.headers.get("Cache-Status", ""))
            return resp.status == 200 and "hit" in seen[-1] and "fwd=" not in seen[-1]
    assert await poll(hit, timeout), seen[-3:]
