"""Mixed read/write traffic through the gateway with real tokens, every operation recorded in the history.

Each known user has several clients that PATCH its title and read it back (public and private view), so
writes and reads of one key overlap; they also read other users, searches, paths and trips. A few clients
open a new connection per request, as clients without keep-alive do. A database observer reads the written
users' versions straight from MariaDB, so reads can be checked against what the database had committed.
"""
from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import aiohttp
import pymysql

from loadtest.reliability.history import DB_CLIENT, OBSERVE, READ, SEARCH, WRITE, Op, short_cache_status

REQUEST_TIMEOUT_S = 15.0     # a client's own patience: longer than the gateway's upstream timeout (5 s)
THINK_S = (0.01, 0.03)       # pause between a client's operations: ~50 ops/s per client
OBSERVE_EVERY_S = 0.1
SEARCHES = ("Lov", "Tur", "Lis", "Ker", "Sha", "Knu", "Dij", "Hop")
MIX = (("write", 12), ("own", 22), ("me", 12), ("other", 18), ("any", 18), ("search", 6), ("path", 6),
       ("trip", 6))


@dataclass(frozen=True)
class Caller:
    user_id: int
    authorization: str = field(repr=False)


@dataclass(frozen=True)
class Population:
    """Who calls and what there is to read: the known users (with tokens), the seeded ids, paths, trips.

    `callers` write their own user and read everyone; the `victim` is read by them but written only by the
    harness (the proxy-killed scenario), so nothing else repairs what a crash could leave in its entry.
    """

    callers: tuple[Caller, ...]
    victim: Caller
    seeded: tuple[int, ...]
    paths: tuple[int, ...]
    trips: tuple[int, ...]

    @property
    def everyone(self) -> tuple[Caller, ...]:
        return (*self.callers, self.victim)


class Recorder:
    """The history of one scenario, times relative to its start; knows which writes are in flight."""

    def __init__(self, t0: float | None = None) -> None:
        self.t0 = time.monotonic() if t0 is None else t0
        self.ops: list[Op] = []
        self.in_flight: dict[tuple[str, str], float] = {}   # (client, key) of a write -> its start

    def now(self) -> float:
        return time.monotonic() - self.t0

    def add(self, op: Op) -> None:
        self.ops.append(op)


def _error_kind(exc: BaseException) -> str:
    if isinstance(exc, asyncio.TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "connect"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "disconnected"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "payload"
    if isinstance(exc, aiohttp.ClientOSError):
        return "reset"
    return type(exc).__name__


def _error_code(body: bytes) -> str:
    """The JSON error's code of a non-2xx answer, or `not-json` when the body is not the error shape."""
    try:
        error = json.loads(body)["error"]
        if isinstance(error, dict) and set(error) == {"code", "message"}:
            return str(error["code"])
    except (ValueError, KeyError, TypeError):
        pass
    return "not-json"


async def call(session: aiohttp.ClientSession, rec: Recorder, client: str, op: str, key: str, method: str,
               target: str, headers: dict[str, str], body: dict[str, Any] | None = None,
               sent: str = "", base: str = "") -> Op:
    """One request, recorded whatever happens: status, version, the field read back, Cache-Status."""
    start = rec.now()
    if op == WRITE:
        rec.in_flight[(client, key)] = start
    status, version, seen, error, cache = 0, None, "", "", ""
    try:
        async with session.request(method, base + target, headers=headers, json=body) as resp:
            raw = await resp.read()
            status, cache = resp.status, short_cache_status(resp.headers.get("Cache-Status"))
            if 200 <= status < 300:
                version, seen = _version_and_title(raw, resp.headers.get("ETag"))
            else:
                error = _error_code(raw)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        error = _error_kind(exc)
    finally:
        rec.in_flight.pop((client, key), None)
    done = Op(client, op, key, start, rec.now(), status, version, sent, seen, error, cache, target)
    rec.add(done)
    return done


def _version_and_title(raw: bytes, etag: str | None) -> tuple[int | None, str]:
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("version"), int):
        return body["version"], str(body.get("title", ""))
    if etag and etag.strip('"').isdigit():
        return int(etag.strip('"')), ""
    return None, ""


def session(base: str, *, keep_alive: bool = True, limit: int = 1) -> aiohttp.ClientSession:
    connector = aiohttp.TCPConnector(limit=limit, force_close=not keep_alive)
    return aiohttp.ClientSession(base, connector=connector,
                                 timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S))


async def mixed_client(name: str, caller: Caller, people: Population, rec: Recorder, base: str,
                       stop: asyncio.Event, *, keep_alive: bool = True, seed: str = "") -> None:
    """One client until `stop`: PATCHes of its own user, reads of it and of others, searches, paths, trips."""
    rng = random.Random(f"{seed}-{name}")
    kinds, weights = zip(*MIX)
    auth = {"Authorization": caller.authorization}
    me = caller.user_id
    others = [c.user_id for c in people.everyone if c.user_id != me]
    n = 0
    async with session(base, keep_alive=keep_alive) as http:
        while not stop.is_set():
            kind = rng.choices(kinds, weights)[0]
            if kind == "write":
                n += 1
                title = f"{name}-{n}"
                await call(http, rec, name, WRITE, f"user:{me}", "PATCH", f"/users/{me}", auth,
                           {"title": title}, sent=title)
            elif kind == "own":
                await call(http, rec, name, READ, f"user:{me}", "GET", f"/users/{me}", auth)
            elif kind == "me":
                await call(http, rec, name, READ, f"user:{me}", "GET", "/users/me", auth)
            elif kind == "other":
                other = rng.choice(others)
                await call(http, rec, name, READ, f"user:{other}", "GET", f"/users/{other}", auth)
            elif kind == "any":
                uid = rng.choice(people.seeded)
                await call(http, rec, name, READ, f"user:{uid}", "GET", f"/users/{uid}", auth)
            elif kind == "search":
                await call(http, rec, name, SEARCH, "", "GET",
                           f"/users/search?last_name={rng.choice(SEARCHES)}&limit=5", auth)
            elif kind == "path" and people.paths:
                if rng.random() < 0.5:   # a few long-lived entries, and searches that mostly miss
                    pid = rng.choice(people.paths)
                    await call(http, rec, name, READ, f"path:{pid}", "GET", f"/paths/{pid}", auth)
                else:
                    await call(http, rec, name, SEARCH, "", "GET",
                               f"/paths/search?start=Start&offset={rng.randrange(10**6)}", auth)
            elif kind == "trip" and people.trips:
                if rng.random() < 0.5:
                    tid = rng.choice(people.trips)
                    await call(http, rec, name, READ, f"trip:{tid}", "GET", f"/trips/{tid}", auth)
                else:
                    owner, offset = rng.choice(people.seeded), rng.randrange(10**6)
                    await call(http, rec, name, SEARCH, "", "GET", f"/trips?owner={owner}&offset={offset}",
                               auth)
            # Pacing of the load (about 50 operations a second per client), not a wait for anything.
            await asyncio.sleep(rng.uniform(*THINK_S))


def clients(people: Population, rec: Recorder, base: str, stop: asyncio.Event, *, per_user: int,
            fresh: int, seed: str) -> list[Callable[[], Any]]:
    """The mixed traffic: `per_user` keep-alive clients per writer, plus `fresh` that reconnect each time."""
    made: list[Callable[[], Any]] = []
    for i, caller in enumerate(people.callers):
        for j in range(per_user):
            name = f"c{i:02d}{chr(ord('a') + j)}"
            made.append(lambda n=name, c=caller: mixed_client(n, c, people, rec, base, stop, seed=seed))
    for k in range(fresh):
        caller = people.callers[k % len(people.callers)]
        made.append(lambda n=f"f{k:02d}", c=caller: mixed_client(n, c, people, rec, base, stop,
                                                                 keep_alive=False, seed=seed))
    return made


class Observer:
    """Reads the versions of the written users straight from MariaDB, over and over, into the history."""

    def __init__(self, connect: Callable[[], pymysql.connections.Connection], ids: list[int]) -> None:
        self._connect = connect
        self._ids = ids
        self._conn: pymysql.connections.Connection | None = None

    def _once(self) -> list[tuple[int, int]]:
        if self._conn is None:
            self._conn = self._connect()
        marks = ", ".join(["%s"] * len(self._ids))
        with self._conn.cursor() as cur:
            cur.execute(f"SELECT id, version FROM users WHERE id IN ({marks})", self._ids)
            return [(int(a), int(b)) for a, b in cur.fetchall()]

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except pymysql.MySQLError:
                pass
            self._conn = None

    async def run(self, rec: Recorder, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                start = rec.now()
                try:
                    rows = await asyncio.to_thread(self._once)
                except (pymysql.MySQLError, OSError) as exc:
                    self._close()
                    rec.add(Op(DB_CLIENT, OBSERVE, "", start, rec.now(), 0, error=type(exc).__name__))
                else:
                    end = rec.now()
                    for uid, version in rows:
                        rec.add(Op(DB_CLIENT, OBSERVE, f"user:{uid}", start, end, 200, version))
                # Sampling period of the observer (a rate, not a synchronisation).
                await asyncio.sleep(OBSERVE_EVERY_S)
        finally:
            await asyncio.to_thread(self._close)


async def burst(people: Population, rec: Recorder, base: str, *, clients: int, rounds: int,
                seed: str) -> None:
    """`clients` concurrent clients, each on a connection of its own, released at once on a cold cache."""
    rng = random.Random(f"burst-{seed}")
    go = asyncio.Event()
    ready = 0
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(base, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as http:
        async def one(i: int) -> None:
            nonlocal ready
            caller = people.callers[i % len(people.callers)]
            auth = {"Authorization": caller.authorization}
            ids = [rng.choice(people.seeded) for _ in range(rounds)]
            ready += 1
            if ready == clients:   # the last one in releases them all at once
                go.set()
            await go.wait()
            for uid in ids:
                await call(http, rec, f"b{i:04d}", READ, f"user:{uid}", "GET", f"/users/{uid}", auth)

        await asyncio.gather(*(one(i) for i in range(clients)))


async def spray(people: Population, rec: Recorder, base: str, stop: asyncio.Event, *, clients: int,
                seed: str) -> None:
    """Reads over many distinct keys (every seeded user, searches with distinct prefixes): fills Redis."""
    rng = random.Random(f"spray-{seed}")

    async def one(i: int) -> None:
        caller = people.callers[i % len(people.callers)]
        auth = {"Authorization": caller.authorization}
        n = 0
        async with session(base) as http:
            while not stop.is_set():
                n += 1
                if n % 2:
                    uid = rng.choice(people.seeded)
                    await call(http, rec, f"s{i:02d}", READ, f"user:{uid}", "GET", f"/users/{uid}", auth)
                else:
                    prefix = "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(4))
                    await call(http, rec, f"s{i:02d}", SEARCH, "", "GET",
                               f"/users/search?first_name={prefix}&limit=5", auth)

    await asyncio.gather(*(one(i) for i in range(clients)))
