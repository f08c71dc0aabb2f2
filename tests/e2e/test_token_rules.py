"""The token rules at the gateway, on a cached route: every bad token is refused before the cache is asked.

The same table runs against the services in tests/backends/test_service_tokens.py: one set of rules.
"""
from __future__ import annotations

from multidict import CIMultiDict

from tests.support.token_cases import CASES


async def test_every_token_rule_on_a_cached_route(world):
    uid, auth = await world.user("ruler")
    url = f"/users/{uid}"
    for _ in range(2):
        warm = await world.proxy.get(url, headers={"Authorization": auth})
    assert warm.headers["Cache-Status"].startswith("cachegate; hit")
    for case in CASES:
        token = case.make(world.config.auth, uid)
        resp = await world.proxy.get(url, headers={"Authorization": f"Bearer {token}"})
        if case.code is None:
            assert resp.status == 200, (case.name, await resp.text())
            continue
        assert resp.status == 401, (case.name, await resp.text())
        assert (await resp.json())["error"]["code"] == case.code, case.name
        assert "hit" not in resp.headers["Cache-Status"], case.name
    assert world.backends.served("GET", url) == 1  # the refused ones never reached the service either


async def test_two_authorization_headers_are_400_before_anything_else(world):
    uid, auth = await world.user("twice")
    url = f"/users/{uid}"
    await world.proxy.get(url, headers={"Authorization": auth})
    basic = "Basic dHdpY2U6Y29ycmVjdC1ob3JzZS1iYXR0ZXJ5"
    for method, path, pair in (("GET", url, (auth, auth)),               # cached: still no hit
                               ("GET", url, (auth, "Bearer forged")),   # the first would win, the last lose
                               ("GET", url, (basic, auth)),
                               ("POST", "/auth/token", (basic, basic)),  # a route without auth
                               ("GET", "/nowhere", (auth, auth))):       # before routing
        headers = CIMultiDict(("Authorization", value) for value in pair)
        resp = await world.proxy.request(method, path, headers=headers)
        assert resp.status == 400, (method, path, await resp.text())
        assert (await resp.json())["error"]["code"] == "bad_request"
        assert "hit" not in resp.headers["Cache-Status"]
    assert world.backends.served("GET", url) == 1
    assert world.backends.served("POST", "/auth/token") == 1  # the one world.user() made
