"""The pool under load and database faults: no starvation, reads survive a cut, outages are JSON 503s."""
from __future__ import annotations

import asyncio
import contextlib

import aiohttp
import pytest

from backends.migrate import migrate
from backends.users.app import create_app as users_app
from tests.support.services import PASSWORD, error_of, profile


class TcpRelay:
    """A loopback relay in front of the test MariaDB that a test can break or stop, like a node going away."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._links: dict[asyncio.StreamWriter, asyncio.StreamWriter] = {}  # client side -> server side
        self._doomed: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]

    def break_silently(self) -> None:
        """Open connections look alive (no EOF) but die on their next query: what a pool meets after a
        server restart it has not noticed yet."""
        self._doomed |= set(self._links)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for client, server in list(self._links.items()):
                client.close()
                server.close()
            self._links.clear()
            await self._server.wait_closed()
            self._server = None

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._links[writer] = up_writer
        await asyncio.gather(self._pump(reader, up_writer, doomed_by=writer), self._pump(up_reader, writer))
        self._links.pop(writer, None)

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    doomed_by: asyncio.StreamWriter | None = None) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                if doomed_by is not None and doomed_by in self._doomed:
                    doomed_by.close()
                    break
                writer.write(data)
                await writer.drain()
        writer.close()


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
    resp = await client.patch("/users/1", json={"title": "x"}, headers=headers)  # a write is not retried
    assert await error_of(resp, 503) == "database_unavailable"

    await relay.stop()
    assert await error_of(await client.get("/users/me", headers=headers), 503) == "database_unavailable"
    resp = await client.patch("/users/1", json={"title": "x"}, headers=headers)
    assert await error_of(resp, 503) == "database_unavailable"
    assert resp.headers["Retry-After"] == "1"

    await relay.start()  # same port: the database is back
    resp = await client.patch("/users/1", json={"title": "back"}, headers=headers)
    assert resp.status == 200 and (await resp.json())["version"] == 2  # the failed writes changed nothing
