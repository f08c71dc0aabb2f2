"""Tokens at the services: the rules of proxy/tokens.py (the gateway's own table), then the database's word.

A token holds only while its user exists at the token's version: deleting the user or changing its password
voids older tokens, at once in the process that made the change and within TokenVersions' FRESH bound in
every other service process.
"""
from __future__ import annotations

import asyncio
import time

import pytest
from jose import jwt
from multidict import CIMultiDict

from backends.common.errors import ApiError
from backends.common.tokens import FRESH, TokenVerifier, TokenVersions
from cachegate.tokens import TokenIssuer
from tests.support.services import PASSWORD, error_of
from tests.support.token_cases import CASES


async def test_every_token_rule(users, account, db_config):
    for case in CASES:  # one world for the whole table: each case is a request, not a fixture
        token = case.make(db_config.auth, account.id)
        resp = await users.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        if case.code is None:
            assert resp.status == 200, (case.name, await resp.text())
        else:
            assert await error_of(resp, 401) == case.code, case.name


async def test_other_services_apply_the_same_rules(paths, trips, account, db_config):
    for client, path in ((paths, "/paths/1"), (trips, "/trips/1")):
        assert (await client.get(path, headers=account.headers)).status == 404  # authenticated; no such row
        for case in CASES:
            token = case.make(db_config.auth, account.id)
            resp = await client.get(path, headers={"Authorization": f"Bearer {token}"})
            if case.code is None:
                assert resp.status == 404, case.name
            else:
                assert await error_of(resp, 401) == case.code, case.name
        assert await error_of(await client.get(path), 401) == "unauthorized"
        resp = await client.get(path, headers={"Authorization": f"Basic {account.token}"})
        assert await error_of(resp, 401) == "unauthorized"


async def test_a_sub_naming_no_user_is_refused(users, paths, trips, db_config, register):
    ghost = (await register()).id + 1000  # never registered
    token = TokenIssuer(db_config.auth).issue(ghost, 1).access_token
    for client, path in ((users, "/users/me"), (users, "/users/1"), (paths, "/paths/1"), (trips, "/trips/1")):
        resp = await client.get(path, headers={"Authorization": f"Bearer {token}"})
        assert await error_of(resp, 401) == "token_revoked", path
    resp = await paths.post("/paths", json={"start_point": "A", "end_point": "B"},
                            headers={"Authorization": f"Bearer {token}"})
    assert await error_of(resp, 401) == "token_revoked"


async def test_two_authorization_headers_are_400(users, paths, account):
    two = CIMultiDict([("Authorization", f"Bearer {account.token}")] * 2)
    for client, method, path in ((users, "GET", "/users/me"), (users, "POST", "/auth/token"),
                                 (users, "POST", "/users"), (paths, "GET", "/paths/1")):
        resp = await client.request(method, path, headers=two)
        assert await error_of(resp, 400) == "bad_request", path


async def poll_until_refused(client, method: str, path: str, headers: dict, bound: float, **kwargs) -> float:
    """Seconds from now until the service answers 401 to the request; fails past `bound`."""
    started = time.monotonic()
    while True:
        resp = await client.request(method, path, headers=headers, **kwargs)
        if resp.status == 401:
            assert await error_of(resp, 401) == "token_revoked"
            return time.monotonic() - started
        assert resp.status < 500, await resp.text()  # accepted: the token got past authentication
        assert time.monotonic() - started < bound, f"{method} {path} still accepted after {bound}s"
        await asyncio.sleep(0.05)


async def test_a_deleted_users_token_is_refused(users, paths, account):
    # The paths service has seen the token (its user's version is remembered there), as it would in use.
    made = await paths.post("/paths", json={"start_point": "A", "end_point": "B"}, headers=account.headers)
    assert made.status == 201
    assert (await users.delete(f"/users/{account.id}", headers=account.headers)).status == 200
    assert await error_of(await users.get("/users/me", headers=account.headers), 401) == "token_revoked"
    # Another service process learns it from the database within FRESH (plus the time a request takes).
    await poll_until_refused(paths, "POST", "/paths", account.headers, FRESH + 0.5,
                             json={"start_point": "C", "end_point": "D"})


async def test_a_password_change_voids_older_tokens(users, trips, account):
    assert (await trips.get("/trips/1", headers=account.headers)).status == 404
    resp = await users.patch(f"/users/{account.id}", json={"password": "a brand new one"},
                             headers=account.headers)
    assert resp.status == 200
    assert await error_of(await users.get("/users/me", headers=account.headers), 401) == "token_revoked"
    await poll_until_refused(trips, "GET", "/trips/1", account.headers, FRESH + 0.5)
    fresh = await users.post("/auth/token",
                             json={"login": account.user["login"], "password": "a brand new one"})
    new = {"Authorization": f"Bearer {(await fresh.json())['access_token']}"}
    assert jwt.get_unverified_claims(new["Authorization"][7:])["tv"] == 2
    assert (await users.get("/users/me", headers=new)).status == 200
    assert (await trips.get("/trips/1", headers=new)).status == 404
    # A change of anything but the password leaves the tokens as they are.
    assert (await users.patch(f"/users/{account.id}", json={"title": "x"}, headers=new)).status == 200
    assert (await users.get("/users/me", headers=new)).status == 200


async def test_the_revocation_is_announced_to_the_gateway(users, account, register):
    resp = await users.patch(f"/users/{account.id}", json={"title": "no password"}, headers=account.headers)
    assert "Cachegate-Revoked-Tokens" not in resp.headers
    resp = await users.put(f"/users/{account.id}", headers=account.headers, json={
        "first_name": "A", "last_name": "B", "email": "a@example.com", "title": "",
        "password": PASSWORD + "2"})
    assert resp.headers["Cachegate-Revoked-Tokens"] == f"user={account.id}; below=2"
    other = await register()
    resp = await users.delete(f"/users/{other.id}", headers=other.headers)
    assert resp.headers["Cachegate-Revoked-Tokens"] == f"user={other.id}; below=2"


async def test_token_versions_are_read_again_after_fresh(db_config, users, account):
    from backends.common.db import DB_POOL
    pool = users.server.app[DB_POOL]
    now = [0.0]
    versions = TokenVersions(fresh=1.0, clock=lambda: now[0])
    assert await versions.current(pool, account.id) == 1
    await _set_token_version(pool, account.id, 5)
    now[0] = 0.99
    assert await versions.current(pool, account.id) == 1   # trusted within the bound...
    now[0] = 1.0
    assert await versions.current(pool, account.id) == 5   # ...and not a moment longer
    await _set_token_version(pool, account.id, 6)
    versions.forget(account.id)
    assert await versions.current(pool, account.id) == 6   # what this process changed, it reads again at once
    assert await versions.current(pool, account.id + 999) is None


async def _set_token_version(pool, user_id: int, version: int) -> None:
    async with pool.acquire() as conn, conn.cursor() as cur:
        await cur.execute("UPDATE users SET token_version = %s WHERE id = %s", (version, user_id))


def test_issued_claims_and_leeway(make_config):
    config = make_config({"auth": {"leeway": "60s", "token_ttl": "5m"}})
    issuer, verifier = TokenIssuer(config.auth), TokenVerifier(config.auth)
    token = issuer.issue(42, 3)
    assert token.expires_in == 300
    claims = jwt.get_unverified_claims(token.access_token)
    assert claims["sub"] == "42" and claims["tv"] == 3 and claims["iss"] == config.auth.issuer
    assert claims["exp"] - claims["iat"] == 300
    assert jwt.get_unverified_header(token.access_token)["alg"] == "ES256"
    assert verifier.verify(token.access_token).user_id == 42
    # Expired 30 s ago: inside the 60 s leeway. Expired 10 minutes ago: refused.
    assert verifier.verify(issuer.issue(42, 1, now=time.time() - 330).access_token).user_id == 42
    with pytest.raises(ApiError) as refused:
        verifier.verify(issuer.issue(42, 1, now=time.time() - 900).access_token)
    assert refused.value.status == 401 and refused.value.code == "token_expired"
