"""Hand-written hostile requests through the proxy: each gets a 4xx JSON error or a correct 2xx, never a
500, and a refused write leaves no row behind (checked in MariaDB, not through the API).

Requests that an HTTP client would normalise (`../`, `%2F`, raw bytes) go over a plain socket.
"""
from __future__ import annotations

import json

from tests.fuzz.hostile_http import assert_error, db_rows, send, snapshot


async def test_odd_ids_in_paths_are_404(seeded):
    uid = seeded.user_id
    for target in ["/users/99999999999999999999999", f"/users/{2**64}", "/users/-1", "/users/0",
                   f"/users/0{uid}", f"/users/00{uid}", f"/paths/0{seeded.path_id}",
                   f"/trips/0{seeded.trip_id}", f"/trips/0{seeded.trip_id}/members", "/users/1e3",
                   "/users/%31%32", "/users/%D9%A1", "/users/+1", "/users/1.0", "/users/0x1",
                   "/trips/99999999999999999999/members"]:
        status, headers, body = await send(seeded, "GET", target)
        assert_error(status, headers, body, 404)
    # The canonical spelling still works, and a write through an odd spelling changes nothing.
    before = await snapshot(seeded)
    status, headers, body = await send(seeded, "PATCH", f"/users/0{uid}", b'{"first_name": "Zero"}')
    assert_error(status, headers, body, 404)
    assert await snapshot(seeded) == before
    status, _, body = await send(seeded, "GET", f"/users/{uid}")
    assert status == 200 and json.loads(body)["first_name"] == "Fuzzer"


async def test_slashes_and_dot_segments_never_reach_another_route(seeded):
    uid = seeded.user_id
    for target in [f"/users/{uid}%2F..%2F{seeded.other_id}", f"/users/../users/{uid}",
                   f"/paths/{seeded.path_id}/../../users/{uid}", f"/users/{uid}/..", "/users/%2e%2e/me",
                   f"/trips/{seeded.trip_id}%2Fmembers", "//users/me", "/users/me/", "/users//me"]:
        status, headers, body = await send(seeded, "GET", target)
        assert_error(status, headers, body, (400, 404))
    before = await snapshot(seeded)
    target = f"/trips/{seeded.trip_id}/members/..%2F..%2F{seeded.trip_id}"
    status, headers, body = await send(seeded, "PUT", target, b'{"name": "x"}')
    assert_error(status, headers, body, (400, 404, 405))
    assert await snapshot(seeded) == before


async def test_unicode_and_nul_in_json_strings(seeded):
    uid = seeded.user_id
    before = await snapshot(seeded)
    refused = [(b'{"first_name": "A\\u0000B"}', 422), (b'{"first_name": "A\x00B"}', 400),  # raw NUL: bad JSON
               (b'{"title": "tab\\there"}', 422), (b'{"first_name": "A\\ud800"}', 400),
               (b'{"email": "a\\udc00@b.cd"}', 400), (b'{"password": "abcdefgh\\udbff"}', 400),
               (b'{"first_name": "\xc3\x28"}', 400), (b'{"last_name": "\xed\xa0\x80"}', 400)]
    for body, expected in refused:
        status, headers, answer = await send(seeded, "PATCH", f"/users/{uid}", body)
        assert_error(status, headers, answer, expected)
    assert await snapshot(seeded) == before
    name = "Zoë 李 \U0001F600 \u202e"  # accents, CJK, an astral emoji, a bidi override (printable)
    body = json.dumps({"first_name": name}).encode()
    status, _, answer = await send(seeded, "PATCH", f"/users/{uid}", body)
    assert status == 200 and json.loads(answer)["first_name"] == name
    status, _, answer = await send(seeded, "GET", f"/users/{uid}")
    assert status == 200 and json.loads(answer)["first_name"] == name
    rows = await db_rows(seeded, "SELECT first_name FROM users WHERE id = %s", (uid,))
    assert rows == [(name,)]
    # NUL and odd bytes in a query value are data, not syntax.
    for target in ["/users/search?last_name=%00", "/users?login=%00", "/paths/search?start=%F0%9F%98%80",
                   "/paths/search?start=%ED%A0%80", "/users/search?first_name=%FF"]:
        status, _, answer = await send(seeded, "GET", target)
        assert status == 200 and json.loads(answer)["items"] == [], (target, answer)


async def test_deeply_nested_and_huge_json_bodies(seeded):
    before = await snapshot(seeded)
    for body, expected in [(b"[" * 100_000 + b"]" * 100_000, 400),
                           (b'{"a":' * 50_000 + b"1" + b"}" * 50_000, 400),
                           (b'{"start_point": ' + b"9" * 5000 + b', "end_point": "b"}', 400),
                           (b'{"start_point": 1e400, "end_point": "b"}', 422),
                           (b'{"start_point": NaN, "end_point": "b"}', 400),
                           (b'{"start_point": [[[["a"]]]], "end_point": "b"}', 422),
                           (b'"just a string"', 422), (b"null", 422), (b"[]", 422)]:
        status, headers, answer = await send(seeded, "POST", "/paths", body)
        assert_error(status, headers, answer, expected)
    big = json.dumps({"start_point": "a" * (2 * 1024 * 1024), "end_point": "b"}).encode()
    status, headers, answer = await send(seeded, "POST", "/paths", big)
    assert_error(status, headers, answer, 413)
    assert await snapshot(seeded) == before


async def test_wrong_content_types_and_empty_bodies(seeded):
    before = await snapshot(seeded)
    good = json.dumps({"start_point": "Calais", "end_point": "Lille"}).encode()
    for content_type in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x",
                         "application/jsonx", "json", "", "application/xml"]:
        status, headers, answer = await send(seeded, "POST", "/paths", good, content_type=content_type)
        assert_error(status, headers, answer, 415)
    status, headers, answer = await send(seeded, "POST", "/paths", good, content_type=None)
    assert_error(status, headers, answer, 415)
    for body in [b"", b"   ", b"\r\n"]:
        status, headers, answer = await send(seeded, "POST", "/paths", body)
        assert_error(status, headers, answer, 400)
    status, headers, answer = await send(seeded, "POST", "/users", b"", auth=False)
    assert_error(status, headers, answer, 400)
    status, headers, answer = await send(seeded, "PUT", f"/trips/{seeded.trip_id}", b"")
    assert_error(status, headers, answer, 400)
    status, headers, answer = await send(seeded, "POST", "/auth/token", b"", auth=False)
    assert_error(status, headers, answer, (400, 401))
    assert await snapshot(seeded) == before
    # A +json media type is JSON; a body on an operation that takes none is ignored, not an error.
    status, _, _ = await send(seeded, "POST", "/paths", good, content_type="application/vnd.api+json")
    assert status == 201
    status, _, answer = await send(seeded, "POST", f"/trips/{seeded.trip_id}/members", b"x",
                                   content_type="text/plain")
    assert status == 201 and json.loads(answer)["member_count"] == 1


async def test_duplicate_json_keys_are_refused(seeded):
    before = await snapshot(seeded)
    bodies = [("POST", "/paths", b'{"start_point": "a", "start_point": "c", "end_point": "b"}'),
              ("PATCH", f"/users/{seeded.user_id}", b'{"first_name": "A", "first_name": "B"}'),
              ("PUT", f"/trips/{seeded.trip_id}", b'{"path_id": 1, "path_id": 2, "name": "n",'
               b' "starts_at": "2030-01-01T00:00:00Z", "finishes_at": "2030-01-02T00:00:00Z"}')]
    for method, target, body in bodies:
        status, headers, answer = await send(seeded, method, target, body)
        assert assert_error(status, headers, answer, 400) == "malformed_json"
    assert await snapshot(seeded) == before


async def test_repeated_and_unknown_query_parameters_are_400(seeded):
    for target in ["/users/search?last_name=T&last_name=U", "/users/search?last_name=T&zzz=1",
                   "/users?login=fuzzer&login=bystander", "/users?login=fuzzer&admin=1",
                   f"/trips?owner={seeded.user_id}&owner=2", f"/trips?owner={seeded.user_id}&limit=1&limit=2",
                   "/paths/search?start=A&start=B", "/paths/search?start=A&limit=0",
                   "/paths/search?start=A&limit=101",
                   "/paths/search?start=A&offset=-1", "/paths/search?start=A&limit=1e1", "/users/me?x=1",
                   "/users/search?last_name=" + "a" * 101, f"/trips?owner={10**18}"]:
        status, headers, body = await send(seeded, "GET", target)
        assert_error(status, headers, body, 400)


async def test_refused_writes_leave_no_row_behind(seeded):
    before = await snapshot(seeded)
    trip = {"path_id": seeded.path_id, "name": "Again", "starts_at": "2030-06-01T09:00:00Z",
            "finishes_at": "2030-06-01T17:00:00Z"}
    refused = [
        ("POST", "/trips", {**trip, "path_id": 10**17}, 422),           # no such path: foreign key
        ("POST", "/trips", {**trip, "finishes_at": "2030-06-01T08:00:00Z"}, 422),
        ("POST", "/trips", {**trip, "finishes_at": "9999-12-31T23:00:00-05:00"}, 422),
        ("PUT", f"/trips/{seeded.trip_id}", {**trip, "path_id": 10**17}, 422),
        ("PUT", f"/trips/{seeded.trip_id}", {**trip, "name": "x" * 201}, 422),
        ("POST", "/paths", {"start_point": "Same", "end_point": "Same"}, 422),
        ("PATCH", f"/users/{seeded.other_id}", {"first_name": "Mallory"}, 403),
        ("DELETE", f"/users/{seeded.other_id}", None, 403),
        ("POST", "/users", {"login": "fuzzer", "password": "x" * 8, "first_name": "A", "last_name": "B",
                            "email": "a@b.cd", "title": ""}, 409),
    ]
    for method, target, body, expected in refused:
        data = None if body is None else json.dumps(body).encode()
        status, headers, answer = await send(seeded, method, target, data)
        assert_error(status, headers, answer, expected)
    status, headers, answer = await send(seeded, "PUT", f"/trips/{seeded.trip_id}", json.dumps(trip).encode(),
                                         extra={"If-Match": '"7"'})
    assert_error(status, headers, answer, 412)
    assert await snapshot(seeded) == before


async def test_proxy_own_limits_answer_json(seeded):
    status, headers, body = await send(seeded, "DELETE", "/paths/1")
    assert_error(status, headers, body, 405)
    status, headers, body = await send(seeded, "GET", "/nowhere")
    assert_error(status, headers, body, 404)
    status, headers, body = await send(seeded, "GET", "/users/me", auth=False,
                                       extra={"Authorization": "Bearer " + "x" * 5000})
    assert_error(status, headers, body, 401)
    status, headers, body = await send(seeded, "GET", "/users/me", auth=False,
                                       extra={"Authorization": "Basic !!!"})
    assert_error(status, headers, body, (400, 401))


async def test_malformed_basic_credentials_are_4xx(seeded):
    before = await snapshot(seeded)
    for value in ["Basic \xc3\xa9", "Basic Zm9vOmJhcg==\xc3\xa9", "Basic \xff", "Basic ", "Basic !!!",
                  "Basic " + "QQ==" * 2000, "Basic Og==", "Basic bm9jb2xvbg==", "Digest x"]:
        status, headers, body = await send(seeded, "POST", "/auth/token", auth=False,
                                           extra={"Authorization": value})
        assert_error(status, headers, body, (400, 401))
    assert await snapshot(seeded) == before
