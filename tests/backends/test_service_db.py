"""The pool under load and database faults: no starvation, reads survive a cut, outages are JSON 503s."""
from __future__ import annotations

import asyncio

import aiohttp
import pytest

from backends.migrate import migrate
from backends.users.app import create_app as users_app
from tests.support.polling import poll
from tests.support.relay import TcpRelay
from tests.support.services import PASSWORD, error_of, profile


async def sign_up(client, login: str) -> dict[str, str]:
    assert (await client.post("/users", json=profile(login))).status == 201
    resp = await client.post("/auth/token", json={"login": login, "password": PASSWORD})
    return {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


@pytest.fixture
async def relay(mariadb_server):
    relay = TcpRelay(mariadb_server.host, mariadb_server.port)
    await relay.start()
    yield relay
    await relay.stop()


async def test_256_concurrent_reads_share_a_small_pool(aiohttp_client, make_config):
    config = make_config({"mariadb": {"pool": {"min": 1, "max": 4}}})
    await migrate(config)
    # No client-side connection limit: all 256 requests reach the service at once.
    client = await aiohttp_client(users_app(config), connector=aiohttp.TCPConnector(limit=0))
    headers = await sign_up(client, "pooled")
    user = await (await client.get("/users/me", headers=headers)).json()
    answers = await asyncio.gather(*(client.get(f"/users/{user['id']}", headers=headers) for _ in range(256)))
    assert [r.status for r in answers] == [200] * 256
    assert {(await r.json())["id"] for r in answers} == {user["id"]}


async def test_reads_survive_dead_connections_and_outages_are_503(aiohttp_client, make_config, relay):
    config = make_config({"mariadb": {"port": relay.port, "pool": {"min": 2, "max": 2}}})
    await migrate(config)
    client = await aiohttp_client(users_app(config))
    headers = await sign_up(client, "faulty")

    relay.break_silently()
    assert (await client.get("/users/me", headers=headers)).status == 200  # retried on a fresh connection
    relay.break_silently()
    # A write whose connection died before COMMIT was sent committed nothing: it runs again, once.
    resp = await client.patch("/users/1", json={"title": "x"}, headers=headers)
    assert resp.status == 200 and (await resp.json())["version"] == 2

    await relay.stop()
    assert await error_of(await client.get("/users/me", headers=headers), 503) == "database_unavailable"
    resp = await client.patch("/users/1", json={"title": "x"}, headers=headers)
    assert await error_of(resp, 503) == "database_unavailable"
    assert resp.headers["Retry-After"] == "1"

    await relay.start()  # same port: the database is back, and the next probe (every 500ms) sees it
    async def back() -> bool:
        return (await client.get("/users/me", headers=headers)).status == 200
    assert await poll(back, 10)
    resp = await client.patch("/users/1", json={"title": "back"}, headers=headers)
    assert resp.status == 200 and (await resp.json())["version"] == 3  # the failed writes changed nothing

