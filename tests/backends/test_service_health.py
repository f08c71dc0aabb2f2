"""GET /-/health of each service: no token, 200 while its pool answers, 503 at once when MariaDB does not."""
from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from backends.paths.app import create_app as paths_app
from backends.trips.app import create_app as trips_app
from backends.users.app import create_app as users_app
from stack.mariadb import MariaDBServer
from stack.net import free_port
from stack.process import wait_until
from tests.support.configs import TEST_DB_USER

APPS = {"users": users_app, "paths": paths_app, "trips": trips_app}


@pytest.mark.parametrize("name", sorted(APPS))
async def test_health_needs_no_token_and_says_the_database_answers(name, aiohttp_client, db_config) -> None:
    client = await aiohttp_client(APPS[name](db_config))
    resp = await client.get("/-/health")
    assert resp.status == 200 and await resp.json() == {"status": "ok", "db": "ok"}
    assert (await client.head("/-/health")).status == 200
    # Everything else still needs the token.
    other = await client.get("/users/me" if name == "users" else f"/{name}/1")
    assert other.status == 401


@pytest.fixture
def own_mariadb(tmp_path, test_secrets):
    """A MariaDB of this test alone: it is paused and killed."""
    server = MariaDBServer(tmp_path / "db", "127.0.0.1", free_port())
    server.start()
    server.ensure_database("health", TEST_DB_USER, test_secrets.db_password)
    yield server
    server.stop()


def stopped(pid: int) -> bool:
    """Every thread of the process is stopped: SIGSTOP reaches a running thread a moment after kill()."""
    states = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            states.append((task / "stat").read_text().rsplit(")", 1)[1].split()[0])
        except (OSError, IndexError):
            continue
    return bool(states) and all(state in ("T", "t") for state in states)


async def poll(probe: Callable[[], Awaitable[Any]], deadline_s: float = 30.0) -> Any:
    """The probe's first truthy answer, polled until the deadline."""
    deadline = time.monotonic() + deadline_s
    while True:
        found = await probe()
        if found or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.fault
async def test_health_is_503_while_the_database_is_paused_or_dead_and_200_again(
        aiohttp_client: Callable[..., Awaitable[TestClient]], make_config, own_mariadb) -> None:
    config = make_config({"mariadb": {"port": own_mariadb.port, "database": "health"}})
    client = await aiohttp_client(users_app(config))
    assert (await client.get("/-/health")).status == 200

    async def health() -> tuple[int, dict[str, Any]]:
        resp = await client.get("/-/health")
        return resp.status, await resp.json()

    pid = own_mariadb.pid
    os.kill(pid, signal.SIGSTOP)
    try:
        assert wait_until(lambda: stopped(pid), 10), "SIGSTOP did not stop every thread of mariadbd"
        # An answer, not a hang: the check's own time-out, named in the body.
        status, body = await health()
        assert status == 503 and body["status"] == "unavailable" and "within" in body["db"], body
    finally:
        os.kill(pid, signal.SIGCONT)

    async def ok() -> bool:
        return (await health())[0] == 200

    assert await poll(ok), "the service did not report healthy again after SIGCONT"

    own_mariadb.kill()   # SIGKILL
    status, body = await health()
    assert status == 503 and body["status"] == "unavailable", body
    own_mariadb.start()
    assert await poll(ok), "the service did not report healthy again once MariaDB was back"
