"""Tokens in time, on the real clock: a remembered verification ends at `exp`, a Basic exchange is renewed
before its token expires. Short lifetimes and polling, no clock of the test's own."""
from __future__ import annotations

import base64
import time

from jose import jwt

from tests.support.polling import poll
from tests.support.token_cases import claims


async def test_a_remembered_token_is_refused_once_its_exp_has_passed(make_world):
    world = await make_world({"auth": {"leeway": "0s"}})
    uid, _ = await world.user("shortlived")
    exp = int(time.time()) + 2
    token = jwt.encode(claims(world.config.auth, uid, exp=exp), world.config.auth.private_key_pem(),
                       algorithm="ES256")
    url, headers = f"/users/{uid}", {"Authorization": f"Bearer {token}"}
    for _ in range(2):  # verified once, then remembered; the second answer is a hit
        resp = await world.proxy.get(url, headers=headers)
        assert resp.status == 200, await resp.text()
    assert resp.headers["Cache-Status"].startswith("cachegate; hit")

    async def expired() -> bool:
        return time.time() > exp + 0.1
    assert await poll(expired, 30), "the clock never passed exp"
    resp = await world.proxy.get(url, headers=headers)
    assert resp.status == 401, await resp.text()
    assert (await resp.json())["error"]["code"] == "token_expired"
    assert "hit" not in resp.headers["Cache-Status"]


async def test_an_exchanged_basic_token_is_renewed_before_it_expires(make_world):
    """The proxy trades Basic credentials for a token once, and trades them again shortly before that token
    expires (proxy.auth.RENEW_BEFORE, 60 s): with 63 s tokens, after 2 or 3 s of reuse."""
    world = await make_world({"auth": {"token_ttl": "63s", "leeway": "0s"}})
    uid, _ = await world.user("renewer", "renewer-password-1")
    basic = {"Authorization": "Basic " + base64.b64encode(b"renewer:renewer-password-1").decode()}
    url = f"/users/{uid}"

    def exchanges() -> int:
        return world.backends.served("POST", "/auth/token") - 1  # world.user() made one itself

    first = await world.proxy.get(url, headers=basic)
    assert first.status == 200 and exchanges() == 1
    expires = int(time.time()) + 63  # the exchanged token's exp, at the latest
    again = await world.proxy.get(url, headers=basic)
    assert again.status == 200 and exchanges() == 1  # reused, not exchanged per request

    answers: list[int] = []

    async def renewed() -> bool:
        answers.append((await world.proxy.get(url, headers=basic)).status)
        return exchanges() == 2
    assert await poll(renewed, expires - time.time() - 1), "the exchanged token was never renewed"
    assert time.time() < expires and set(answers) == {200}  # renewed before its token could expire
    after = await world.proxy.get(url, headers=basic)
    assert after.status == 200 and exchanges() == 2  # the new token is reused in turn
