"""The paths service: create (owner = caller), read, search by start prefix, and the errors."""
from __future__ import annotations

from tests.support.services import error_of


async def create(paths, account, start: str, end: str) -> dict:
    resp = await paths.post("/paths", json={"start_point": start, "end_point": end}, headers=account.headers)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    assert resp.headers["Location"] == f"/paths/{body['id']}" and resp.headers["ETag"] == '"1"'
    return body


async def test_create_and_read(paths, account):
    made = await create(paths, account, "Moscow", "Tver")
    assert made["owner_id"] == account.id and made["version"] == 1
    assert set(made) == {"id", "owner_id", "start_point", "end_point", "version", "created_at", "updated_at"}
    resp = await paths.get(f"/paths/{made['id']}", headers=account.headers)
    assert resp.status == 200 and resp.headers["ETag"] == '"1"' and await resp.json() == made
    assert await error_of(await paths.get("/paths/424242", headers=account.headers), 404) == "not_found"


async def test_bad_paths_are_refused(paths, account):
    for body in ({"start_point": "A", "end_point": "A"}, {"start_point": "", "end_point": "B"},
                 {"start_point": "A" * 201, "end_point": "B"}, {"start_point": "A"},
                 {"start_point": "A", "end_point": "B", "owner_id": 1}, {"start_point": 1, "end_point": "B"}):
        resp = await paths.post("/paths", json=body, headers=account.headers)
        assert await error_of(resp, 422) == "validation_error", body
    json_type = {**account.headers, "Content-Type": "application/json"}
    resp = await paths.post("/paths", data="{", headers=json_type)
    assert await error_of(resp, 400) == "malformed_json"
    resp = await paths.post("/paths", data="a", headers={**account.headers, "Content-Type": "text/plain"})
    assert await error_of(resp, 415) == "unsupported_media_type"
    resp = await paths.post("/paths", json={"start_point": "A", "end_point": "B"})
    assert await error_of(resp, 401) == "unauthorized"
    resp = await paths.delete("/paths/1", headers=account.headers)
    assert await error_of(resp, 405) == "method_not_allowed"


async def test_search_by_start_prefix(paths, account):
    wanted = [await create(paths, account, start, "Z") for start in ("Kazan", "Kazan-2", "Kaz_x")]
    await create(paths, account, "Kaluga", "Z")
    resp = await paths.get("/paths/search", params={"start": "Kaz"}, headers=account.headers)
    body = await resp.json()
    assert sorted(p["id"] for p in body["items"]) == sorted(p["id"] for p in wanted)
    resp = await paths.get("/paths/search", params={"start": "Kaz_"}, headers=account.headers)
    assert [p["start_point"] for p in (await resp.json())["items"]] == ["Kaz_x"]
    resp = await paths.get("/paths/search", params={"start": "Kaz", "limit": "2"}, headers=account.headers)
    first = await resp.json()
    resp = await paths.get("/paths/search", params={"start": "Kaz", "limit": "2", "offset": "2"},
                           headers=account.headers)
    second = await resp.json()
    assert first["has_more"] and not second["has_more"]
    assert [p["id"] for p in first["items"] + second["items"]] == [p["id"] for p in body["items"]]
    for params in ({}, {"start": ""}, {"start": "K", "limit": "1000"}, {"start": "K", "x": "1"}):
        resp = await paths.get("/paths/search", params=params, headers=account.headers)
        assert await error_of(resp, 400) == "bad_request", params
