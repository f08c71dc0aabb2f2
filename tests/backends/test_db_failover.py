"""A service before a database that breaks in the middle of a write, or stops answering: what it answers.

The database is the session's real MariaDB behind a TCP relay (tests/support/relay.py) that loses the
answer to a COMMIT it forwarded, or holds connections open and forwards nothing (a hung server).
"""
from __future__ import annotations

import asyncio
from dataclasses import replace

import pymysql
import pytest

from backends.common.db import DB_POOL, connection_lost
from backends.migrate import migrate
from backends.users.app import create_app as users_app
from cachegate.settings import DatabaseNode
from tests.support.polling import poll
from tests.support.relay import TcpRelay
from tests.support.services import PASSWORD, error_of, profile

QUERY_TIMEOUT = 2.0
PROBE = {"interval": "200ms", "timeout": "500ms"}


@pytest.fixture
async def relay(mariadb_server):
    relay = TcpRelay(mariadb_server.host, mariadb_server.port)
    await relay.start()
    yield relay
    await relay.stop()


async def sign_up(client, login: str) -> tuple[int, dict[str, str]]:
    resp = await client.post("/users", json=profile(login))
    assert resp.status == 201, await resp.text()
    user_id = (await resp.json())["id"]
    resp = await client.post("/auth/token", json={"login": login, "password": PASSWORD})
    return user_id, {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


def version_in_database(config, user_id: int) -> int:
    db = config.mariadb
    conn = pymysql.connect(host=db.host, port=db.port, user=db.user, password=db.password(),
                           database=db.database, autocommit=True, ssl_disabled=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT version FROM users WHERE id = %s", (user_id,))
            return int(cur.fetchone()[0])
    finally:
        conn.close()


async def test_a_commit_whose_answer_is_lost_is_a_retryable_503_never_run_again(
        aiohttp_client, make_config, relay, mariadb_server):
    config = make_config({"mariadb": {"port": relay.port, "query_timeout": f"{QUERY_TIMEOUT}s"}})
    await migrate(config)
    client = await aiohttp_client(users_app(config))
    user_id, headers = await sign_up(client, "unknowable")

    relay.cut_after_commit()
    resp = await client.patch(f"/users/{user_id}", json={"title": "Dr"}, headers=headers)
    assert await error_of(resp, 503) == "write_outcome_unknown"
    assert resp.headers["Retry-After"] == "1"
    assert relay.commits_cut == 1
    # The server did commit it, exactly once: reporting a failure as final, or running the write again on
    # a fresh connection (version 3), would both have been wrong.
    assert version_in_database(direct(config, mariadb_server), user_id) == 2
    resp = await client.get("/users/me", headers=headers)
    body = await resp.json()
    assert resp.status == 200 and body["title"] == "Dr" and body["version"] == 2


def direct(config, server):
    """The same database, reached without the relay."""
    return replace(config, mariadb=replace(config.mariadb, nodes=(DatabaseNode(server.host, server.port),)))


@pytest.mark.slow
async def test_a_node_that_stops_answering_is_left_and_probed_never_hammered(aiohttp_client, make_config,
                                                                             relay):
    config = make_config({"mariadb": {"port": relay.port, "query_timeout": f"{QUERY_TIMEOUT}s",
                                      "probe": PROBE}})
    await migrate(config)
    client = await aiohttp_client(users_app(config))
    user_id, headers = await sign_up(client, "silenced")
    assert (await client.get(f"/users/{user_id}", headers=headers)).status == 200

    relay.black_hole()
    loop = asyncio.get_running_loop()
    silenced_at = loop.time()
    # A request already on its way waits for its deadline, then gets a 503 that says so: never a hang.
    first = asyncio.ensure_future(client.get(f"/users/{user_id}", headers=headers))
    node = client.server.app[DB_POOL].nodes.nodes[0]

    async def left() -> bool:
        return not node.usable

    assert await poll(left, 10)
    left_after = loop.time() - silenced_at
    resp = await client.get(f"/users/{user_id}", headers=headers)  # once left, refused without trying it
    assert await error_of(resp, 503) == "database_unavailable"
    assert (await resp.json())["error"]["message"] == "the database is unavailable, retry later"
    resp = await first
    assert await error_of(resp, 503) == "database_unavailable"
    assert "no answer from the database within 2s" in (await resp.json())["error"]["message"]
    accepted, began, statuses = relay.accepted, loop.time(), []
    while loop.time() - began < 1.0:  # a second of requests, 20 at a time
        answers = await asyncio.gather(*(client.get(f"/users/{user_id}", headers=headers) for _ in range(20)))
        statuses += [r.status for r in answers]
    assert set(statuses) == {503} and len(statuses) >= 20
    # Only the probe knocks: about one connection per probe interval, not one per request.
    probes = relay.accepted - accepted
    assert probes <= (loop.time() - began) / 0.2 + 2 < len(statuses), (probes, len(statuses))

    relay.heal()

    async def answered() -> bool:
        return (await client.get(f"/users/{user_id}", headers=headers)).status == 200

    assert await poll(answered, 10)
    print(f"\nsilent node left after {left_after:.1f}s (query_timeout {QUERY_TIMEOUT}s, probe {PROBE})")



def test_a_broken_protocol_is_a_lost_connection_but_a_server_error_is_not() -> None:
    """aiomysql closes a connection whose packets arrive out of order and raises InternalError without an
    error number: run again on a fresh connection (a 503 at worst), never a 500."""
    assert connection_lost(pymysql.err.InternalError("Packet sequence number wrong - got 1 expected 0"))
    assert connection_lost(pymysql.err.OperationalError(2013, "Lost connection to server during query"))
    assert not connection_lost(pymysql.err.InternalError(1105, "unknown error"))
    assert not connection_lost(pymysql.err.IntegrityError(1062, "Duplicate entry"))
