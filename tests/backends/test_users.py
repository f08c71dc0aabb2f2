"""The users service over HTTP: registration, tokens, reads, writes with versions, and their errors."""
from __future__ import annotations

import asyncio
import base64

from backends.migrate import migrate
from backends.users.app import create_app as users_app
from tests.support.services import PASSWORD, PRIVATE_FIELDS, error_of, profile, public_view


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


async def test_register_answers_201_with_location_etag_and_no_password(users):
    resp = await users.post("/users", json=profile("grace"))
    assert resp.status == 201
    body = await resp.json()
    assert resp.headers["Location"] == f"/users/{body['id']}"
    assert resp.headers["ETag"] == '"1"'
    assert set(body) == {"id", "login", "first_name", "last_name", "email", "title", "version",
                         "created_at", "updated_at"}
    assert body["login"] == "grace" and body["version"] == 1
    assert body["created_at"].endswith("Z") and body["created_at"] == body["updated_at"]
    assert PASSWORD not in await resp.text()


async def test_register_duplicate_login_is_409(users, register):
    await register("taken")
    assert await error_of(await users.post("/users", json=profile("taken")), 409) == "conflict"


async def test_register_refuses_bad_bodies(users):
    cases = [
        (profile("usr1", extra=1, other=2), "other"),          # unknown fields are named
        ({"login": "usr2", "password": PASSWORD}, "first_name"),  # missing fields are named
        (profile("usr3", email="not-an-email"), "email"),
        (profile("usr4", first_name="x" * 101), "first_name"),
        (profile("usr5", first_name=""), "first_name"),
        (profile("usr6", last_name=7), "last_name"),
        (profile("usr7", password="short"), "password"),
        (profile("bad login!"), "login"),
        (profile("usr8", title="tab\there"), "title"),
        (["a", "list"], "object"),
    ]
    for body, named in cases:
        resp = await users.post("/users", json=body)
        assert await error_of(resp, 422) == "validation_error", body
        assert named in (await resp.json())["error"]["message"], body


async def test_register_content_type_and_malformed_json(users):
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    resp = await users.post("/users", data="login=x", headers=form)
    assert await error_of(resp, 415) == "unsupported_media_type"
    resp = await users.post("/users", data='{"login": ', headers={"Content-Type": "application/json"})
    assert await error_of(resp, 400) == "malformed_json"
    resp = await users.post("/users", data='{"login": NaN}', headers={"Content-Type": "application/json"})
    assert await error_of(resp, 400) == "malformed_json"
    resp = await users.post("/users", data=b'{"login": "\xff"}', headers={"Content-Type": "application/json"})
    assert await error_of(resp, 400) == "malformed_json"


async def test_body_over_max_body_is_413(users, db_config):
    big = "x" * (db_config.services["users"].max_body + 10)
    resp = await users.post("/users", data=big, headers={"Content-Type": "application/json"})
    assert await error_of(resp, 413) == "payload_too_large"


async def test_a_service_has_a_body_limit_of_its_own(aiohttp_client, make_config):
    """Regression: the services read proxy.max_body, the proxy's own setting."""
    config = make_config({"services": {"users": {"max_body": "2KiB"}}, "proxy": {"max_body": "1MiB"}})
    await migrate(config)
    users = await aiohttp_client(users_app(config))
    resp = await users.post("/users", json=profile("biggish", title="x" * 3000))
    assert await error_of(resp, 413) == "payload_too_large"
    resp = await users.post("/users", json=profile("small"))
    assert resp.status == 201, await resp.text()


async def test_token_by_json_and_by_basic(users, account):
    login = account.user["login"]
    for kwargs in ({"json": {"login": login, "password": PASSWORD}}, {"headers": basic(login, PASSWORD)}):
        resp = await users.post("/auth/token", **kwargs)
        assert resp.status == 200
        assert resp.headers["Cache-Control"] == "no-store"
        body = await resp.json()
        assert body["token_type"] == "bearer" and body["expires_in"] == 900
        me = await users.get("/users/me", headers={"Authorization": f"Bearer {body['access_token']}"})
        assert (await me.json())["id"] == account.id


async def test_token_refuses_bad_credentials(users, account):
    login = account.user["login"]
    for kwargs in ({"json": {"login": login, "password": "wrong password"}},
                   {"json": {"login": "nobody-here", "password": PASSWORD}},
                   {"headers": basic(login, "wrong password")},
                   {}):
        assert await error_of(await users.post("/auth/token", **kwargs), 401) == "invalid_credentials", kwargs
    resp = await users.post("/auth/token", headers={"Authorization": "Basic !!!notbase64"})
    assert await error_of(resp, 400) == "bad_request"
    resp = await users.post("/auth/token", json={"login": login})
    assert await error_of(resp, 422) == "validation_error"


async def test_routes_need_a_bearer_token(users, account):
    for path in ("/users/me", f"/users/{account.id}", "/users/search?last_name=L", "/users?login=x"):
        resp = await users.get(path)
        assert await error_of(resp, 401) == "unauthorized", path
        assert resp.headers["WWW-Authenticate"].startswith("Bearer")
    resp = await users.get("/users/me", headers={"Authorization": "Bearer not.a.token"})
    assert await error_of(resp, 401) == "invalid_token"


async def test_get_user_by_id_and_404(users, account, register):
    other = await register()
    resp = await users.get(f"/users/{other.id}", headers=account.headers)
    assert resp.status == 200 and resp.headers["ETag"] == '"1"'
    assert (await resp.json()) == public_view(other.user)  # to every caller alike...
    mine = await users.get(f"/users/{account.id}", headers=account.headers)
    assert (await mine.json()) == public_view(account.user)  # ...the user itself included
    me = await users.get("/users/me", headers=account.headers)
    assert (await me.json()) == account.user and set(PRIVATE_FIELDS) <= set(account.user)
    assert await error_of(await users.get("/users/999999999", headers=account.headers), 404) == "not_found"
    # Too many digits for an id is no route at all, not a database error.
    assert await error_of(await users.get("/users/" + "9" * 30, headers=account.headers), 404) == "not_found"


async def test_get_by_login_is_exact(users, account, register):
    other = await register("exact.login")
    await register("exact.login2")
    resp = await users.get("/users", params={"login": "exact.login"}, headers=account.headers)
    assert (await resp.json())["items"] == [public_view(other.user)]
    resp = await users.get("/users", params={"login": "exact.log%"}, headers=account.headers)
    assert (await resp.json())["items"] == []
    assert await error_of(await users.get("/users", headers=account.headers), 400) == "bad_request"
    resp = await users.get("/users", params={"login": "x", "debug": "1"}, headers=account.headers)
    assert await error_of(resp, 400) == "bad_request"


async def test_put_replaces_profile_and_bumps_version_by_one(users, account):
    new = {"first_name": "Grace", "last_name": "Hopper", "email": "grace@navy.mil", "title": "Rear Admiral"}
    for expected in (2, 3):
        resp = await users.put(f"/users/{account.id}", json=new, headers=account.headers)
        assert resp.status == 200
        body = await resp.json()
        assert body["version"] == expected and resp.headers["ETag"] == f'"{expected}"'
        assert {k: body[k] for k in new} == new
        assert body["updated_at"] > body["created_at"]
    resp = await users.get("/users/me", headers=account.headers)
    assert (await resp.json()) == body  # a write answers with the private view, as /users/me does
    resp = await users.get(f"/users/{account.id}", headers=account.headers)
    assert (await resp.json()) == public_view(body)
    # A full replace needs every profile field.
    resp = await users.put(f"/users/{account.id}", json={"first_name": "G"}, headers=account.headers)
    assert await error_of(resp, 422) == "validation_error"


async def test_patch_changes_only_given_fields_and_password(users, account):
    resp = await users.patch(f"/users/{account.id}", json={"title": "Dr"}, headers=account.headers)
    body = await resp.json()
    assert resp.status == 200 and body["version"] == 2
    assert body["title"] == "Dr" and body["first_name"] == "Ada"
    resp = await users.patch(f"/users/{account.id}", json={"password": "a brand new one"},
                             headers=account.headers)
    assert resp.status == 200 and "password" not in await resp.json()
    login = account.user["login"]
    old = await users.post("/auth/token", json={"login": login, "password": PASSWORD})
    assert await error_of(old, 401) == "invalid_credentials"
    new = await users.post("/auth/token", json={"login": login, "password": "a brand new one"})
    assert new.status == 200
    headers = {"Authorization": f"Bearer {(await new.json())['access_token']}"}  # the old token is void now
    for body in ({}, {"login": "renamed"}, {"email": "nope"}):
        resp = await users.patch(f"/users/{account.id}", json=body, headers=headers)
        assert await error_of(resp, 422) == "validation_error", body


async def test_a_user_may_change_only_itself(users, account, register):
    other = await register()
    url = f"/users/{other.id}"
    resp = await users.patch(url, json={"title": "x"}, headers=account.headers)
    assert await error_of(resp, 403) == "forbidden"
    resp = await users.put(url, json=profile("x"), headers=account.headers)
    assert await error_of(resp, 403) == "forbidden"
    assert await error_of(await users.delete(url, headers=account.headers), 403) == "forbidden"
    assert (await (await users.get(url, headers=account.headers)).json())["version"] == 1


async def test_if_match_guards_writes(users, account):
    url = f"/users/{account.id}"
    for tag in ('"7"', '"abc"', 'W/"1"', '"1'):
        resp = await users.patch(url, json={"title": "x"}, headers={**account.headers, "If-Match": tag})
        assert await error_of(resp, 412) == "precondition_failed", tag
    resp = await users.patch(url, json={"title": "x"}, headers={**account.headers, "If-Match": '"5", "1"'})
    assert resp.status == 200 and (await resp.json())["version"] == 2
    resp = await users.patch(url, json={"title": "y"}, headers={**account.headers, "If-Match": "*"})
    assert (await resp.json())["version"] == 3


async def test_concurrent_puts_with_same_if_match_one_wins(users, account):
    url = f"/users/{account.id}"
    headers = {**account.headers, "If-Match": '"1"'}

    def body(n: int) -> dict[str, str]:
        return {"first_name": f"Writer{n}", "last_name": "L", "email": "w@example.com", "title": ""}

    first, second = await asyncio.gather(users.put(url, json=body(1), headers=headers),
                                         users.put(url, json=body(2), headers=headers))
    assert sorted([first.status, second.status]) == [200, 412]
    winner = first if first.status == 200 else second
    won = await winner.json()
    assert won["version"] == 2
    current = await (await users.get("/users/me", headers=account.headers)).json()
    assert current == won


async def test_delete_answers_next_version_then_404(users, account):
    await users.patch(f"/users/{account.id}", json={"title": "x"}, headers=account.headers)
    resp = await users.delete(f"/users/{account.id}", headers={**account.headers, "If-Match": '"1"'})
    assert await error_of(resp, 412) == "precondition_failed"
    resp = await users.delete(f"/users/{account.id}", headers={**account.headers, "If-Match": '"2"'})
    assert resp.status == 200 and resp.headers["ETag"] == '"3"'
    assert await resp.json() == {"id": account.id, "version": 3, "deleted": True}
    # Its user is gone, and so is every token of it.
    assert await error_of(await users.get("/users/me", headers=account.headers), 401) == "token_revoked"
    resp = await users.delete(f"/users/{account.id}", headers=account.headers)
    assert await error_of(resp, 401) == "token_revoked"
    resp = await users.patch(f"/users/{account.id}", json={"title": "x"}, headers=account.headers)
    assert await error_of(resp, 401) == "token_revoked"


async def test_unknown_route_and_method_are_json(users, account):
    assert await error_of(await users.get("/nowhere", headers=account.headers), 404) == "not_found"
    resp = await users.post(f"/users/{account.id}", json={}, headers=account.headers)
    assert await error_of(resp, 405) == "method_not_allowed"
    assert "GET" in resp.headers["Allow"]
    resp = await users.get("/users/me", params={"x": "1"}, headers=account.headers)
    assert await error_of(resp, 400) == "bad_request"
