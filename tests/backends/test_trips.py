"""The trips service: create, read, replace (owner, If-Match), list by owner, members; versions and errors."""
from __future__ import annotations

import asyncio

import pytest

from tests.support.dbrows import fetch_rows
from tests.support.services import error_of


@pytest.fixture
async def path_id(paths, account) -> int:
    body = {"start_point": "Here", "end_point": "There"}
    resp = await paths.post("/paths", json=body, headers=account.headers)
    return (await resp.json())["id"]


def trip_body(path_id: int, **changes) -> dict:
    body = {"path_id": path_id, "name": "Weekend", "starts_at": "2030-06-01T09:00:00Z",
            "finishes_at": "2030-06-02T18:00:00+02:00"}
    body.update(changes)
    return body


async def create(trips, account, path_id, **changes) -> dict:
    resp = await trips.post("/trips", json=trip_body(path_id, **changes), headers=account.headers)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert resp.headers["Location"] == f"/trips/{body['id']}" and resp.headers["ETag"] == '"1"'
    return body


async def test_create_read_and_list_by_owner(trips, account, register, path_id):
    made = await create(trips, account, path_id)
    assert made["owner_id"] == account.id and made["path_id"] == path_id and made["member_count"] == 0
    # Times come back in UTC.
    assert made["starts_at"] == "2030-06-01T09:00:00Z" and made["finishes_at"] == "2030-06-02T16:00:00Z"
    resp = await trips.get(f"/trips/{made['id']}", headers=account.headers)
    assert resp.headers["ETag"] == '"1"' and await resp.json() == made
    second = await create(trips, account, path_id, name="Second")
    other = await register()
    await create(trips, other, path_id, name="Not mine")
    resp = await trips.get("/trips", params={"owner": str(account.id)}, headers=other.headers)
    assert [t["id"] for t in (await resp.json())["items"]] == [made["id"], second["id"]]
    resp = await trips.get("/trips", params={"owner": str(account.id), "limit": "1", "offset": "1"},
                           headers=account.headers)
    body = await resp.json()
    assert [t["id"] for t in body["items"]] == [second["id"]] and body["has_more"] is False
    for params in ({}, {"owner": "abc"}, {"owner": "0"}, {"owner": "1", "limit": "0"}):
        resp = await trips.get("/trips", params=params, headers=account.headers)
        assert await error_of(resp, 400) == "bad_request", params
    assert await error_of(await trips.get("/trips/999999", headers=account.headers), 404) == "not_found"


async def test_bad_trips_are_422(trips, account, path_id):
    cases = [
        trip_body(999999),                                                       # no such path
        trip_body(path_id, finishes_at="2030-06-01T09:00:00Z"),                  # not after the start
        trip_body(path_id, finishes_at="2030-05-01T09:00:00Z"),
        trip_body(path_id, starts_at="2030-06-01T09:00:00"),                     # no zone
        trip_body(path_id, starts_at="next tuesday"),
        trip_body(path_id, name=""),
        {**trip_body(path_id), "path_id": "1"},
        {**trip_body(path_id), "path_id": True},
        trip_body(path_id, members=[]),
        {"name": "x"},
    ]
    for body in cases:
        resp = await trips.post("/trips", json=body, headers=account.headers)
        assert await error_of(resp, 422) == "validation_error", body


async def test_put_by_owner_with_if_match(trips, account, register, path_id):
    made = await create(trips, account, path_id)
    url = f"/trips/{made['id']}"
    new = trip_body(path_id, name="Renamed")
    resp = await trips.put(url, json=new, headers={**account.headers, "If-Match": '"1"'})
    body = await resp.json()
    assert resp.status == 200 and body["name"] == "Renamed" and body["version"] == 2
    assert resp.headers["ETag"] == '"2"'
    resp = await trips.put(url, json=new, headers={**account.headers, "If-Match": '"1"'})
    assert await error_of(resp, 412) == "precondition_failed"
    resp = await trips.put(url, json=new, headers=account.headers)
    assert (await resp.json())["version"] == 3
    other = await register()
    assert await error_of(await trips.put(url, json=new, headers=other.headers), 403) == "forbidden"
    resp = await trips.put(url, json=trip_body(999999), headers=account.headers)
    assert await error_of(resp, 422) == "validation_error"
    resp = await trips.put("/trips/999999", json=new, headers=account.headers)
    assert await error_of(resp, 404) == "not_found"
    assert (await (await trips.get(url, headers=account.headers)).json())["version"] == 3


async def stored_trip(db_config, trip_id: int) -> tuple[str, int, int, list[int]]:
    """What the database holds for a trip, read directly: (name, version, member_count, member ids)."""
    [(name, version, count)] = await fetch_rows(
        db_config, "SELECT name, version, member_count FROM trips WHERE id = %s", (trip_id,))
    members = await fetch_rows(
        db_config, "SELECT user_id FROM trip_members WHERE trip_id = %s ORDER BY user_id", (trip_id,))
    return name, int(version), int(count), [int(m) for (m,) in members]


async def test_concurrent_trip_puts_with_same_if_match(trips, account, path_id, db_config):
    """One of several PUTs with the same If-Match wins; the row holds exactly the winner's write."""
    made = await create(trips, account, path_id)
    url, headers = f"/trips/{made['id']}", {**account.headers, "If-Match": '"1"'}
    answers = await asyncio.gather(*(trips.put(url, json=trip_body(path_id, name=f"T{i}"), headers=headers)
                                     for i in range(4)))
    assert sorted(r.status for r in answers) == [200, 412, 412, 412]
    [winner] = [await r.json() for r in answers if r.status == 200]
    for lost in (r for r in answers if r.status == 412):
        assert (await lost.json())["error"]["code"] == "precondition_failed"
    name, version, _, _ = await stored_trip(db_config, made["id"])
    assert (name, version) == (winner["name"], 2) and winner["version"] == 2


async def test_concurrent_puts_and_joins_lose_no_update(trips, account, register, path_id, db_config):
    """PUTs without If-Match, joins of distinct users and a user joining twice, all at once: every
    acknowledged write has a version of its own, the row holds the last of them, each joiner is booked
    once, and the member count is the number of members."""
    made = await create(trips, account, path_id)
    url = f"/trips/{made['id']}"
    joiners = [await register() for _ in range(5)]
    twice = joiners[0]
    puts = [trips.put(url, json=trip_body(path_id, name=f"P{i}"), headers=account.headers) for i in range(5)]
    joins = [trips.post(url + "/members", headers=j.headers) for j in [*joiners, twice]]
    answers = await asyncio.gather(*puts, *joins)
    put_answers, join_answers = answers[:len(puts)], answers[len(puts):]
    assert [r.status for r in put_answers] == [200] * len(puts)
    assert sorted(r.status for r in join_answers) == [201] * len(joiners) + [409]
    assert [await error_of(r, 409) for r in join_answers if r.status == 409] == ["conflict"]
    put_bodies = [await r.json() for r in put_answers]
    join_bodies = [await r.json() for r in join_answers if r.status == 201]
    acked = sorted(put_bodies + join_bodies, key=lambda body: body["version"])
    # Each acknowledged write bumped the version once, none was lost, and each answer is the row as that
    # write left it: the name of the last PUT up to its version, the joins up to it counted.
    assert [body["version"] for body in acked] == list(range(2, 2 + len(acked)))
    put_versions = {body["version"]: body["name"] for body in put_bodies}
    join_versions = [body["version"] for body in join_bodies]
    name = made["name"]
    for body in acked:
        name = put_versions.get(body["version"], name)
        assert body["name"] == name, body
        assert body["member_count"] == sum(v <= body["version"] for v in join_versions), body
    stored = await stored_trip(db_config, made["id"])
    assert stored == (name, 1 + len(acked), len(joiners), sorted(j.id for j in joiners))


async def test_join_bumps_version_and_lists_members(trips, account, register, path_id):
    made = await create(trips, account, path_id)
    url = f"/trips/{made['id']}/members"
    other = await register()
    resp = await trips.post(url, headers=other.headers)
    body = await resp.json()
    assert resp.status == 201 and body["member_count"] == 1 and body["version"] == 2
    assert resp.headers["ETag"] == '"2"'
    assert await error_of(await trips.post(url, headers=other.headers), 409) == "conflict"
    resp = await trips.post(url, headers=account.headers)
    assert (await resp.json())["version"] == 3
    resp = await trips.get(url, headers=other.headers)
    listed = await resp.json()
    assert resp.headers["ETag"] == '"3"' and listed["version"] == 3 and listed["trip_id"] == made["id"]
    assert [m["user_id"] for m in listed["items"]] == [other.id, account.id]
    assert all(m["joined_at"].endswith("Z") for m in listed["items"])
    trip = await (await trips.get(f"/trips/{made['id']}", headers=account.headers)).json()
    assert trip["member_count"] == 2 and trip["version"] == 3
    for method in (trips.post, trips.get):
        resp = await method("/trips/999999/members", headers=account.headers)
        assert await error_of(resp, 404) == "not_found"
    assert await error_of(await trips.post(url), 401) == "unauthorized"
