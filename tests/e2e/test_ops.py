"""Operating the gateway: health, readiness, metrics, admin purge and the proxy's own error answers."""
from __future__ import annotations

import asyncio
import base64
import io
import time

import aiohttp
import pytest

from proxy.appkeys import ACCESS_LOG
from tests.support.redisclients import admin_client


async def test_health_ready_and_metrics(world):
    uid, auth = await world.user("olga")
    await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    assert (await world.proxy.get("/-/health")).status == 200
    ready = await world.proxy.get("/-/ready")
    assert ready.status == 200, await ready.text()
    assert await ready.json() == {"status": "ok", "redis": "ok",
                                  "upstreams": {"users": "ok", "paths": "ok", "trips": "ok"}}
    state = await (await world.admin.get("/-/admin/state")).json()
    assert state["ready"] is True
    assert set(state["checks"]) == {"redis", "upstream:users", "upstream:paths", "upstream:trips"}
    text = await (await world.proxy.get("/-/metrics")).text()
    assert 'cachegate_cache_requests_total{outcome="hit",reason="",route="GET /users/{id:int}"} 1.0' in text
    assert 'cachegate_requests_total{method="GET",route="GET /users/{id:int}",status="200",' \
           'strategy="read-through"} 2.0' in text
    assert "cachegate_upstream_duration_seconds_bucket" in text and "cachegate_breaker_state 0.0" in text
    assert "cachegate_ready 1.0" in text and 'cachegate_dependency_up{dependency="redis"} 1.0' in text


async def poll(probe, deadline: float = 10.0):
    """Call `probe()` until it returns something true, or fail after `deadline` seconds."""
    until = time.monotonic() + deadline
    while not (found := await probe()):
        assert time.monotonic() < until, "condition not reached in time"
        await asyncio.sleep(0.05)
    return found


async def test_still_ready_when_an_upstream_is_down_which_the_body_and_metrics_say(world):
    """Regression (issue 9 part 6): one upstream of three down made /-/ready 503, so an orchestrator would
    have taken every gateway out while two thirds of the API still worked."""
    await world.backends.servers["trips"].close()

    async def trips_down():
        resp = await world.proxy.get("/-/ready")
        body = await resp.json()
        return body["upstreams"]["trips"] != "ok" and (resp.status, body)

    status, body = await poll(trips_down)
    assert status == 200 and body == {"status": "ok", "redis": "ok",
                                      "upstreams": {"users": "ok", "paths": "ok", "trips": "unreachable"}}
    text = await (await world.proxy.get("/-/metrics")).text()
    assert 'cachegate_dependency_up{dependency="upstream:trips"} 0.0' in text
    assert 'cachegate_dependency_up{dependency="upstream:users"} 1.0' in text
    assert "cachegate_ready 1.0" in text
    state = await (await world.admin.get("/-/admin/state")).json()
    assert state["ready"] is True and state["checks"]["upstream:trips"] == "unreachable"


async def test_still_ready_when_redis_is_down_because_every_request_is_served(make_world, redis_factory):
    """Regression (issue 9 part 6): Redis down made /-/ready 503 though every request was served (bypass)."""
    redis = redis_factory()
    world = await make_world({"redis": {"url": redis.url, "timeout": "100ms"}})
    uid, auth = await world.user("rdown")
    redis.kill()

    async def redis_down():
        resp = await world.proxy.get("/-/ready")
        body = await resp.json()
        return body["redis"] != "ok" and (resp.status, body)

    status, body = await poll(redis_down)
    assert status == 200 and body["status"] == "ok" and body["redis"] == "unavailable", body
    assert (await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})).status == 200
    text = await (await world.proxy.get("/-/metrics")).text()
    assert 'cachegate_dependency_up{dependency="redis"} 0.0' in text and "cachegate_ready 1.0" in text
    assert (await world.admin.post("/-/admin/cache", json={"enabled": False})).status == 200

    async def redis_off():
        body = await (await world.proxy.get("/-/ready")).json()
        return body["redis"] == "off" and body
    await poll(redis_off)  # not checked while the cache is off: reported so, not as down
    assert 'dependency="redis"' not in await (await world.proxy.get("/-/metrics")).text()


async def test_ready_probes_reach_neither_the_upstreams_nor_redis(make_world, redis_factory):
    """Regression (issue 7): every probe of /-/ready sent a request to each upstream and a PING to Redis."""
    redis = redis_factory()  # its own, so its command counts are this test's alone
    world = await make_world({"redis": {"url": redis.url}, "proxy": {"readiness_interval": "1h"}})
    observer = admin_client(redis)
    try:
        assert (await world.proxy.get("/-/ready")).status == 200  # waits for the first round of checks
        health_before = world.backends.served("GET", "/-/health")
        pings_before = (await observer.info("commandstats")).get("cmdstat_ping", {}).get("calls", 0)
        for _ in range(50):
            resp = await world.proxy.get("/-/ready")
            assert resp.status == 200 and (await resp.json())["status"] == "ok"
        assert health_before == 3  # that one round: each upstream once
        assert world.backends.served("GET", "/-/health") == health_before
        pings = (await observer.info("commandstats")).get("cmdstat_ping", {}).get("calls", 0)
        assert pings == pings_before
    finally:
        await observer.aclose()


async def test_admin_purge_key_and_tag(world):
    uid, auth = await world.user("pam")
    for _ in range(2):
        await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
        await world.proxy.get("/users/search?last_name=Tes", headers={"Authorization": auth})
    assert (await world.admin.post("/-/admin/purge", json={"key": f"user:{uid}"})).status == 200
    assert (await world.admin.post("/-/admin/purge", json={"tag": "user-lists"})).status == 200
    one = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    two = await world.proxy.get("/users/search?last_name=Tes", headers={"Authorization": auth})
    assert "fwd=miss" in one.headers["Cache-Status"] and "fwd=miss" in two.headers["Cache-Status"]
    bad = await world.admin.post("/-/admin/purge", json={"everything": True})
    assert bad.status == 400 and "error" in await bad.json()
    bad = await world.admin.post("/-/admin/cache", data=b"{not json")
    assert bad.status == 400


ADMIN_CALLS = [("GET", "/-/admin/state", None), ("GET", "/-/admin/explain?target=/users/1", None),
               ("POST", "/-/admin/reload", None), ("POST", "/-/admin/cache", {"enabled": False}),
               ("POST", "/-/admin/purge", {"key": "user:1"}), ("POST", "/-/admin/purge", {"url": "/users/1"}),
               ("POST", "/-/admin/purge", {"tag": "user-lists"}),
               ("POST", "/-/admin/purge", {"prefix": "user"}),
               ("POST", "/-/admin/status/logout", None), ("GET", "/-/admin/nowhere", None)]


async def _redis_state(redis) -> dict:
    """Every key of the cache's Redis with its value (strings) or members (hashes, sets, sorted sets)."""
    read = {"string": redis.get, "hash": redis.hgetall, "set": redis.smembers,
            "zset": lambda k: redis.zrange(k, 0, -1, withscores=True)}
    state = {}
    async for key in redis.scan_iter(count=500):
        kind = (await redis.type(key)).decode()
        state[key] = (kind, await read[kind](key) if kind in read else None)
    return state


@pytest.mark.parametrize("authorization", [
    None, "Bearer wrong-token-of-some-length", "Bearer ", "", "Basic eDp5", "Basic {basic}", "Token {token}",
    "{token}", "bearer {token}", "Bearer {token}x", "Bearer {short}", "Bearer  {token}"])
async def test_every_admin_call_without_the_token_is_401_and_changes_nothing(make_world, redis_factory,
                                                                           authorization):
    """Regression (issue 7): without a configured token, any local process could turn the cache off. A wrong
    token, none, or the right one under another scheme is refused on every call, reads and changes alike,
    with a JSON error, and nothing changes: not the switch, the generation, or one key in Redis."""
    redis = redis_factory()  # its own: every key in it is this test's
    world = await make_world({"redis": {"url": redis.url}})
    uid, auth = await world.user("nina")
    search = "/users/search?last_name=Tester"
    for path in (f"/users/{uid}", search):  # a user entry (key user:N) and a tagged search (user-lists)
        await world.proxy.get(path, headers={"Authorization": auth})
        hit = await world.proxy.get(path, headers={"Authorization": auth})
        assert hit.headers["Cache-Status"].startswith("cachegate; hit"), path
    token = world.config.proxy.admin_token()
    observer = admin_client(redis)
    try:
        before = await _redis_state(observer)
        headers = {} if authorization is None else {"Authorization": authorization.format(
            token=token, short=token[:-1], basic=base64.b64encode(f"admin:{token}".encode()).decode())}
        async with aiohttp.ClientSession() as anyone:  # not world.admin: that one sends the token
            for method, path, body in ADMIN_CALLS:
                path = path.replace("/users/1", f"/users/{uid}").replace("user:1", f"user:{uid}")
                async with anyone.request(method, f"http://127.0.0.1:{world.config.proxy.admin_port}{path}",
                                          json=body, headers=headers, allow_redirects=False) as resp:
                    assert resp.status == 401, (method, path)
                    assert resp.content_type == "application/json", (method, path)
                    error = (await resp.json())["error"]
                    assert error["code"] == "unauthorized" and error["message"], (method, path)
                    assert resp.headers["WWW-Authenticate"].startswith("Bearer")
        assert await _redis_state(observer) == before  # nothing purged, no epoch moved
    finally:
        await observer.aclose()
    state = await (await world.admin.get("/-/admin/state")).json()
    assert state["cache_enabled"] is True and state["generation"] == 1  # neither switched off nor reloaded
    for path in (f"/users/{uid}", search):
        hit = await world.proxy.get(path, headers={"Authorization": auth})
        assert hit.headers["Cache-Status"].startswith("cachegate; hit"), path  # nothing purged


async def test_the_admin_token_lets_every_call_through(world):
    assert (await world.admin.post("/-/admin/cache", json={"enabled": False})).status == 200
    assert (await (await world.admin.get("/-/admin/state")).json())["cache_enabled"] is False
    missing = await world.admin.get("/-/admin/nowhere")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"


async def test_metrics_ready_and_health_are_open_and_hold_no_secret(world, test_secrets):
    uid, auth = await world.user("oscar")
    for _ in range(2):
        await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    await world.proxy.get("/users/1", headers={"Authorization": "Bearer not-a-token"})
    secrets = [world.config.proxy.admin_token(), world.config.redis.password(),
               world.config.mariadb.password(), test_secrets.redis_users.admin_password, auth.split()[1],
               world.config.auth.private_key_pem().splitlines()[1]]
    async with aiohttp.ClientSession() as anyone:  # no token of any kind
        for path in ("/-/metrics", "/-/ready", "/-/health"):
            async with anyone.get(f"http://127.0.0.1:{world.config.proxy.port}{path}") as resp:
                assert resp.status == 200, path
                text = await resp.text()
            assert "cachegate_" in text or path != "/-/metrics"
            for secret in secrets:
                assert secret not in text, path


async def test_no_route_and_wrong_method_are_json(world):
    missing = await world.proxy.get("/nowhere")
    assert missing.status == 404 and (await missing.json())["error"]["code"] == "not_found"
    wrong = await world.proxy.post("/users/1")
    assert wrong.status == 405 and "GET" in wrong.headers["Allow"]
    assert (await wrong.json())["error"]["code"] == "method_not_allowed"
    assert "Cache-Status" in wrong.headers and "X-Request-Id" in wrong.headers


async def test_request_id_is_passed_on_or_made(world):
    uid, auth = await world.user("quinn")
    given = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth, "X-Request-Id": "abc-123"})
    assert given.headers["X-Request-Id"] == "abc-123"
    for bad in ("has spaces", "x" * 200, "<script>"):
        made = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth, "X-Request-Id": bad})
        assert made.headers["X-Request-Id"] != bad and made.headers["X-Request-Id"]


async def test_body_over_the_limit_is_413(make_world):
    world = await make_world({"proxy": {"max_body": "1KiB"}})
    resp = await world.proxy.post("/users", data=b"x" * 4096, headers={"Content-Type": "application/json"})
    assert resp.status == 413 and (await resp.json())["error"]["code"] == "payload_too_large"


async def test_upstream_down_is_502_and_slow_is_504(make_world):
    world = await make_world({"proxy": {"upstream_timeout": "200ms"}})
    uid, auth = await world.user("rita")
    world.backends.max_delay = 0
    await world.backends.servers["paths"].close()
    down = await world.proxy.get("/paths/1", headers={"Authorization": auth})
    assert down.status == 502 and (await down.json())["error"]["code"] == "bad_gateway"
    assert (await world.admin.post("/-/admin/cache", json={"enabled": False})).status == 200
    world.backends.max_delay = 1.0  # every users request now waits up to a second; most exceed 200ms
    statuses = set()
    for _ in range(6):
        resp = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
        statuses.add(resp.status)
    assert 504 in statuses and statuses <= {200, 504}


async def test_access_log_line_names_route_cache_outcome_and_upstream_time(world):
    uid, auth = await world.user("sam")
    log = world.app[ACCESS_LOG]
    log.flush()
    log.stream = io.StringIO()
    await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    log.flush()
    lines = log.stream.getvalue().splitlines()
    assert len(lines) == 2
    assert "route='GET /users/{id:int}'" in lines[0] and "fwd=miss" in lines[0]
    assert "upstream=-" not in lines[0] and "upstream=" in lines[0]
    assert "hit" in lines[1] and "upstream=-" in lines[1]
    assert auth.split()[1] not in "".join(lines)  # credentials never reach the log
