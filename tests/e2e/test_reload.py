"""Changing config.yaml changes policy without a restart: atomically, under load, never to a bad config."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.polling import poll
from tests.support.redisclients import admin_client

REPO = Path(__file__).resolve().parents[2]


def edit(config, change) -> None:
    data = yaml.safe_load(config.path.read_text())
    change(data)
    config.path.write_text(yaml.safe_dump(data, sort_keys=False))


def user_read_rule(data: dict) -> dict:
    return next(r for r in data["routes"] if r["path"] == "/users/{id:int}" and r["methods"] == ["GET"])


async def test_reload_changes_a_route_policy(make_world):
    world = await make_world(as_file=True)
    uid, auth = await world.user("nina")
    await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})

    def to_passthrough(data):
        rule = user_read_rule(data)
        for k in ("key", "ttl", "negative_ttl"):
            rule.pop(k, None)
        rule["strategy"] = "passthrough"
    edit(world.config, to_passthrough)
    resp = await world.admin.post("/-/admin/reload")
    assert resp.status == 200 and (await resp.json())["generation"] == 2
    after = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
    assert after.status == 200 and "fwd=bypass" in after.headers["Cache-Status"]


async def test_bad_config_at_reload_is_refused_and_the_old_one_keeps_serving(make_world):
    world = await make_world(as_file=True)
    uid, auth = await world.user("oscar")
    edit(world.config, lambda d: user_read_rule(d).__setitem__("ttl", "soon"))
    resp = await world.admin.post("/-/admin/reload")
    assert resp.status == 422
    body = await resp.json()
    assert 'ttl: expected a duration like 30s, got "soon"' in body["error"]["message"]
    assert (await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})).status == 200
    state = await (await world.admin.get("/-/admin/state")).json()
    assert state["generation"] == 1


@pytest.mark.parametrize("section, key", [("proxy.admin", "token_file"), ("redis", "password_file"),
                                          ("redis", "username")])
async def test_a_reload_cannot_seem_to_change_a_credential(make_world, tmp_path, section, key):
    """The admin token and the Redis login are read at start: a reload that changes them is refused, so no
    one believes a token rotated while the old one still works."""
    world = await make_world(as_file=True)
    (tmp_path / "new-secret").write_text("a-new-secret-of-enough-length\n")

    def change(data):
        node = data
        for part in section.split("."):
            node = node[part]
        node[key] = "other" if key == "username" else str(tmp_path / "new-secret")

    edit(world.config, change)
    resp = await world.admin.post("/-/admin/reload")
    assert resp.status == 422
    assert f"{section}.{key}: changed from" in (await resp.json())["error"]["message"]
    assert (await (await world.admin.get("/-/admin/state")).json())["generation"] == 1


@pytest.mark.slow
async def test_reload_under_load_fails_no_request(make_world):
    """Six reloads while 16 clients read, each flipping the rule between read-through and passthrough: no
    request fails, and each new generation is seen serving before the next reload."""
    world = await make_world(as_file=True)
    uid, auth = await world.user("pia")
    answers: list[tuple[int, str]] = []
    stop = asyncio.Event()
    cached = dict(user_read_rule(yaml.safe_load(world.config.path.read_text())))

    async def client() -> None:
        while not stop.is_set():
            resp = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
            await resp.read()
            answers.append((resp.status, resp.headers["Cache-Status"]))

    def policy(data: dict, passthrough: bool) -> None:
        rule = user_read_rule(data)
        rule.clear()
        rule.update(cached)
        if passthrough:
            for k in ("key", "ttl", "negative_ttl"):
                rule.pop(k, None)
            rule["strategy"] = "passthrough"

    clients = [asyncio.create_task(client()) for _ in range(16)]
    try:
        for n in range(6):
            passthrough = n % 2 == 0
            edit(world.config, lambda d, p=passthrough: policy(d, p))
            served_before = len(answers)
            resp = await world.admin.post("/-/admin/reload")
            assert resp.status == 200 and (await resp.json())["generation"] == n + 2

            async def new_policy_served() -> bool:  # and the clients kept reading across the reload
                after = answers[served_before:]
                return len(after) >= 10 and any(("detail=passthrough" in said) == passthrough
                                                for _, said in after)
            assert await poll(new_policy_served, 30), f"generation {n + 2} never served 10 requests"
    finally:
        stop.set()
        await asyncio.gather(*clients)
    assert len(answers) > 50
    assert {status for status, _ in answers} == {200}


def test_bad_config_is_refused_at_start(tmp_path):
    data = yaml.safe_load((REPO / "config.yaml").read_text())
    data["routes"][3]["ttl"] = "soon"
    bad = tmp_path / "config.yaml"
    bad.write_text(yaml.safe_dump(data))
    for command in (["check-config", str(bad)], ["proxy", "--config", str(bad)]):
        done = subprocess.run([sys.executable, "-m", "cachegate", *command], capture_output=True, text=True,
                              timeout=60, cwd=tmp_path)
        assert done.returncode == 2, (command, done.stdout, done.stderr)
        line = bad.read_text().splitlines().index("  ttl: soon") + 1
        assert f'config.yaml:{line}: routes[3].ttl: expected a duration like 30s, got "soon"' in done.stderr
        assert "Traceback" not in done.stderr


async def test_a_reload_does_not_fail_a_request_waiting_on_a_fetch(make_world, redis_factory):
    """Regression: the retired generation's fetches were cancelled at reload, and the requests waiting on
    them failed (seen as a flaky reload-under-load test)."""
    redis = redis_factory()  # its own: its MGETs are these two requests' lookups
    # fill_wait: a waiter goes upstream itself only after 20 s, long after the fetch's 3 s
    world = await make_world({"redis": {"url": redis.url}, "cache": {"fill_wait": "20s"}}, as_file=True)
    uid, auth = await world.user("rhea")
    observer = admin_client(redis)
    try:
        lookups = await _mgets(observer)
        world.backends.delay = 3.0  # the one fetch stays in flight until after the reload
        pending = asyncio.ensure_future(world.proxy.get(f"/users/{uid}", headers={"Authorization": auth}))

        async def fetch_in_flight() -> bool:
            return world.backends.served("GET", f"/users/{uid}") == 1
        assert await poll(fetch_in_flight, 30), "the first read never reached the service"
        waiter = asyncio.ensure_future(world.proxy.get(f"/users/{uid}", headers={"Authorization": auth}))

        async def both_looked_up() -> bool:  # the second found the key empty: it waits on the fetch
            return await _mgets(observer) >= lookups + 2
        assert await poll(both_looked_up, 30), "the second read never looked the key up"
        assert (await world.admin.post("/-/admin/reload")).status == 200
        assert not pending.done() and not waiter.done()  # the reload came while both waited
        first, second = await pending, await waiter
    finally:
        await observer.aclose()
    assert (first.status, second.status) == (200, 200)
    assert world.backends.served("GET", f"/users/{uid}") == 1  # the second shared the first one's fetch


async def _mgets(redis) -> int:
    return (await redis.info("commandstats")).get("cmdstat_mget", {}).get("calls", 0)
