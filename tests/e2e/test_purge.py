"""Admin purges by key, URL, tag (the rules' and the upstream's) and key prefix: each says what it removed,
each is a drop with a fence (floors, write fences and tombstones stay); upstream tags never reach a client."""
from __future__ import annotations

import asyncio

import pytest

from tests.e2e.test_explain import explain
from tests.e2e.test_ops import poll
from tests.support.world import world_on


@pytest.fixture(params=["single", "cluster"])
async def world(request, make_world):
    """Each test on the single Redis and on the Redis Cluster (a purge by prefix scans every master)."""
    return await world_on(request.param, request, make_world)


async def purge(world, **what) -> dict:
    resp = await world.admin.post("/-/admin/purge", json=what)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def cache_status(world, path: str, auth: str) -> str:
    resp = await world.proxy.get(path, headers={"Authorization": auth})
    assert resp.status == 200, await resp.text()
    return resp.headers["Cache-Status"]


async def filled(world, path: str, auth: str) -> None:
    await cache_status(world, path, auth)
    assert (await cache_status(world, path, auth)).startswith("cachegate; hit"), path


async def test_purge_by_key_says_how_many_entries_it_removed(world):
    uid, auth = await world.user("paz")
    await filled(world, f"/users/{uid}", auth)
    assert await purge(world, key=f"user:{uid}") == {"purged": {"key": f"user:{uid}"}, "removed": 1}
    assert "fwd=miss" in await cache_status(world, f"/users/{uid}", auth)
    await purge(world, key=f"user:{uid}")
    assert (await purge(world, key=f"user:{uid}"))["removed"] == 0  # a drop marker is no entry


async def test_a_key_pattern_is_refused_and_points_at_the_prefix_purge(world):
    """Regression: {"key": "user:*"} answered "purged" and removed nothing."""
    resp = await world.admin.post("/-/admin/purge", json={"key": "user:*"})
    body = await resp.json()
    assert resp.status == 400 and body["error"]["code"] == "bad_request"
    assert '{"prefix": "user:"}' in body["error"]["message"]
    for bad in ({}, {"key": ""}, {"key": 1}, {"key": "a", "tag": "b"}, {"url": "/users/1", "caller": 7},
                {"tag": "x", "caller": "1"}, {"everything": True}):
        resp = await world.admin.post("/-/admin/purge", json=bad)
        assert resp.status == 400 and (await resp.json())["error"]["code"] == "bad_request", bad


async def test_purge_by_url_renders_the_key_from_the_rule(world):
    uid, auth = await world.user("pia")
    await filled(world, f"/users/{uid}", auth)
    await filled(world, "/users/me", auth)
    found = await purge(world, url=f"/users/{uid}")
    assert (found["key"], found["removed"]) == (f"user:{uid}", 1)
    assert "fwd=miss" in await cache_status(world, f"/users/{uid}", auth)
    resp = await world.admin.post("/-/admin/purge", json={"url": "/users/me"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == "caller_required"
    found = await purge(world, url="/users/me", caller=str(uid))
    assert (found["key"], found["removed"]) == (f"user-me:{uid}", 1)
    for target, code in (("/nowhere", "not_found"), ("/auth/token", "method_not_allowed"),
                         ("/users/%2f1", "bad_path")):
        resp = await world.admin.post("/-/admin/purge", json={"url": target})
        assert (await resp.json())["error"]["code"] == code, target


async def test_purge_by_a_rule_tag_removes_every_entry_indexed_under_it(world):
    uid, auth = await world.user("pilar")
    for query in ("last_name=Tes", "first_name=Pi"):
        await filled(world, f"/users/search?{query}", auth)
    await filled(world, f"/users/{uid}", auth)
    assert (await purge(world, tag="user-lists"))["removed"] == 2
    assert "fwd=miss" in await cache_status(world, "/users/search?last_name=Tes", auth)
    assert "hit" in await cache_status(world, f"/users/{uid}", auth)  # not under the tag
    assert "hit" in await cache_status(world, "/users/search?last_name=Tes", auth)  # fills again at once


async def test_purge_by_an_upstream_tag_drops_every_view_of_the_entity(world):
    """The users service names each user in a Cache-Tag: one purge drops its public and private views."""
    uid, auth = await world.user("pedro")
    other, other_auth = await world.user("petra")
    await filled(world, f"/users/{uid}", auth)
    await filled(world, "/users/me", auth)
    await filled(world, f"/users/{other}", other_auth)
    assert (await purge(world, tag=f"user-{uid}"))["removed"] == 2
    assert "fwd=miss" in await cache_status(world, f"/users/{uid}", auth)
    assert "fwd=miss" in await cache_status(world, "/users/me", auth)
    assert "hit" in await cache_status(world, f"/users/{other}", other_auth)
    metrics = await (await world.proxy.get("/-/metrics")).text()
    assert 'cachegate_purged_entries_total{by="tag"} 2.0' in metrics


async def test_a_fill_already_upstream_when_its_upstream_tag_is_purged_is_not_stored(world):
    """Its lookup could not know the tag: the purge's fence refuses it, so no pre-purge read lands after."""
    uid, auth = await world.user("paloma")
    world.backends.delay = 0.5
    read = asyncio.ensure_future(world.proxy.get(f"/users/{uid}", headers={"Authorization": auth}))
    await poll(lambda: _served(world, f"/users/{uid}"))
    assert (await purge(world, tag=f"user-{uid}"))["removed"] == 0  # nothing stored yet
    resp = await read
    assert resp.status == 200 and resp.headers["Cache-Status"].endswith("detail=fenced")
    world.backends.delay = 0.0
    assert (await explain(world, f"/users/{uid}"))["entry"]["state"] != "entry"


async def _served(world, path: str) -> bool:
    return world.backends.served("GET", path) > 0


async def test_purge_by_prefix_finds_the_keys_by_scan(world):
    users = [await world.user(f"pru{n}") for n in range(7)]
    for uid, auth in users:
        await filled(world, f"/users/{uid}", auth)
        await filled(world, "/users/me", auth)
    await filled(world, "/users/search?last_name=Tes", users[0][1])
    assert (await purge(world, prefix="user:"))["removed"] == 7  # not user-me:..., not user-search:...
    for uid, auth in users:
        assert "fwd=miss" in await cache_status(world, f"/users/{uid}", auth)
        assert "hit" in await cache_status(world, "/users/me", auth)
    assert (await purge(world, prefix="user-"))["removed"] == 8  # user-me: and user-search:
    assert (await purge(world, prefix="nothing-here:"))["removed"] == 0


async def test_a_purge_keeps_the_write_fence_and_the_version_floor(world):
    uid, auth = await world.user("perla")
    await filled(world, "/users/me", auth)
    world.backends.hold_writes = asyncio.Event()
    write = asyncio.ensure_future(world.proxy.patch(f"/users/{uid}", json={"title": "Dr"},
                                                    headers={"Authorization": auth}))
    try:
        await poll(lambda: _fenced(world, uid))
        assert (await purge(world, url="/users/me", caller=str(uid)))["removed"] == 0
        entry = (await explain(world, "/users/me", caller=uid))["entry"]
        assert entry["state"] == "fence" and entry["writes_in_flight"] == 1  # the purge kept it
        during = await world.proxy.get("/users/me", headers={"Authorization": auth})
        assert during.headers["Cache-Status"].endswith("detail=fenced")
    finally:
        world.backends.hold_writes.set()
    assert (await write).status == 200
    world.backends.hold_writes = None
    assert (await purge(world, key=f"user-me:{uid}"))["removed"] == 1
    dropped = (await explain(world, "/users/me", caller=uid))["entry"]
    assert dropped["state"] == "dropped" and dropped["version_floor"] == 2  # nothing older may come back


async def _fenced(world, uid: int) -> bool:
    return (await explain(world, "/users/me", caller=uid))["entry"]["state"] == "fence"


async def test_a_purge_leaves_a_tombstone_as_it_is(world):
    uid, auth = await world.user("pavel")
    assert (await world.proxy.delete(f"/users/{uid}", headers={"Authorization": auth})).status == 200
    assert (await purge(world, key=f"user-me:{uid}"))["removed"] == 0
    assert (await explain(world, "/users/me", caller=uid))["entry"]["state"] == "tombstone"


async def test_upstream_cache_tags_never_reach_the_client(world):
    uid, auth = await world.user("pino")
    for _ in range(2):  # a miss, then a hit
        resp = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
        assert "Cache-Tag" not in resp.headers and "Surrogate-Key" not in resp.headers
        assert resp.headers["Via"] == "1.1 cachegate"  # RFC 9110 7.6.3, on a miss and on a hit
    assert world.backends.served("GET", f"/users/{uid}") == 1
    resp = await world.proxy.patch(f"/users/{uid}", json={"title": "Dr"}, headers={"Authorization": auth})
    assert "Cache-Tag" not in resp.headers and resp.headers["Via"] == "1.1 cachegate"
    me = (await explain(world, "/users/me", caller=uid))["entry"]
    assert me["tags"] == [f"user-{uid}"] and "Cache-Tag" not in me["headers"]
