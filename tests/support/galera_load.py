"""Mixed traffic through the gateway, every write it acknowledged on record, for the cluster's fault tests.

Each writer owns one user: it PATCHes it (a new title each time, so the row tells which write it holds),
creates paths and trips, and reads its user and its paths back; every answer is kept by status and error
code. After the fault, `check_nothing_lost` reads every acknowledged write back from each node.
"""
from __future__ import annotations

import asyncio
import collections
import itertools
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.galera_stack import ClusterStack

PASSWORD = "correct horse battery"
# What a request through the gateway may get while a node dies: success, or a JSON refusal that says why.
ALLOWED_ERRORS = {(503, "database_unavailable"), (503, "write_outcome_unknown"), (409, "write_conflict"),
                  (504, "gateway_timeout")}


@dataclass
class Writer:
    user_id: int
    auth: dict[str, str]
    acked_versions: list[tuple[int, str]] = field(default_factory=list)  # (version, title) acknowledged
    paths: dict[int, str] = field(default_factory=dict)                    # id -> end_point acknowledged
    trips: dict[int, str] = field(default_factory=dict)                    # id -> name acknowledged


async def register(http: aiohttp.ClientSession, base: str, login: str) -> tuple[int, dict[str, str]]:
    body = {"login": login, "password": PASSWORD, "first_name": "Grace", "last_name": "Hopper",
            "email": f"{login}@example.com", "title": "t0"}
    async with http.post(f"{base}/users", json=body) as resp:
        assert resp.status == 201, await resp.text()
        user_id = (await resp.json())["id"]
    async with http.post(f"{base}/auth/token", json={"login": login, "password": PASSWORD}) as resp:
        assert resp.status == 200, await resp.text()
        return user_id, {"Authorization": f"Bearer {(await resp.json())['access_token']}"}


class Load:
    """`writers` clients, each writing and reading in a loop through the proxy until `stop()`."""

    def __init__(self, http: aiohttp.ClientSession, stack: ClusterStack, writers: list[Writer]) -> None:
        self.http, self.base, self.writers = http, stack.proxy_url, writers
        self.answers: collections.Counter[tuple[int, str]] = collections.Counter()
        self.unexpected: list[str] = []
        self.acked = 0
        self._stop = asyncio.Event()
        self._seq = itertools.count(1)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await asyncio.gather(*(self._client(w) for w in self.writers))

    async def _client(self, w: Writer) -> None:
        while not self._stop.is_set():
            n = next(self._seq)
            title = f"t{n}"
            body = await self._call("PATCH", f"/users/{w.user_id}", w, {"title": title})
            if body is not None:
                w.acked_versions.append((body["version"], title))
            end = f"E{n}"
            body = await self._call("POST", "/paths", w, {"start_point": f"S{w.user_id}", "end_point": end})
            if body is not None:
                w.paths[body["id"]] = end
                name = f"trip {n}"
                trip = {"path_id": body["id"], "name": name, "starts_at": "2030-06-01T09:00:00Z",
                        "finishes_at": "2030-06-02T16:00:00Z"}
                made = await self._call("POST", "/trips", w, trip)
                if made is not None:
                    w.trips[made["id"]] = name
            await self._call("GET", f"/users/{w.user_id}", w)
            if w.paths:
                await self._call("GET", f"/paths/{next(reversed(w.paths))}", w)

    async def _call(self, method: str, path: str, w: Writer, body: Any = None) -> dict[str, Any] | None:
        """The answer's JSON when 2xx (a write: counted as acknowledged), else None; any other kind of
        answer than ALLOWED_ERRORS is recorded as unexpected."""
        try:
            async with self.http.request(method, self.base + path, json=body, headers=w.auth) as resp:
                text = await resp.text()
                status = resp.status
                data = await resp.json(content_type=None) if text else None
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.unexpected.append(f"{method} {path}: {exc!r}")  # a hang or a broken connection
            return None
        if 200 <= status < 300:
            self.answers[(status, "ok")] += 1
            if method != "GET":
                self.acked += 1
            return data
        code = data.get("error", {}).get("code") if isinstance(data, dict) else None
        self.answers[(status, str(code))] += 1
        if (status, code) not in ALLOWED_ERRORS:
            self.unexpected.append(f"{method} {path}: {status} {text[:200]}")
        return None


def check_nothing_lost(stack: ClusterStack, writers: list[Writer]) -> dict[str, int]:
    """Every acknowledged write is on every node: each user at (or past) its last acknowledged version,
    holding that write's title when at it; every acknowledged path and trip. Returns what was checked."""
    checked = collections.Counter()
    for node in range(len(stack.config.mariadb.nodes)):
        for w in writers:
            (version, title), = stack.query(node, "SELECT version, title FROM users WHERE id = %s",
                                            (w.user_id,))
            if w.acked_versions:
                acked, acked_title = max(w.acked_versions)
                assert version >= acked, (node, w.user_id, version, acked)
                # A later write with an unknown outcome may have committed; else the row is the acked one.
                assert version > acked or title == acked_title, (node, w.user_id, title, acked_title)
                checked["users"] += 1
            for table, rows, column in (("paths", w.paths, "end_point"), ("trips", w.trips, "name")):
                if not rows:
                    continue
                found = dict(stack.query(node, f"SELECT id, {column} FROM {table} WHERE id IN "
                                               f"({', '.join(['%s'] * len(rows))})", tuple(rows)))
                assert found == rows, (node, table, set(rows) - set(found))
                checked[table] += len(rows)
    return dict(checked)
