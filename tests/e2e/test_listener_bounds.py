"""The public listener's bounds on real sockets: header and body deadlines, idle connections, the limit.

Regressions (issue 9 part 1): 2,000 connections sending partial headers were held open indefinitely,
100 PATCHes promising a 100 GB body were held and never answered, and nothing capped the connections.
"""
from __future__ import annotations

import asyncio
import logging

import pytest

import proxy.listener
from tests.support.polling import poll
from tests.support.listened import (error_code, new_connection_read, open_raw, read_answer, steady_reads)

pytestmark = pytest.mark.slow

PARTIAL = b"GET /users/1 HTTP/1.1\r\nHost: 127.0.0.1\r\n"


async def until(probe) -> bool:
    """`probe()` polled until true; False after a hang guard (not a speed: that is the load test's)."""
    return await poll(probe, 30)


async def test_partial_and_silent_connections_are_closed_after_the_header_deadline(listened):
    gw = await listened({"proxy": {"header_timeout": "500ms"}})
    uid, auth = await gw.world.user("hedda")
    stop, statuses = asyncio.Event(), []
    normal = asyncio.create_task(steady_reads(gw.base, f"/users/{uid}", auth, stop, statuses))
    partial = [await open_raw(gw.port, PARTIAL) for _ in range(150)]
    silent = [await open_raw(gw.port) for _ in range(50)]
    dripping = await open_raw(gw.port, PARTIAL)

    async def drip() -> None:  # a header line now and then must not extend the deadline
        writer = dripping[1]
        while not writer.is_closing():
            try:
                writer.write(b"X-Slow: 1\r\n")
                await writer.drain()
            except ConnectionError:
                return
            await asyncio.sleep(0.1)  # pacing of the slow client, not synchronisation

    dripper = asyncio.create_task(drip())
    answers = await asyncio.gather(*(read_answer(reader) for reader, _ in [*partial, *silent, dripping]))
    stop.set()
    await normal
    dripper.cancel()
    for status, headers, body in answers[:150] + answers[-1:]:
        assert status == 408 and headers["content-type"] == "application/json", (status, body)
        assert error_code(body) == "request_timeout" and headers["connection"] == "close"
    assert all(status == 0 for status, _, _ in answers[150:200])  # sent nothing: closed without a word
    assert statuses and set(statuses) == {200}  # normal traffic served all along
    assert gw.metric("cachegate_connections_closed_total", reason="header_timeout") == 201
    for _, writer in [*partial, *silent, dripping]:
        writer.close()


async def test_a_body_that_never_comes_is_refused_in_time(listened):
    gw = await listened({"proxy": {"body_timeout": "500ms"}})
    uid, auth = await gw.world.user("bodil")
    head = (f"PATCH /users/{uid} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n"
            "Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n")
    stop, statuses = asyncio.Event(), []
    normal = asyncio.create_task(steady_reads(gw.base, f"/users/{uid}", auth, stop, statuses))
    huge = [await open_raw(gw.port, head.format(length=100 * 10**9).encode()) for _ in range(50)]
    short = [await open_raw(gw.port, head.format(length=100).encode() + b'{"title": ') for _ in range(50)]
    answers = await asyncio.gather(*(read_answer(reader) for reader, _ in [*huge, *short]))
    stop.set()
    await normal
    for status, headers, body in answers[:50]:  # declared over max_body: refused at once, nothing read
        assert status == 413 and error_code(body) == "payload_too_large", (status, body)
    for status, headers, body in answers[50:]:  # within the limit but never finished: 408 at the deadline
        assert status == 408 and error_code(body) == "request_timeout", (status, body)
        assert headers["connection"] == "close"
    assert statuses and set(statuses) == {200}
    for _, writer in [*huge, *short]:
        writer.close()


async def test_an_idle_kept_alive_connection_is_closed(listened):
    gw = await listened({"proxy": {"keepalive_timeout": "500ms"}})
    reader, writer = await open_raw(gw.port, b"GET /-/health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
    assert first.startswith(b"HTTP/1.1 200")
    rest = await asyncio.wait_for(reader.read(), 15)  # the body, then the close of the idle connection
    assert rest.endswith(b"}") and reader.at_eof()
    writer.close()


@pytest.fixture
def shed_after(monkeypatch):
    def set_idle(seconds: float) -> None:
        monkeypatch.setattr(proxy.listener, "SHED_IDLE", seconds)
    return set_idle


async def test_at_the_limit_new_connections_get_503_and_the_episode_is_logged_once(listened, shed_after,
                                                                                    caplog):
    shed_after(3600.0)  # nothing has been idle that long: every connection over the limit is refused
    gw = await listened({"proxy": {"max_connections": 40, "header_timeout": "1m"}})
    uid, auth = await gw.world.user("lim")
    caplog.set_level(logging.WARNING, logger="cachegate.listener")
    idle = [await open_raw(gw.port) for _ in range(40)]
    assert await until(lambda: _opened(gw, 40))
    refused = [await new_connection_read(gw.base, f"/users/{uid}", auth) for _ in range(5)]
    for status, body in refused:
        assert status == 503 and '"connection_limit"' in body, (status, body)
    reader, writer = await open_raw(gw.port)
    status, headers, _ = await read_answer(reader)
    assert status == 503 and headers["retry-after"] == "1"
    writer.close()
    for _, idle_writer in idle:
        idle_writer.close()
    assert await until(lambda: _opened(gw, 0, at_most=True))
    assert (await new_connection_read(gw.base, f"/users/{uid}", auth))[0] == 200
    reached = [r for r in caplog.records if "connection limit reached" in r.getMessage()]
    again = [r for r in caplog.records if "below the connection limit again" in r.getMessage()]
    assert len(reached) == 1 and len(again) == 1, [r.getMessage() for r in caplog.records]
    assert "6 refused with 503" in again[0].getMessage()
    assert gw.metric("cachegate_connections_closed_total", reason="refused") == 6


async def test_refused_connections_that_never_read_do_not_cost_a_live_client_its_503(listened, shed_after):
    """Regression (fault suite, connection flood): past REFUSING_AT_ONCE refusals still lingering (their
    clients never read the 503), a new connection was closed without a word: a live client saw its
    connection cut. Now the oldest lingering refusal makes room and the newcomer gets its 503."""
    shed_after(3600.0)
    gw = await listened({"proxy": {"max_connections": 20, "header_timeout": "1m"}})
    uid, auth = await gw.world.user("linger")
    idle = [await open_raw(gw.port) for _ in range(20)]
    assert await until(lambda: _opened(gw, 20))
    silent = [await open_raw(gw.port) for _ in range(proxy.listener.REFUSING_AT_ONCE + 10)]  # never read
    assert await until(lambda: _lingering(gw, proxy.listener.REFUSING_AT_ONCE))
    answers = [await new_connection_read(gw.base, f"/users/{uid}", auth) for _ in range(5)]
    for status, body in answers:
        assert status == 503 and '"connection_limit"' in body, (status, body)
    for _, writer in [*idle, *silent]:
        writer.close()


async def _lingering(gw, count: int) -> bool:
    return gw.listener.refusing >= count


async def test_at_the_limit_the_longest_idle_connections_make_room(listened, shed_after):
    shed_after(0.0)
    gw = await listened({"proxy": {"max_connections": 40, "header_timeout": "1m"}})
    uid, auth = await gw.world.user("shed")
    idle = [await open_raw(gw.port) for _ in range(40)]
    assert await until(lambda: _opened(gw, 40))
    request = f"GET /users/{uid} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {auth}\r\n\r\n".encode()
    served = [await open_raw(gw.port, request) for _ in range(10)]  # each stays open: each needs a slot
    for reader, _ in served:
        assert (await asyncio.wait_for(reader.readuntil(b"\r\n"), 10)).startswith(b"HTTP/1.1 200")
    closed = await asyncio.gather(*(read_answer(reader) for reader, _ in idle[:10]))
    assert all(status == 0 for status, _, _ in closed)  # the ten that waited longest, closed without a word
    assert gw.listener.open_connections == 40
    assert gw.metric("cachegate_connections_closed_total", reason="shed") == 10
    for _, writer in [*idle, *served]:
        writer.close()


async def _opened(gw, count: int, *, at_most: bool = False) -> bool:
    found = gw.listener.open_connections
    return found <= count if at_most else found >= count
