"""Requests exactly as written, over a plain socket, and what the fuzz tests check in MariaDB after them.

An HTTP client would normalise what these tests need to send as is (`../`, `%2F`, raw bytes).
"""
from __future__ import annotations

import asyncio
import json
from typing import Any

from tests.support.dbrows import fetch_rows

JSON = "application/json"


async def raw_request(port: int, head: str, body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """Send one request exactly as written (HTTP/1.1, Connection: close); (status, headers, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head.encode("latin-1") + body)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
    header_block, _, payload = data.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(lines[0].split()[1]), headers, payload


def request_head(method: str, target: str, headers: dict[str, str], length: int | None = None) -> str:
    lines = [f"{method} {target} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    if length is not None:
        lines.append(f"Content-Length: {length}")
    return "\r\n".join(lines) + "\r\n\r\n"


def assert_error(status: int, headers: dict[str, str], body: bytes, expected: int | tuple[int, ...]) -> str:
    """A 4xx JSON error of the expected status; returns its code."""
    assert status in (expected if isinstance(expected, tuple) else (expected,)), (status, body[:300])
    assert headers.get("content-type", "").split(";")[0] == JSON, headers
    error = json.loads(body)["error"]
    assert set(error) == {"code", "message"} and error["code"] and error["message"], error
    return error["code"]


async def db_rows(seeded: Any, sql: str, args: tuple = ()) -> list[tuple]:
    return await fetch_rows(seeded.world.config, sql, args)


async def snapshot(seeded: Any) -> list[list[tuple]]:
    """Every row a write could touch: a refused write must leave all of it as it was."""
    users = "SELECT id, version, first_name, email, password_hash FROM users ORDER BY id"
    return [await db_rows(seeded, users),
            await db_rows(seeded, "SELECT id, version, start_point FROM paths ORDER BY id"),
            await db_rows(seeded, "SELECT id, version, name, member_count FROM trips ORDER BY id"),
            await db_rows(seeded, "SELECT trip_id, user_id FROM trip_members ORDER BY trip_id, user_id")]


async def send(seeded: Any, method: str, target: str, body: bytes | None = None, *,
               content_type: str | None = JSON, auth: bool = True,
               extra: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    headers = {"Authorization": seeded.bearer} if auth else {}
    if body is not None and content_type is not None:
        headers["Content-Type"] = content_type
    headers.update(extra or {})
    head = request_head(method, target, headers, None if body is None else len(body))
    return await raw_request(seeded.world.proxy.port, head, body or b"")
