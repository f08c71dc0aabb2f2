"""Changing config.yaml changes policy without a restart: atomically, under load, never to a bad config."""
from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

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
    world = await make_world(as_file=True)
    uid, auth = await world.user("pia")
    statuses: list[int] = []
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            resp = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
            await resp.read()
            statuses.append(resp.status)

    clients = [asyncio.create_task(client()) for _ in range(16)]
    for n in range(6):
        edit(world.config, lambda d, n=n: user_read_rule(d).__setitem__("ttl", f"{60 + n}s"))
        assert (await world.admin.post("/-/admin/reload")).status == 200
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.gather(*clients)
    assert len(statuses) > 50
    assert set(statuses) == {200}


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


async def test_a_reload_does_not_fail_a_request_waiting_on_a_fetch(make_world):
    """Regression: the retired generation's fetches were cancelled at reload, and the requests waiting on
    them failed (seen as a flaky reload-under-load test)."""
    world = await make_world(as_file=True)
    uid, auth = await world.user("rhea")
    world.backends.delay = 0.4
    pending = asyncio.ensure_future(world.proxy.get(f"/users/{uid}", headers={"Authorization": auth}))
    waiter = asyncio.ensure_future(world.proxy.get(f"/users/{uid}", headers={"Authorization": auth}))
    await asyncio.sleep(0.1)  # both are waiting on the one fetch now in flight
    assert (await world.admin.post("/-/admin/reload")).status == 200
    first, second = await pending, await waiter
    assert (first.status, second.status) == (200, 200)
    assert world.backends.served("GET", f"/users/{uid}") == 1
