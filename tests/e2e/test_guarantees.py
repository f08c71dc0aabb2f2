"""The guarantees of DESIGN.md, each shown end to end: real proxy, real Redis, real services over MariaDB.

Every test runs twice: with the cache on the session's single Redis, and on the session's Redis Cluster.
Read-your-writes and monotonic versions under concurrency: tests/e2e/test_concurrency.py.
"""
from __future__ import annotations

import asyncio

import pytest

from tests.support.world import world_on


@pytest.fixture(params=["single", "cluster"])
async def world(request, make_world):
    return await world_on(request.param, request, make_world)


def etag_version(resp) -> int:
    return int(resp.headers["ETag"].strip('W/"'))


async def test_miss_then_hit_and_age(world):
    uid, auth = await world.user("alice")
    first = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    assert first.status == 200
    assert "fwd=miss" in first.headers["Cache-Status"] and "stored" in first.headers["Cache-Status"]
    second = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    assert second.status == 200 and second.headers["Cache-Status"].startswith("cachegate; hit")
    assert "Age" in second.headers
    assert await second.json() == await first.json()
    assert "password" not in await second.text()
    assert world.backends.served("GET", f"/users/{uid}") == 1


async def test_if_none_match_answers_304_from_the_cache(world):
    uid, auth = await world.user("inm")
    first = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    again = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth,
                                                            "If-None-Match": first.headers["ETag"]})
    assert again.status == 304 and again.headers["ETag"] == first.headers["ETag"]
    assert world.backends.served("GET", f"/users/{uid}") == 1


async def test_write_through_serves_the_new_version_as_a_hit(world):
    uid, auth = await world.user("bob")
    before = await world.proxy.get("/users/me", headers={"Authorization": auth})
    put = await world.proxy.patch(f"/users/{uid}", json={"title": "captain"}, headers={"Authorization": auth})
    assert put.status == 200
    assert etag_version(put) == etag_version(before) + 1
    # The write answered with the writer's own (private) view: that is what it stored, under the writer's key.
    after = await world.proxy.get("/users/me", headers={"Authorization": auth})
    assert after.headers["Cache-Status"].startswith("cachegate; hit")
    assert (await after.json())["title"] == "captain" and etag_version(after) == etag_version(put)
    assert world.backends.served("GET", "/users/me") == 1
    # The public entry was dropped; the next read fills it at the new version.
    public = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    assert (await public.json())["title"] == "captain" and etag_version(public) == etag_version(put)


async def test_delete_leaves_no_entry_to_serve(world):
    uid, auth = await world.user("gone")
    await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    deleted = await world.proxy.delete(f"/users/{uid}", headers={"Authorization": auth})
    assert deleted.status == 200
    _, other = await world.user("witness")
    after = await world.proxy.get(f"/users/{uid}", headers={"Authorization": other})
    assert after.status == 404


async def test_nothing_is_answered_from_the_cache_without_a_valid_token(world):
    uid, auth = await world.user("carol")
    assert (await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})).status == 200
    for header in (None, "Bearer not-a-token", auth[:-4] + "AAAA", "Basic " + "Y2Fyb2w6d3Jvbmc="):
        headers = {"Authorization": header} if header else {}
        resp = await world.proxy.get(f"/users/{uid}", headers=headers)
        assert resp.status == 401, header
        body = await resp.json()
        assert body["error"]["code"] in ("unauthorized", "invalid_token")
        assert "hit" not in resp.headers["Cache-Status"]


async def test_basic_credentials_are_exchanged_once(world):
    import base64
    uid, _ = await world.user("dave", "dave-password-1")
    basic = "Basic " + base64.b64encode(b"dave:dave-password-1").decode()
    for _ in range(5):
        resp = await world.proxy.get(f"/users/{uid}", headers={"Authorization": basic})
        assert resp.status == 200
    assert world.backends.served("POST", "/auth/token") == 2  # one by world.user(), one by the proxy


async def test_caller_scope_is_never_served_to_another_caller(world):
    a_id, a = await world.user("erin")
    b_id, b = await world.user("frank")
    me_a = await world.proxy.get("/users/me", headers={"Authorization": a})
    me_b = await world.proxy.get("/users/me", headers={"Authorization": b})
    assert (await me_a.json())["id"] == a_id and (await me_b.json())["id"] == b_id
    again_b = await world.proxy.get("/users/me", headers={"Authorization": b})
    assert again_b.headers["Cache-Status"].startswith("cachegate; hit")
    assert (await again_b.json())["id"] == b_id


async def test_concurrent_misses_make_one_upstream_request(world):
    uid, auth = await world.user("gina")
    world.backends.max_delay = 0.05  # keep the first fill in flight while the others arrive
    answers = await asyncio.gather(*(world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
                                     for _ in range(40)))
    assert {r.status for r in answers} == {200}
    assert world.backends.served("GET", f"/users/{uid}") == 1


async def test_search_is_invalidated_by_a_user_write(world):
    uid, auth = await world.user("hank")
    first = await world.proxy.get("/users/search?first_name=Han", headers={"Authorization": auth})
    assert first.status == 200
    cached = await world.proxy.get("/users/search?first_name=Han", headers={"Authorization": auth})
    assert cached.headers["Cache-Status"].startswith("cachegate; hit")
    assert (await world.proxy.patch(f"/users/{uid}", json={"first_name": "Hannah"},
                                    headers={"Authorization": auth})).status == 200
    after = await world.proxy.get("/users/search?first_name=Han", headers={"Authorization": auth})
    assert "hit" not in after.headers["Cache-Status"].split(";")[1]
    assert "Hannah" in await after.text()


async def test_cache_off_at_run_time_is_passthrough(world):
    uid, auth = await world.user("ivy")
    await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    resp = await world.admin.post("/-/admin/cache", json={"enabled": False})
    assert resp.status == 200
    off = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    assert off.headers["Cache-Status"] == "cachegate; fwd=bypass; detail=CACHE-OFF"
    # a write while the cache is off must not leave the old entry to be served once it is on again
    assert (await world.proxy.patch(f"/users/{uid}", json={"title": "off-write"},
                                    headers={"Authorization": auth})).status == 200
    assert (await world.admin.post("/-/admin/cache", json={"enabled": True})).status == 200
    on = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    assert (await on.json())["title"] == "off-write"


async def test_a_trip_replaced_is_never_served_old_in_its_members_view(world):
    """The members list carries the trip's version (its validator): a PUT of the trip moves it, so the
    cached list must go too, or it would answer a version the database no longer has."""
    _, auth = await world.user("tess")
    headers = {"Authorization": auth}
    resp = await world.proxy.post("/paths", json={"start_point": "Here", "end_point": "There"}, headers=headers)
    path_id = (await resp.json())["id"]
    body = {"path_id": path_id, "name": "first", "starts_at": "2030-06-01T09:00:00Z",
            "finishes_at": "2030-06-02T18:00:00Z"}
    resp = await world.proxy.post("/trips", json=body, headers=headers)
    assert resp.status == 201, await resp.text()
    trip = await resp.json()
    members = f"/trips/{trip['id']}/members"
    assert (await world.proxy.get(members, headers=headers)).status == 200
    cached = await world.proxy.get(members, headers=headers)
    assert cached.headers["Cache-Status"].startswith("cachegate; hit")
    resp = await world.proxy.put(f"/trips/{trip['id']}", json={**body, "name": "renamed"},
                                 headers={**headers, "If-Match": resp.headers.get("ETag") or f'"{trip["version"]}"'})
    assert resp.status == 200, await resp.text()
    after = await world.proxy.get(members, headers=headers)
    assert after.status == 200 and (await after.json())["version"] == (await resp.json())["version"]
