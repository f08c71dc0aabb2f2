"""One canonical request: the path the router matched, the key and what went upstream are one resource.

Regressions of the cache poisoning through percent-encoding: `GET /users%2f951` matched `/users/{id}` and
the key `user:951`, went upstream as `/users%2f951`, and the service's 404 was stored under `user:951`.
Targets are sent as written (yarl's encoded=True), never normalised by the client.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import yaml
from yarl import URL

from proxy.appkeys import GATEWAY, STORE

REPO = Path(__file__).resolve().parents[2]


async def send(world, target: str, auth: str) -> tuple[int, dict, str]:
    """(status, JSON body, Cache-Status) of a GET of the target exactly as written."""
    url = URL(f"http://127.0.0.1:{world.config.proxy.port}{target}", encoded=True)
    async with world.proxy.session.get(url, headers={"Authorization": auth}) as resp:
        return resp.status, await resp.json(), resp.headers.get("Cache-Status", "")


async def settle(world) -> None:
    """Let every background refresh finish, so that whatever it stores is in Redis."""
    for strategy in world.app[GATEWAY].generation.strategies.values():
        await strategy.drain()


async def test_get_users_percent_2f_id_does_not_poison_the_user_entry_on_a_miss(world):
    uid, auth = await world.user("victim")
    status, body, _ = await send(world, f"/users%2f{uid}", auth)
    await settle(world)
    assert (await world.app[STORE].lookup(f"user:{uid}")).entry is None  # nothing stored for the bad target
    after, user, cache_status = await send(world, f"/users/{uid}", auth)
    assert after == 200 and user["id"] == uid, (after, user, cache_status)
    assert "fwd=miss" in cache_status and "stored" in cache_status
    assert status == 400 and body["error"]["code"] == "bad_path", (status, body)


async def test_get_users_percent_2f_id_does_not_poison_a_stale_user_entry_within_grace(make_world):
    routes = yaml.safe_load((REPO / "config.yaml").read_text())["routes"]
    for rule in routes:
        if rule["path"] == "/users/{id:int}" and rule["methods"] == ["GET"]:
            rule.update(ttl="2s", grace="2s")  # grace at most the ttl (cachegate/routes.py)
    world = await make_world({"routes": routes})
    uid, auth = await world.user("stale")
    status, user, _ = await send(world, f"/users/{uid}", auth)
    assert status == 200
    store, key = world.app[STORE], f"user:{uid}"
    entry = (await store.lookup(key)).entry
    assert entry is not None and entry.status == 200
    deadline = time.monotonic() + 10
    while time.time() < entry.fresh_until and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
    assert time.time() >= entry.fresh_until  # past its ttl, within its grace: a refresh would start now

    status, body, _ = await send(world, f"/users%2f{uid}", auth)
    await settle(world)
    stored = (await store.lookup(key)).entry
    assert stored is not None and stored.status == 200, stored
    after, again, _ = await send(world, f"/users/{uid}", auth)
    assert after == 200 and again == user, (after, again)
    assert status == 400 and body["error"]["code"] == "bad_path", (status, body)


async def test_every_spelling_of_one_user_reads_one_entry_and_sends_one_target(world):
    uid, auth = await world.user("spelt")
    digits = "".join(f"%{ord(c):02x}" for c in str(uid))  # /users/%31 for /users/1: unreserved, decoded
    status, first, cache_status = await send(world, f"/users/{digits}", auth)
    assert status == 200 and first["id"] == uid and "stored" in cache_status
    status, second, cache_status = await send(world, f"/users/{uid}", auth)
    assert status == 200 and second == first and cache_status.startswith("cachegate; hit")
    reads = {target: n for (method, target), n in world.backends.targets.items()
             if method == "GET" and target != "/-/health"}   # (the proxy's readiness checks)
    assert reads == {f"/users/{uid}": 1}


async def test_the_query_sent_upstream_is_the_one_the_key_names(world):
    uid, auth = await world.user("searcher")
    status, first, cache_status = await send(world, "/users/search?last_name=Tes%74er&first_name=Search%65r",
                                             auth)
    assert status == 200 and [u["id"] for u in first["items"]] == [uid] and "stored" in cache_status
    canonical = "/users/search?first_name=Searcher&last_name=Tester"
    status, second, cache_status = await send(world, canonical, auth)
    assert status == 200 and second == first and cache_status.startswith("cachegate; hit")
    assert world.backends.targets[("GET", canonical)] == 1  # what the key names is what went upstream
    status, body, _ = await send(world, "/users/search?last_name=%zz", auth)
    assert status == 400 and body["error"]["code"] == "bad_query", body


async def test_an_encoded_line_feed_in_the_path_is_a_json_bad_path_not_a_text_404(world):
    """Regression (fuzz): the catch-all route's `.*` stopped at the decoded line feed of `%0A`, so no
    route matched and aiohttp answered its own text/plain 404 before the gateway saw the request."""
    uid, auth = await world.user("linefeed")
    for target in (f"/users/%0A{uid}", f"/users/{uid}%0A", "/users/a%0Db"):
        status, body, _ = await send(world, target, auth)
        assert status == 400 and body["error"]["code"] == "bad_path", (target, status, body)
