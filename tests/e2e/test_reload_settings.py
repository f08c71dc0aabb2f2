"""A reload applies every setting of the generation and refuses every setting of the process, naming it.

The walk covers every setting the config declares (cachegate.config.settings): each is changed alone in
the file, the proxy is asked to reload, and either the change is seen where it acts (the answer of a
request, or the object that applies the setting) or the reload is refused with the key named and nothing
changed. A setting added without an entry here fails the walk.
"""
from __future__ import annotations

import base64
import copy
from pathlib import Path
from typing import Any, Awaitable, Callable

import yaml

from cachegate.config import settings
from cachegate.settings import GENERATION, PROCESS
from proxy.appkeys import ACCESS_LOG, GATEWAY, READINESS
from stack.net import free_port
from tests.support.world import World

REPO = Path(__file__).resolve().parents[2]


def shipped_routes_without_a_ttl_on_paths() -> list[dict]:
    """The shipped routes, but /paths/{id:int} keeps what it reads for cache.default_ttl."""
    routes = yaml.safe_load((REPO / "config.yaml").read_text())["routes"]
    for rule in routes:
        if rule["path"] == "/paths/{id:int}" and rule["strategy"] == "read-through":
            del rule["ttl"]
    return routes


def put(data: dict, key: str, value: Any) -> None:
    *parents, last = key.split(".")
    if key == "mariadb.nodes":  # the test world gives its one node as host and port, the shorthand
        data["mariadb"].pop("host", None)
        data["mariadb"].pop("port", None)
    node = data
    for part in parents:
        node = node[part]
    node[last] = value


def process_changes(tmp_path: Path) -> dict[str, Any]:
    """A valid new value for each setting of the process (`*`: every service)."""
    other = tmp_path / "other-secret"
    other.write_text("another-secret-long-enough\n")
    return {
        "stack.data_dir": str(tmp_path / "elsewhere"),
        "proxy.host": "127.0.0.2", "proxy.port": free_port(), "proxy.workers": 2,
        "proxy.admin.host": "127.0.0.2", "proxy.admin.port": free_port(),
        "proxy.admin.token_file": str(other),
        "proxy.max_body": "2MiB",
        "proxy.header_timeout": "7s", "proxy.body_timeout": "20s", "proxy.keepalive_timeout": "30s",
        "proxy.max_connections": 100, "proxy.upstream_pool": 32, "proxy.drain": "3s",
        "redis.maxmemory": "64MiB", "redis.maxmemory_policy": "noeviction",
        "redis.url": f"redis://127.0.0.1:{free_port()}/0", "redis.username": "someone-else",
        "redis.password_file": str(other), "redis.timeout": "300ms", "redis.breaker.failures": 7,
        "redis.breaker.reset": "3s", "redis.cluster.replicas": 0, "redis.cluster.node_timeout": "2s",
        "redis.cluster.nodes": [f"127.0.0.1:{free_port()}" for _ in range(6)],
        "mariadb.nodes": [f"127.0.0.2:{free_port()}"], "mariadb.database": "other",
        "mariadb.user": "other", "mariadb.password_file": str(other), "mariadb.pool.min": 1,
        "mariadb.pool.max": 8, "mariadb.connect_timeout": "3s", "mariadb.query_timeout": "3s",
        "mariadb.sync_wait": 0, "mariadb.probe.interval": "1s", "mariadb.probe.timeout": "2s",
        "mariadb.conflict_retries": 5,
        "auth.algorithm": "ES384", "auth.issuer": "someone-else", "auth.public_key": str(other),
        "auth.private_key": str(other), "auth.token_ttl": "20m", "auth.leeway": "20s",
        "cache.prefix": "another-prefix",
        "logging.level": "debug", "logging.access_format": "json",
        "logging.access_dir": str(tmp_path / "logs"),
        "services.*.host": "127.0.0.2", "services.*.port": free_port(), "services.*.max_body": "2MiB",
        "services.*.access_log": False,
        "invalidator.enabled": True, "invalidator.host": "127.0.0.2", "invalidator.port": free_port(),
        "invalidator.user": "other", "invalidator.password_file": str(other), "invalidator.server_id": 999,
        "invalidator.lag_bound": "3s", "invalidator.probe_interval": "200ms", "invalidator.heartbeat": "2s",
        "invalidator.check_interval": "300ms",
        "invalidations": [{"table": "users", "keys": ["user:{id}"]}],
    }


Check = Callable[[World], Awaitable[None]]


async def token_for(world: World) -> str:
    _, auth = await world.user(f"u{free_port()}")
    return auth


async def fresh_basic(world: World) -> str:
    """Basic credentials the proxy has not exchanged yet (an exchange is remembered)."""
    login = f"b{free_port()}"
    await world.user(login, "correct-horse-battery")
    return "Basic " + base64.b64encode(f"{login}:correct-horse-battery".encode()).decode()


async def hit_ttl(world: World, path: str, auth: str) -> int:
    """Fill, then read again: the ttl the hit says is left (RFC 9211)."""
    first = await world.proxy.get(path, headers={"Authorization": auth})
    assert "stored" in first.headers["Cache-Status"], first.headers["Cache-Status"]
    second = await world.proxy.get(path, headers={"Authorization": auth})
    status = second.headers["Cache-Status"]
    assert "hit" in status, status
    return int(status.split("ttl=")[1].split(";")[0])


async def a_path(world: World, auth: str) -> int:
    body = {"start_point": "Ashford", "end_point": f"Dover {free_port()}"}
    resp = await world.proxy.post("/paths", json=body, headers={"Authorization": auth})
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


def generation_changes() -> dict[str, tuple[Any, Check]]:
    """A new value for each setting of the generation, and how to see that it is applied."""

    async def upstream_connect_timeout(world: World) -> None:
        assert world.app[GATEWAY].generation.upstream.timeout.sock_connect == 3.0

    async def upstream_timeout(world: World) -> None:
        world.backends.delay = 0.6
        try:
            resp = await world.proxy.post("/auth/token", json={"login": "nobody", "password": "x"})
            assert resp.status == 504, await resp.text()
        finally:
            world.backends.delay = 0.0

    async def access_log(world: World) -> None:
        log, written = world.app[ACCESS_LOG], []
        log.write = lambda *line: written.append(line)  # type: ignore[method-assign]
        try:
            assert (await world.proxy.get("/-/nothing-here")).status == 404
        finally:
            del log.write
        assert written == []  # no line for it

    async def readiness_interval(world: World) -> None:
        assert world.app[READINESS]._interval() == 7.0

    async def cache_enabled(world: World) -> None:
        auth = await token_for(world)
        resp = await world.proxy.get("/users/me", headers={"Authorization": auth})
        assert resp.headers["Cache-Status"] == "cachegate; fwd=bypass; detail=CACHE-OFF"

    async def default_ttl(world: World) -> None:
        auth = await token_for(world)
        ttl = await hit_ttl(world, f"/paths/{await a_path(world, auth)}", auth)
        assert 350 <= ttl <= 400, ttl  # jitter shortens by up to 10%

    async def negative_ttl(world: World) -> None:
        auth = await token_for(world)
        ttl = await hit_ttl(world, f"/trips/{free_port() + 10**6}/members", auth)
        assert 30 <= ttl <= 40, ttl

    def on_strategies(name: str, value: float) -> Check:
        async def check(world: World) -> None:
            for strategy in world.app[GATEWAY].generation.strategies.values():
                assert getattr(strategy.settings, name) == value, (strategy.name, name)
        return check

    async def exchange_broken(world: World) -> None:
        resp = await world.proxy.get("/users/me", headers={"Authorization": await fresh_basic(world)})
        assert resp.status == 502, await resp.text()

    def upstream_dead(method: str, path: str, body: dict | None) -> Check:
        async def check(world: World) -> None:
            auth = await token_for(world) if path != "/auth/token" else None
            resp = await world.proxy.request(method, path, json=body,
                                             headers={"Authorization": auth} if auth else {})
            assert resp.status == 502, await resp.text()
        return check

    async def routes(world: World) -> None:
        resp = await world.proxy.get("/users/me", headers={"Authorization": await token_for(world)})
        assert resp.headers["Cache-Status"] == "cachegate; fwd=bypass; detail=passthrough"

    rules = shipped_routes_without_a_ttl_on_paths()
    me = next(r for r in rules if r["path"] == "/users/me")
    for option in ("key", "ttl", "negative_ttl", "scope"):
        del me[option]
    me["strategy"] = "passthrough"
    dead = f"http://127.0.0.1:{free_port()}"
    return {
        "routes": (rules, routes),
        "proxy.upstream_connect_timeout": ("3s", upstream_connect_timeout),
        "proxy.upstream_timeout": ("200ms", upstream_timeout),
        "proxy.access_log": (False, access_log),
        "proxy.readiness_interval": ("7s", readiness_interval),
        "cache.enabled": (False, cache_enabled),
        "cache.default_ttl": ("400s", default_ttl),
        "cache.negative_ttl": ("40s", negative_ttl),
        "cache.jitter": ("0%", on_strategies("jitter", 0.0)),
        "cache.grace": ("9m", on_strategies("grace", 540.0)),
        "cache.tombstone_ttl": ("45s", on_strategies("tombstone_ttl", 45.0)),
        "cache.fill_wait": ("3s", on_strategies("fill_wait", 3.0)),
        "auth.exchange_upstream": ("paths", exchange_broken),
        "auth.exchange_path": ("/no-such-endpoint", exchange_broken),
        "upstreams.users": (dead, upstream_dead("POST", "/auth/token", {"login": "x", "password": "y"})),
        "upstreams.paths": (dead, upstream_dead("POST", "/paths", {"start_point": "A", "end_point": "B"})),
        "upstreams.trips": (dead, upstream_dead("GET", "/trips/1/members", None)),
    }


async def reload(world: World) -> tuple[int, dict]:
    resp = await world.admin.post("/-/admin/reload")
    return resp.status, await resp.json()


async def test_every_setting_is_applied_by_a_reload_or_refused_naming_it(make_world, tmp_path):
    """Regression: a reload rebuilt only the routes and strategies, and a change of cache.prefix, auth.leeway,
    redis.timeout or proxy.max_body "succeeded" while nothing used it."""
    world = await make_world({"routes": shipped_routes_without_a_ttl_on_paths()}, as_file=True)
    path = world.config.path
    original = yaml.safe_load(path.read_text())
    declared = {s.key: s.lifetime for s in settings(world.config)}
    process, generation = process_changes(tmp_path), generation_changes()
    expand = {k.replace("*", name): v for k, v in process.items() for name in world.config.services}
    process = {k: v for k, v in {**process, **expand}.items() if "*" not in k}
    assert set(declared) == set(process) | set(generation), "a setting without an entry here"
    assert {k for k, v in declared.items() if v == PROCESS} == set(process)
    assert {k for k, v in declared.items() if v == GENERATION} == set(generation)

    number = 1
    for key, value in process.items():
        changed = copy.deepcopy(original)
        put(changed, key, value)
        path.write_text(yaml.safe_dump(changed, sort_keys=False))
        status, body = await reload(world)
        assert status == 422, (key, body)
        assert body["error"]["message"].startswith(f"config refused, the previous one keeps serving: {key}: "
                                                   "changed from"), (key, body)
        assert world.app[GATEWAY].generation.number == number, key
    for key, (value, check) in generation.items():
        changed = copy.deepcopy(original)
        put(changed, key, value)
        path.write_text(yaml.safe_dump(changed, sort_keys=False))
        status, body = await reload(world)
        assert status == 200, (key, body)
        number += 1
        assert body["generation"] == number
        await check(world)
        path.write_text(yaml.safe_dump(original, sort_keys=False))
        status, body = await reload(world)  # back to the start, so the next setting changes alone
        assert status == 200, (key, body)
        number += 1
