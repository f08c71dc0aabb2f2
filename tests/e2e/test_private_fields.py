"""A user's private fields (login, email) reach only that user, through every route and whatever the cache
holds: the public profile lives under user:<id>, the private view only under the owner's user-me:<id>."""
from __future__ import annotations

PRIVATE = ("login", "email")


def assert_public(user: dict, uid: int) -> None:
    assert user["id"] == uid
    assert not set(PRIVATE) & set(user), user


async def test_another_caller_never_sees_an_email(world):
    owner, own = await world.user("owner")
    _, other = await world.user("other")
    me = {"Authorization": own}
    them = {"Authorization": other}
    await world.proxy.get(f"/users/{owner}", headers=them)                  # the public entry is cached...
    patched = await world.proxy.patch(f"/users/{owner}", json={"email": "secret@example.com"}, headers=me)
    assert patched.status == 200 and (await patched.json())["email"] == "secret@example.com"
    for _ in range(2):                                                       # ...dropped, filled, then a hit
        resp = await world.proxy.get(f"/users/{owner}", headers=them)
        assert resp.status == 200 and resp.headers["ETag"] == patched.headers["ETag"]
        assert_public(await resp.json(), owner)
        assert "secret@example.com" not in await resp.text()
    assert resp.headers["Cache-Status"].startswith("cachegate; hit")
    for _ in range(2):
        found = await world.proxy.get("/users/search?last_name=Tester", headers=them)
        items = (await found.json())["items"]
        assert owner in [u["id"] for u in items]
        for user in items:
            assert_public(user, user["id"])
        by_login = await world.proxy.get("/users?login=owner", headers=them)
        [user] = (await by_login.json())["items"]
        assert_public(user, owner)
    # The owner reads its private view at /users/me: the one its write stored, so a hit at once...
    mine = await world.proxy.get("/users/me", headers=me)
    assert mine.headers["Cache-Status"].startswith("cachegate; hit")
    assert (await mine.json())["email"] == "secret@example.com" and (await mine.json())["login"] == "owner"
    # ...and the public one everywhere else, like anyone.
    assert_public(await (await world.proxy.get(f"/users/{owner}", headers=me)).json(), owner)
    # The other caller's /users/me is its own.
    theirs = await (await world.proxy.get("/users/me", headers=them)).json()
    assert theirs["login"] == "other" and theirs["id"] != owner


async def test_a_put_and_a_delete_keep_the_views_apart(world):
    owner, own = await world.user("putter")
    _, other = await world.user("looker")
    me, them = {"Authorization": own}, {"Authorization": other}
    await world.proxy.get(f"/users/{owner}", headers=them)
    await world.proxy.get("/users/me", headers=me)
    put = await world.proxy.put(f"/users/{owner}", headers=me, json={
        "first_name": "Put", "last_name": "Ter", "email": "put@example.com", "title": "t"})
    assert put.status == 200 and "stored" in put.headers["Cache-Status"]
    mine = await world.proxy.get("/users/me", headers=me)
    assert mine.headers["Cache-Status"].startswith("cachegate; hit")
    assert (await mine.json())["first_name"] == "Put"
    public = await world.proxy.get(f"/users/{owner}", headers=them)
    assert (await public.json())["first_name"] == "Put"
    assert_public(await public.json(), owner)
    # Someone else's write to the owner is refused upstream and stores nothing anywhere.
    refused = await world.proxy.patch(f"/users/{owner}", json={"email": "hijack@example.com"}, headers=them)
    assert refused.status == 403
    assert (await (await world.proxy.get("/users/me", headers=me)).json())["email"] == "put@example.com"
    deleted = await world.proxy.delete(f"/users/{owner}", headers=me)
    assert deleted.status == 200
    assert (await world.proxy.get(f"/users/{owner}", headers=them)).status == 404
