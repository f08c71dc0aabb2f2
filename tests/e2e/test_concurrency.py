"""Read-your-writes and monotonic versions end to end, under concurrency that forces the races.

The proxy and the three services (their apps, in this process, on real sockets: tests/support/world.py),
MariaDB and Redis are real. Each trip has two
writers (its owner's two sessions) and joiners, each user two writers (its two sessions), each key three
readers; the reads of trips and public users live 300 ms with no grace, and a purger drops keys through the
admin API, so fills race the writes all along; the services delay each request at random before their
handler and after it (the row read or the write committed, the answer late). Beside that traffic, a racer
forces two races on a user of its own, every round:

- two writes settle out of commit order: the first commits, its answer is held until the second (newer)
  one is acknowledged, then it settles; the store must keep the newer version (the version floor);
- a slow fill of an old version lands after a newer write: a read reads the row, its answer is held until
  a write of the user is acknowledged, then it fills; the store must refuse it (token and floor).

Every operation is recorded with its start, end and version, and tests/support/history.py checks the
history, then every key read through the proxy against MariaDB read directly. The run is bounded (a fixed
count of operations, a hang guard), asserts no timing, and runs once more over the same store with its
version checks cut out (tests/support/unarbitrated.py), where the checker must find the first race.
"""
from __future__ import annotations

import asyncio
import collections
import contextlib
import random
from dataclasses import dataclass, field
from typing import AsyncIterator

import pytest
import yaml

from tests.support.configs import REPO
from tests.support.dbrows import fetch_rows
from tests.support.history import READ, WRITE, History, Op, check
from tests.support.unarbitrated import without_version_checks
from tests.support.world import Backends, Hold, World

pytestmark = pytest.mark.slow
TRIPS, USERS = 3, 2       # keys with concurrent writers
JOINERS = 3               # users who join every trip, each once
WRITES = 6                # per writer
READERS, READS = 3, 20    # per key, per reader
PURGES = 30
RACES = 3                 # rounds of the two forced races
SHORT = {"ttl": "300ms", "grace": "0s"}  # the reads of trips and public users: misses all along
HANG_GUARD = 90.0         # seconds: a stuck run fails (before pytest's own 120 s); not a time limit


def config() -> dict:
    routes = yaml.safe_load((REPO / "config.yaml").read_text())["routes"]
    for route in routes:
        if route["methods"] == ["GET"] and route["path"] in ("/trips/{id:int}", "/users/{id:int}"):
            route.update(SHORT)
    # A held answer waits while the other side of its race goes through: on a loaded machine that must not
    # reach the proxy's upstream time-out (an unknown outcome), nor Redis calls theirs (a bypass).
    return {"routes": routes, "proxy": {"upstream_timeout": "30s"}, "redis": {"timeout": "1s"}}


def etag(resp) -> int:
    return int(resp.headers["ETag"].strip('W/"'))


async def pause(most: float) -> None:
    await asyncio.sleep(random.uniform(0, most))  # spreads the operations; nothing waits on it


async def until(event: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), 30)  # a hang guard: the event comes from our own request
    except TimeoutError:
        raise AssertionError(f"never happened: {what}") from None


def trip_body(path_id: int, name: str) -> dict:
    return {"path_id": path_id, "name": name, "starts_at": "2030-06-01T09:00:00Z",
            "finishes_at": "2030-06-02T18:00:00Z"}


@dataclass
class Cast:
    owner: list[str]                     # the trips' owner: two sessions (Authorization values)
    path_id: int
    trips: list[int]
    joiners: list[str]                   # a session each
    users: dict[int, list[str]]          # id -> two sessions
    racer: int
    racer_sessions: list[str]


async def session(world: World, login: str, password: str = "correct-horse-battery") -> str:
    resp = await world.proxy.post("/auth/token", json={"login": login, "password": password})
    assert resp.status == 200, await resp.text()
    return "Bearer " + (await resp.json())["access_token"]


async def cast(world: World) -> Cast:
    _, owner = await world.user("owner")
    resp = await world.proxy.post("/paths", json={"start_point": "Here", "end_point": "There"},
                                  headers={"Authorization": owner})
    assert resp.status == 201, await resp.text()
    path_id = (await resp.json())["id"]
    trips = []
    for i in range(TRIPS):
        resp = await world.proxy.post("/trips", json=trip_body(path_id, f"trip{i}"),
                                      headers={"Authorization": owner})
        assert resp.status == 201, await resp.text()
        trips.append((await resp.json())["id"])
    joiners = [(await world.user(f"joiner{i}"))[1] for i in range(JOINERS)]
    users = {}
    for i in range(USERS):
        uid, first = await world.user(f"writer{i}")
        users[uid] = [first, await session(world, f"writer{i}")]
    racer, first = await world.user("racer")
    return Cast([owner, await session(world, "owner")], path_id, trips, joiners, users, racer,
                [first, await session(world, "racer")])


def fill_of(status: str) -> str:
    """What a read's Cache-Status says the cache did: hit, stored, collapsed (onto another's fill), or why
    its fill was refused (detail=fenced, detail=raced...)."""
    if "; hit" in status:
        return "hit"
    return status.rpartition("; ")[2] if "fwd=miss" in status else "other"


@dataclass
class Run:
    world: World
    history: History
    unexpected: list[str] = field(default_factory=list)
    cache: collections.Counter = field(default_factory=collections.Counter)  # what the reads' fills did

    async def read(self, client: str, key: str, path: str, auth: str) -> Op:
        start = self.history.clock()
        resp = await self.world.proxy.get(path, headers={"Authorization": auth})
        body = await resp.read()
        if resp.status != 200:
            self.unexpected.append(f"{client} GET {path}: {resp.status} {body[:200]!r}")
        self.cache[fill_of(resp.headers.get("Cache-Status", ""))] += 1
        return self.history.add(client, READ, key, start, etag(resp) if resp.status == 200 else None,
                                f"GET {path}")

    async def write(self, client: str, key: str, method: str, path: str, auth: str, *, ok: int = 200,
                    json: dict | None = None) -> Op:
        start = self.history.clock()
        resp = await self.world.proxy.request(method, path, json=json, headers={"Authorization": auth})
        body = await resp.read()
        if resp.status != ok:
            self.unexpected.append(f"{client} {method} {path}: {resp.status} {body[:200]!r}")
        return self.history.add(client, WRITE, key, start, etag(resp) if resp.status == ok else None,
                                f"{method} {path}")

    async def purge(self, key: str) -> None:
        resp = await self.world.admin.post("/-/admin/purge", json={"key": key})
        if resp.status != 200:
            self.unexpected.append(f"purge {key}: {resp.status} {await resp.text()}")


async def trip_writer(run: Run, client: str, trip: int, auth: str, path_id: int) -> None:
    for n in range(WRITES):
        await run.write(client, f"trip:{trip}", "PUT", f"/trips/{trip}", auth,
                        json=trip_body(path_id, f"{client}-{n}"))
        await pause(0.02)


async def joiner(run: Run, client: str, trips: list[int], auth: str) -> None:
    for trip in random.sample(trips, len(trips)):
        await run.write(client, f"trip:{trip}", "POST", f"/trips/{trip}/members", auth, ok=201)
        await pause(0.04)


async def user_writer(run: Run, client: str, uid: int, auth: str) -> None:
    for n in range(WRITES):
        await run.write(client, f"user:{uid}", "PATCH", f"/users/{uid}", auth,
                        json={"title": f"{client}-{n}"})
        await pause(0.02)


async def reader(run: Run, client: str, key: str, path: str, auth: str) -> None:
    for _ in range(READS):
        await run.read(client, key, path, auth)
        await pause(0.01)


async def purger(run: Run, keys: list[str]) -> None:
    for _ in range(PURGES):
        await run.purge(random.choice(keys))
        await pause(0.03)


@contextlib.asynccontextmanager
async def holding(backends: Backends, method: str, path: str) -> AsyncIterator[Hold]:
    """The next `method` `path` answer held (tests/support/world.py); released at the end whatever happens."""
    held = backends.hold(method, path)
    try:
        yield held
    finally:
        held.release()
        if held in backends.holds:
            backends.holds.remove(held)


async def racer(run: Run, uid: int, sessions: list[str]) -> None:
    """The two races, forced by holding one answer until the other side is acknowledged (see the top)."""
    a, b = sessions
    key, me, user = f"user:{uid}", "/users/me", f"/users/{uid}"
    backends = run.world.backends
    for n in range(RACES):
        # Out-of-order settling: the older write's settle comes after the newer one's acknowledgement.
        async with holding(backends, "PATCH", user) as held, asyncio.TaskGroup() as group:
            group.create_task(run.write("racer-a", key, "PATCH", user, a, json={"title": f"slow{n}"}))
            await until(held.reached, "the first PATCH committed")
            await run.write("racer-b", key, "PATCH", user, b, json={"title": f"fast{n}"})
            await run.read("racer-b", key, me, b)
            held.release()
        await run.read("racer-a", key, me, a)
        await run.read("racer-b", key, me, b)
        # A slow fill: the row is read, then a newer write is acknowledged, then the fill comes back.
        await run.purge(f"user-me:{uid}")
        async with holding(backends, "GET", me) as held, asyncio.TaskGroup() as group:
            group.create_task(run.read("racer-a", key, me, a))
            await until(held.reached, "the slow read read the row")
            await run.write("racer-b", key, "PATCH", user, b, json={"title": f"after{n}"})
            held.release()
        await run.read("racer-a", key, me, a)
        await run.read("racer-b", key, me, b)


async def row_versions(world: World, table: str, ids: list[int]) -> list[tuple[int, int]]:
    """(id, version) of the rows, read from MariaDB directly (table names are this module's own)."""
    marks = ", ".join(["%s"] * len(ids))
    rows = await fetch_rows(world.config, f"SELECT id, version FROM {table} WHERE id IN ({marks})", ids)
    return [(int(i), int(v)) for i, v in rows]


@dataclass
class Outcome:
    ops: list[Op]
    finals: list[Op]
    database: dict[str, int]
    unexpected: list[str]
    cache: collections.Counter
    racer: str


async def workload(world: World) -> Outcome:
    people = await cast(world)
    run = Run(world, History(asyncio.get_running_loop().time))
    tasks = [racer(run, people.racer, people.racer_sessions)]
    keys = []
    for trip in people.trips:
        keys.append(f"trip:{trip}")
        tasks += [trip_writer(run, f"owner{s}-trip{trip}", trip, auth, people.path_id)
                  for s, auth in enumerate(people.owner)]
        tasks += [reader(run, f"reader{i}-trip{trip}", f"trip:{trip}", f"/trips/{trip}",
                         random.choice([*people.joiners, *people.owner])) for i in range(READERS)]
    tasks += [joiner(run, f"joiner{i}", people.trips, auth) for i, auth in enumerate(people.joiners)]
    for uid, sessions in people.users.items():
        keys.append(f"user:{uid}")
        tasks += [user_writer(run, f"user{uid}-s{s}", uid, auth) for s, auth in enumerate(sessions)]
        tasks += [reader(run, f"reader{i}-user{uid}", f"user:{uid}", f"/users/{uid}",
                         people.joiners[i % JOINERS]) for i in range(READERS)]
    tasks.append(purger(run, keys))
    world.backends.max_delay, world.backends.max_answer_delay = 0.01, 0.03
    try:
        async with asyncio.timeout(HANG_GUARD), asyncio.TaskGroup() as group:  # one fails: all stop
            for task in tasks:
                group.create_task(task)
    finally:
        world.backends.max_delay = world.backends.max_answer_delay = 0.0
    ops = list(run.history.ops)
    # Nothing in flight: every view of every key through the proxy, then the rows as MariaDB has them.
    views = [(f"trip:{t}", f"/trips/{t}", people.owner[0]) for t in people.trips]
    for uid, sessions in [*people.users.items(), (people.racer, people.racer_sessions)]:
        views += [(f"user:{uid}", f"/users/{uid}", people.owner[0]),
                  (f"user:{uid}", "/users/me", sessions[0])]
    for key, path, auth in views:
        await run.read("final", key, path, auth)
    finals = run.history.ops[len(ops):]
    database = {f"trip:{i}": v for i, v in await row_versions(world, "trips", people.trips)}
    database |= {f"user:{i}": v for i, v in await row_versions(world, "users", [*people.users, people.racer])}
    return Outcome(ops, finals, database, run.unexpected, run.cache, f"user:{people.racer}")


def report(found) -> str:
    return "\n".join(f"{v.rule} {v.key}: {v.detail}" for v in found[:20])


async def test_read_your_writes_and_monotonic_versions_under_concurrency(make_world):
    world = await make_world(config())
    outcome = await workload(world)
    assert not outcome.unexpected, outcome.unexpected
    writes = [op for op in outcome.ops if op.kind == WRITE]
    expected = TRIPS * (2 * WRITES + JOINERS) + USERS * 2 * WRITES + RACES * 3
    assert len(writes) == expected and all(op.version for op in writes)
    found = check(outcome.ops, outcome.finals, outcome.database)
    assert not found, report(found)
    # The run did what it is for: reads missed and filled between writes, found writes in flight (each
    # first race's read, at least), and fills were refused for a write since their lookup (each slow fill:
    # its token changed, and its version is older than the key's; either refuses it).
    cache = outcome.cache
    assert cache["stored"] > 10 and cache["hit"] > 10, cache
    assert cache["detail=fenced"] >= RACES and cache["detail=raced"] + cache["detail=older"] >= RACES, cache


async def test_the_checker_catches_a_store_without_its_version_checks(make_world, monkeypatch):
    cuts = without_version_checks(monkeypatch)
    world = await make_world(config())
    outcome = await workload(world)
    assert sorted(set(cuts)) == ["fill.lua", "write.lua"]
    assert not outcome.unexpected, outcome.unexpected
    found = check(outcome.ops, outcome.finals, outcome.database)
    # The out-of-order settle stores the older write over the newer one, every round: a read after the
    # newer write's acknowledgement shows the older version.
    caught = [v for v in found if v.rule == "read-your-writes" and v.key == outcome.racer]
    assert len(caught) >= RACES, report(found)
