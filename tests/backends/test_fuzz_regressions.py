"""Regressions of the bugs the fuzz tests (tests/fuzz/) found in the services, one test per bug."""
from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from backends.common.db import connect
from backends.common.validation import EMAIL_RE
from tests.support.services import PASSWORD, error_of, profile

JSON = {"Content-Type": "application/json"}
SPEC = yaml.safe_load((Path(__file__).resolve().parents[2] / "docs" / "openapi.yaml").read_text())


async def count(config: Any, table: str) -> int:
    conn = await connect(config.mariadb)
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"SELECT COUNT(*) FROM {table}")
            return (await cur.fetchone())[0]
    finally:
        conn.close()


@pytest.fixture
async def path_id(paths, account) -> int:
    resp = await paths.post("/paths", json={"start_point": "Here", "end_point": "There"},
                            headers=account.headers)
    assert resp.status == 201, await resp.text()
    return (await resp.json())["id"]


async def test_lone_surrogate_in_a_json_string_is_400_not_500(users, paths, trips, account, path_id,
                                                             db_config):
    # `\ud800` parses into a Python str that can not be encoded to UTF-8: scrypt and the database
    # driver raised UnicodeEncodeError, answered as a 500.
    auth = {**JSON, **account.headers}
    before = [await count(db_config, table) for table in ("users", "paths", "trips")]
    cases = [
        (users, "POST", "/users", '{"login": "loner", "password": "abcdefgh\\ud800", "first_name": "A",'
                                  ' "last_name": "B", "email": "a@b.cd", "title": ""}', JSON),
        (users, "POST", "/auth/token", '{"login": "a\\udfff", "password": "abcdefgh"}', JSON),
        (users, "POST", "/auth/token", '{"login": "x", "password": "pw\\ud800"}', JSON),
        (users, "PATCH", f"/users/{account.id}", '{"first_name": "A\\ud800B"}', auth),
        (users, "PATCH", f"/users/{account.id}", '{"password": "abcdefgh\\udc00"}', auth),
        (users, "PATCH", f"/users/{account.id}", '{"email": "a\\ud800@b.cd"}', auth),
        (users, "PATCH", f"/users/{account.id}", '{"\\ud800": 1}', auth),
        (paths, "POST", "/paths", '{"start_point": "a\\ud800", "end_point": "b"}', auth),
        (paths, "POST", "/paths", '["\\ud800"]', auth),
        (trips, "POST", "/trips", '{"path_id": %d, "name": "\\udbff", "starts_at": "2030-01-01T00:00:00Z",'
                                  ' "finishes_at": "2030-01-02T00:00:00Z"}' % path_id, auth),
    ]
    for client, method, url, body, headers in cases:
        resp = await client.request(method, url, data=body.encode(), headers=headers)
        assert await error_of(resp, 400) == "malformed_json", (method, url, body)
    # json.loads(bytes) decodes with 'surrogatepass': a surrogate encoded in UTF-8 got through as well,
    # and a body in UTF-16 was read as JSON.
    for raw in [b'{"first_name": "A\xed\xa0\x80"}', '{"first_name": "A"}'.encode("utf-16")]:
        resp = await users.patch(f"/users/{account.id}", data=raw, headers=auth)
        assert await error_of(resp, 400) == "malformed_json", raw
    resp = await users.patch(f"/users/{account.id}", data=b'\xef\xbb\xbf{"title": "BOM"}', headers=auth)
    assert resp.status == 200, await resp.text()
    # A well-formed pair (an emoji written as two escapes) is one character and is fine.
    resp = await users.patch(f"/users/{account.id}", data='{"first_name": "A\\ud83d\\ude00"}', headers=auth)
    assert resp.status == 200 and (await resp.json())["first_name"] == "A\U0001F600"
    assert [await count(db_config, table) for table in ("users", "paths", "trips")] == before


async def test_time_outside_datetime_range_after_utc_conversion_is_422_not_500(trips, account, path_id,
                                                                               db_config):
    # Converting to UTC overflowed Python's datetime (OverflowError, a 500) at both ends of the range.
    for starts_at, finishes_at in [("9999-12-31T20:00:00Z", "9999-12-31T23:00:00-05:00"),
                                   ("0001-01-01T00:00:00+05:00", "2030-01-01T00:00:00Z")]:
        body = {"path_id": path_id, "name": "edge", "starts_at": starts_at, "finishes_at": finishes_at}
        resp = await trips.post("/trips", json=body, headers=account.headers)
        assert await error_of(resp, 422) == "validation_error", body
        assert "year" in (await resp.json())["error"]["message"]
    assert await count(db_config, "trips") == 0


async def test_time_not_in_rfc3339_form_is_422(trips, account, path_id):
    # datetime.fromisoformat took forms the document's `format: date-time` (RFC 3339) does not:
    # a space for T, week dates, the basic format without dashes.
    for odd in ["2030-01-01 09:00:00Z", "2030-W01-2T09:00:00+00:00", "20300101T090000Z", "2030-01-01T09:00Z",
                "2030-01-01T09:00:00", "2030-01-01T09:00:00+0100", " 2030-01-01T09:00:00Z"]:
        body = {"path_id": path_id, "name": "odd", "starts_at": odd, "finishes_at": "2031-01-01T00:00:00Z"}
        resp = await trips.post("/trips", json=body, headers=account.headers)
        assert await error_of(resp, 422) == "validation_error", odd
    # RFC 3339 allows a lower-case t and z, and any number of fractional digits (kept to microseconds).
    body = {"path_id": path_id, "name": "fine", "starts_at": "2030-01-01t09:00:00.1234567z",
            "finishes_at": "2030-01-01T11:00:00+01:30"}
    resp = await trips.post("/trips", json=body, headers=account.headers)
    assert resp.status == 201, await resp.text()
    trip = await resp.json()
    assert (trip["starts_at"], trip["finishes_at"]) == ("2030-01-01T09:00:00.123456Z", "2030-01-01T09:30:00Z")


async def test_id_with_leading_zeros_is_not_found(users, paths, trips, account, path_id):
    # /users/007 answered user 7: through the proxy that is a second cache key (user:007) for one entity,
    # which a write to /users/7 never refreshes. Only the canonical spelling of an id names an entity.
    resp = await trips.post("/trips", headers=account.headers, json={
        "path_id": path_id, "name": "t", "starts_at": "2030-01-01T00:00:00Z",
        "finishes_at": "2030-01-02T00:00:00Z"})
    trip_id = (await resp.json())["id"]
    for client, url in [(users, f"/users/0{account.id}"), (paths, f"/paths/00{path_id}"), (users, "/users/0"),
                        (trips, f"/trips/0{trip_id}"), (trips, f"/trips/0{trip_id}/members")]:
        assert await error_of(await client.get(url, headers=account.headers), 404) == "not_found", url
    resp = await users.patch(f"/users/0{account.id}", json={"title": "x"}, headers=account.headers)
    assert await error_of(resp, 404) == "not_found"
    resp = await trips.post(f"/trips/0{trip_id}/members", headers=account.headers)
    assert await error_of(resp, 404) == "not_found"
    assert (await users.get(f"/users/{account.id}", headers=account.headers)).status == 200
    resp = await users.get("/users/999999999999999999", headers=account.headers)  # 18 digits: in range
    assert await error_of(resp, 404) == "not_found"


async def test_email_with_control_characters_is_422(users):
    # Python's \s covers \x1c-\x1f and \x85, the document's (ECMA/Rust) \s does not: the two
    # disagreed, and control characters slipped into stored addresses.
    for n, email in enumerate(["a\x02b@example.com", "a\x1d@example.com", "ab@exa\x85mple.com",
                               "ab@example.c\x7fom", "\ufeffab@example.com"]):
        resp = await users.post("/users", json=profile(f"ctl{n}", email=email))
        assert await error_of(resp, 422) == "validation_error", repr(email)
    resp = await users.post("/users", json=profile("unicode", email="zoë@exämple.org"))
    assert resp.status == 201, await resp.text()


def test_email_pattern_of_the_document_is_the_services_pattern():
    documented = SPEC["components"]["schemas"]["Email"]["pattern"]
    assert documented == f"^{EMAIL_RE.pattern}$"
    assert re.fullmatch(r"[ -~]+", documented), "ASCII escapes only, read alike by Python and ECMA regexes"


async def test_duplicate_json_keys_are_400(users, paths, account, db_config):
    # json.loads kept the last of two equal keys: a body that means two things to two parsers.
    before = await count(db_config, "paths")
    body = '{"start_point": "a", "start_point": "c", "end_point": "b"}'
    resp = await paths.post("/paths", data=body, headers={**JSON, **account.headers})
    assert await error_of(resp, 400) == "malformed_json"
    assert "start_point" in (await resp.json())["error"]["message"]
    nested = '{"login": "dup", "password": "%s", "first_name": "A", "last_name": "B", "email": "a@b.cd",' \
             ' "title": {"x": 1, "x": 2}}' % PASSWORD
    assert await error_of(await users.post("/users", data=nested, headers=JSON), 400) == "malformed_json"
    assert await count(db_config, "paths") == before


async def test_empty_query_values_are_400(users, paths, trips, account):
    # `?first_name=&last_name=Lovelace` searched by last name alone and `?limit=` meant the default:
    # an empty value is not the integer or the 1..100 characters the document asks for.
    for client, url in [(users, "/users/search?first_name=&last_name=Lovelace"),
                        (users, "/users/search?last_name=Lovelace&limit="),
                        (users, "/users/search?last_name=Lovelace&offset="),
                        (paths, "/paths/search?start="), (trips, f"/trips?owner={account.id}&limit=")]:
        resp = await client.get(url, headers=account.headers)
        assert await error_of(resp, 400) == "bad_request", url
    resp = await users.get("/users/search?last_name=Lovelace&limit=5", headers=account.headers)
    assert resp.status == 200 and (await resp.json())["limit"] == 5


async def test_non_ascii_basic_credentials_are_400_not_500(users):
    # base64.b64decode raises a plain ValueError (not binascii.Error) for a non-ASCII str, and aiohttp
    # hands header bytes over as text: `Authorization: Basic é` was a 500.
    for value in [b"Basic \xc3\xa9", b"Basic Zm9vOmJhcg==\xc3\xa9", b"Basic \xff"]:
        reader, writer = await asyncio.open_connection("127.0.0.1", users.server.port)
        writer.write(b"POST /auth/token HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 0\r\n"
                     b"Authorization: " + value + b"\r\n\r\n")
        answer = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 400 "), answer
        assert json.loads(body)["error"]["code"] == "bad_request"
