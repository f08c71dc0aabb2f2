"""GET /users/search: name prefix masks (with % and _ taken literally), pagination and its bounds."""
from __future__ import annotations

from tests.support.services import error_of

NAMES = [("Ann", "Smith"), ("Anna", "Smithson"), ("Bob", "Smith"), ("Annabel", "Jones"),
         ("Zoe", "100%_real"), ("Zed", "100xxreal"), ("Al_x", "Under"), ("Alyx", "Under")]


async def register_names(register):
    made = {}
    for first, last in NAMES:
        made[(first, last)] = (await register(first_name=first, last_name=last)).user
    return made


async def search(users, account, **params):
    resp = await users.get("/users/search", params=params, headers=account.headers)
    assert resp.status == 200, await resp.text()
    return await resp.json()


def names(body):
    return [(u["first_name"], u["last_name"]) for u in body["items"]]


async def test_masks_are_prefixes_of_either_or_both_names(users, register):
    await register_names(register)
    me = await register(first_name="Searcher", last_name="Q")
    assert names(await search(users, me, last_name="Smith")) == [("Ann", "Smith"), ("Bob", "Smith"),
                                                                  ("Anna", "Smithson")]
    assert names(await search(users, me, first_name="Ann")) == [("Ann", "Smith"), ("Anna", "Smithson"),
                                                                 ("Annabel", "Jones")]
    assert names(await search(users, me, first_name="Ann", last_name="Smith")) == [("Ann", "Smith"),
                                                                                  ("Anna", "Smithson")]
    lower, upper = await search(users, me, first_name="ann"), await search(users, me, first_name="Ann")
    assert names(lower) == names(upper)
    assert (await search(users, me, last_name="Nobody"))["items"] == []
    items = (await search(users, me, last_name="Smith"))["items"]
    # Public profiles only: nobody learns another user's login or email from a search.
    assert all(set(u) == {"id", "first_name", "last_name", "title", "version", "created_at", "updated_at"}
               for u in items)


async def test_percent_and_underscore_are_literal(users, register):
    await register_names(register)
    me = await register(first_name="Searcher", last_name="Q")
    assert names(await search(users, me, last_name="100%")) == [("Zoe", "100%_real")]
    assert names(await search(users, me, last_name="100%_")) == [("Zoe", "100%_real")]
    assert names(await search(users, me, first_name="Al_")) == [("Al_x", "Under")]
    assert (await search(users, me, first_name="%"))["items"] == []
    assert (await search(users, me, first_name="_"))["items"] == []
    assert (await search(users, me, first_name="!"))["items"] == []


async def test_pagination_walks_every_match_once(users, register):
    made = [await register(first_name="Page", last_name=f"P{i:02d}") for i in range(7)]
    me = made[0]
    seen, offset = [], 0
    while True:
        body = await search(users, me, first_name="Page", limit=3, offset=offset)
        assert body["limit"] == 3 and body["offset"] == offset and len(body["items"]) <= 3
        seen += [u["id"] for u in body["items"]]
        if not body["has_more"]:
            break
        offset += 3
    assert seen == [a.id for a in made] and offset == 6
    default = await search(users, me, first_name="Page")
    assert default["limit"] == 20 and default["has_more"] is False and len(default["items"]) == 7


async def test_bad_search_queries_are_400(users, account):
    for params in ({}, {"first_name": ""}, {"first_name": "A", "limit": "0"},
                   {"first_name": "A", "limit": "101"},
                   {"first_name": "A", "limit": "x"}, {"first_name": "A", "offset": "-1"},
                   {"first_name": "A", "color": "red"}, {"first_name": "A" * 101}):
        resp = await users.get("/users/search", params=params, headers=account.headers)
        assert await error_of(resp, 400) == "bad_request", params
    resp = await users.get("/users/search?first_name=A&first_name=B", headers=account.headers)
    assert await error_of(resp, 400) == "bad_request"
    assert (await search(users, account, first_name="A", limit="100"))["limit"] == 100


async def test_search_is_backed_by_the_name_indexes(db_config):
    from backends.common.db import connect
    conn = await connect(db_config.mariadb)
    try:
        async with conn.cursor() as cur:
            for where in ("last_name LIKE 'Sm%' AND first_name LIKE 'A%'", "first_name LIKE 'A%'"):
                await cur.execute(f"EXPLAIN SELECT id FROM users WHERE {where}")
                columns = [d[0] for d in cur.description]
                plan = dict(zip(columns, await cur.fetchone()))
                assert plan["possible_keys"] and ("ix_users_last_first" in plan["possible_keys"]
                                                  or "ix_users_first" in plan["possible_keys"]), plan
            await cur.execute("SHOW INDEX FROM users")
            indexes = {}
            for row in await cur.fetchall():
                indexes.setdefault(row[2], []).append(row[4])
    finally:
        conn.close()
    assert indexes["ix_users_last_first"] == ["last_name", "first_name"]
    assert indexes["ix_users_first"] == ["first_name"]
    assert indexes["uq_users_login"] == ["login"]
