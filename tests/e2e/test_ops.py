"""Operating the gateway: health, readiness, metrics, admin purge and the error answers of the proxy itself."""
from __future__ import annotations

import io

from proxy.app import ACCESS_LOG



async def test_health_ready_and_metrics(world):
    uid, auth = await world.user("olga")
    await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    assert (await world.proxy.get("/-/health")).status == 200
    ready = await world.proxy.get("/-/ready")
    assert ready.status == 200, await ready.text()
    assert set((await ready.json())["checks"]) == {"redis", "upstream:users", "upstream:paths", "upstream:trips"}
    text = await (await world.proxy.get("/-/metrics")).text()
    assert 'cachegate_cache_outcomes_total{outcome="hit",reason="",route="GET /users/{id:int}"} 1.0' in text
    assert 'cachegate_requests_total{method="GET",route="GET /users/{id:int}",status="200",' \
           'strategy="read-through"} 2.0' in text
    assert "cachegate_upstream_seconds_bucket" in text and "cachegate_breaker_state 0.0" in text


async def test_not_ready_when_an_upstream_is_down(world):
    await world.backends.servers["trips"].close()
    ready = await world.proxy.get("/-/ready")
    assert ready.status == 503
    assert (await ready.json())["checks"]["upstream:trips"] == "unreachable"


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


async def test_admin_token_guards_the_admin_listener(make_world):
    world = await make_world({"proxy": {"admin": {"token": "s3cret-admin"}}})
    assert (await world.admin.get("/-/admin/state")).status == 401
    ok = await world.admin.get("/-/admin/state", headers={"Authorization": "Bearer s3cret-admin"})
    assert ok.status == 200 and (await ok.json())["cache_enabled"] is True


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
