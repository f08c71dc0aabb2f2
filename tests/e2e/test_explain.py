"""`explain`: the rule and key a request gets (as the request itself does), and the store's view of it."""
from __future__ import annotations

import asyncio

import pytest

from tests.e2e.test_ops import poll
from tests.support.world import world_on


@pytest.fixture(params=["single", "cluster"])
async def world(request, make_world):
    """Each test on the single Redis and on the Redis Cluster."""
    return await world_on(request.param, request, make_world)


async def explain(world, target: str, method: str = "GET", caller: int | None = None) -> dict:
    query = {"method": method, "target": target, **({"caller": str(caller)} if caller is not None else {})}
    resp = await world.admin.get("/-/admin/explain", params=query)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_a_hit_is_explained_with_its_rule_key_and_entry(world):
    uid, auth = await world.user("ezra")
    for _ in range(2):
        await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    found = await explain(world, f"/users/{uid}")
    rule = found["rule"]
    assert (rule["name"], rule["strategy"], rule["upstream"], rule["scope"]) == \
        ("GET /users/{id:int}", "read-through", "users", "shared")
    assert (rule["ttl"], rule["negative_ttl"], rule["grace"]) == (300.0, 10.0, 300.0)
    assert found["key"] == f"user:{uid}" and found["cache"] == "used"
    entry = found["entry"]
    assert (entry["state"], entry["version"], entry["status"]) == ("entry", 1, 200)
    assert entry["served"] == "yes: fresh (a hit)" and entry["epoch"] == entry["current_epoch"]
    assert 0 <= entry["age"] < 60 and 240 < entry["fresh_for"] <= 300 and entry["stale_for"] == 300.0
    assert entry["size"] > entry["body_size"] > 0 and 0 < entry["expires_in"] <= 600
    assert entry["tags"] == [f"user-{uid}"]  # named by the users service (Cache-Tag), kept in the record
    assert "Cache-Tag" not in entry["headers"] and entry["headers"]["Via"] == "1.1 cachegate"


async def test_explain_reads_the_request_as_the_request_is_read(world):
    uid, auth = await world.user("enzo")
    await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    escaped = "".join(f"%{b:02X}" for b in str(uid).encode())  # /users/%31%32: the same resource
    found = await explain(world, f"http://gateway.example/users/{escaped}")
    assert found["key"] == f"user:{uid}" and found["request"]["path"] == f"/users/{uid}"
    assert found["entry"]["state"] == "entry"
    assert (await explain(world, f"/users/{uid}?x=1"))["cache"] == "bypass: QUERY-NOT-IN-KEY"
    search = await explain(world, "/users/search?last_name=B&first_name=A")
    assert search["key"] == "user-search:first_name=A&last_name=B"  # sorted, as the key is rendered
    assert search["request"]["upstream_target"] == "/users/search?first_name=A&last_name=B"
    # The registration invalidated user-lists: its fence and its answer each moved the generation.
    assert search["rule"]["tags"] == ["user-lists"] and search["tag_generations"] == {"user-lists": 2}
    assert search["entry"] == {"state": "absent", "current_epoch": 0}
    for target, method, status, code in (("/nowhere", "GET", 404, "not_found"), ("/users/%2f1", "GET", 400,
                                          "bad_path"), ("/users/1", "POST", 405, "method_not_allowed")):
        refused = (await explain(world, target, method))["refused"]
        assert (refused["status"], refused["code"]) == (status, code), target
    assert (await world.admin.post("/-/admin/cache", json={"enabled": False})).status == 200
    assert (await explain(world, f"/users/{uid}"))["cache"] == "bypass: CACHE-OFF"


async def test_a_write_rule_shows_its_key_and_what_it_invalidates(world):
    uid, _ = await world.user("edda")
    found = await explain(world, f"/users/{uid}", "PATCH", caller=uid)
    assert found["rule"]["strategy"] == "write-through" and found["key"] == f"user-me:{uid}"
    assert found["rule"]["invalidates"] == [f"user:{uid}", "tag:user-lists"]
    without = await explain(world, "/users/me")  # the key names its caller
    assert without["key"] is None and without["entry"] is None and "caller" in without["note"]


async def test_tombstones_drop_markers_and_fences_are_explained(world):
    uid, auth = await world.user("elio")
    await world.proxy.get("/users/me", headers={"Authorization": auth})
    world.backends.hold_writes = asyncio.Event()
    write = asyncio.ensure_future(world.proxy.patch(f"/users/{uid}", json={"title": "Dr"},
                                                    headers={"Authorization": auth}))
    try:
        fenced = await poll(lambda: _state(world, "/users/me", uid, "fence"))
        assert fenced["writes_in_flight"] == 1 and 0 < fenced["fenced_for"] <= world.config.cache.write_fence
        assert fenced["served"].startswith("no: a write is in flight")
    finally:
        world.backends.hold_writes.set()
    assert (await write).status == 200
    assert (await explain(world, "/users/me", caller=uid))["entry"]["version"] == 2
    dropped = (await explain(world, f"/users/{uid}"))["entry"]
    assert dropped["state"] == "dropped" and dropped["version_floor"] == 2  # dropped at the write's version
    world.backends.hold_writes = None
    assert (await world.proxy.delete(f"/users/{uid}", headers={"Authorization": auth})).status == 200
    tombstone = (await explain(world, "/users/me", caller=uid))["entry"]
    assert tombstone["state"] == "tombstone" and tombstone["version_floor"] == 3
    assert tombstone["served"].startswith("no: deleted at version 3")


async def _state(world, target: str, caller: int, state: str) -> dict | None:
    entry = (await explain(world, target, caller=caller))["entry"]
    return entry if entry["state"] == state else None


async def test_explain_refuses_bad_input_with_a_json_4xx(world):
    for params in ({}, {"target": "/users/1", "method": "G E T"}, {"target": "/users/1", "extra": "1"}):
        resp = await world.admin.get("/-/admin/explain", params=params)
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "bad_request", params
