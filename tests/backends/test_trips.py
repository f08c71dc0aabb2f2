"""The trips service: create, read, replace (owner, If-Match), list by owner, members; versions and errors."""
from __future__ import annotations

import asyncio

import pytest

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


async def test_concurrent_trip_puts_with_same_if_match(trips, account, path_id):
    made = await create(trips, account, path_id)
    url, headers = f"/trips/{made['id']}", {**account.headers, "If-Match": '"1"'}
    answers = await asyncio.gather(*(trips.put(url, json=trip_body(path_id, name=f"T{i}"), headers=headers)
                                     for i in range(2)))
    assert sorted(r.status for r in answers) == [200, 412]


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
