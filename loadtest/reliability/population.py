"""Who the traffic runs as and what it reads: the seeded users with known passwords (real tokens from
POST /auth/token), the seeded ids, and a few paths and trips made through the gateway."""
from __future__ import annotations

import json
from typing import Any

import aiohttp

from loadtest.reliability.ownstack import OwnStack, StackFailure
from loadtest.reliability.traffic import Caller, Population

PATHS = 5


async def _call(http: aiohttp.ClientSession, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    async with http.request(method, path, **kwargs) as resp:
        body = await resp.json(content_type=None)
        if not 200 <= resp.status < 300:
            raise StackFailure(f"set-up: {method} {path} answered {resp.status}: {body}")
        return body


def known_users(stack: OwnStack) -> list[dict[str, Any]]:
    """The seeded users whose passwords `cachegate up` wrote to <data_dir>/seed-users.json."""
    path = stack.data_dir / "seed-users.json"
    try:
        return list(json.loads(path.read_text())["users"])
    except (OSError, ValueError, KeyError) as exc:
        raise StackFailure(f"cannot read the seeded credentials in {path}: {exc}") from None


async def tokens(stack: OwnStack, users: list[dict[str, Any]]) -> tuple[Caller, ...]:
    """A fresh token for each known user, through the gateway's POST /auth/token."""
    async with aiohttp.ClientSession(stack.proxy_url) as http:
        out = []
        for user in users:
            token = await _call(http, "POST", "/auth/token",
                                json={"login": user["login"], "password": user["password"]})
            out.append(Caller(int(user["id"]), f"Bearer {token['access_token']}"))
    return tuple(out)


def seeded_ids(stack: OwnStack) -> tuple[int, ...]:
    conn = stack.db()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT id FROM users ORDER BY id")
            return tuple(int(row[0]) for row in cur.fetchall())
    finally:
        conn.close()


async def build(stack: OwnStack) -> Population:
    """Tokens for the known users (the last one the victim), the seeded ids, and PATHS paths with a trip
    on each (made as the first user)."""
    callers = await tokens(stack, known_users(stack))
    if len(callers) < 3:
        raise StackFailure("the fault suite needs at least three seeded users with known passwords")
    paths, trips = [], []
    async with aiohttp.ClientSession(stack.proxy_url,
                                     headers={"Authorization": callers[0].authorization}) as http:
        for i in range(PATHS):
            path = await _call(http, "POST", "/paths",
                               json={"start_point": f"Start {i}", "end_point": f"End {i}"})
            trip = await _call(http, "POST", "/trips", json={
                "path_id": path["id"], "name": f"Trip {i}", "starts_at": "2031-01-01T09:00:00Z",
                "finishes_at": "2031-01-01T17:00:00Z"})
            paths.append(int(path["id"]))
            trips.append(int(trip["id"]))
    return Population(callers[:-1], callers[-1], seeded_ids(stack), tuple(paths), tuple(trips))
