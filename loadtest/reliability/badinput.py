"""The bad-input suite: a fixed set of malformed requests through the gateway, each owed a 4xx JSON error.

The cases come from tests/fuzz/test_hostile.py's findings: broken and duplicate-key JSON, wrong types,
oversized bodies and headers, paths that could alias another resource, bad queries, wrong media types.
"""
from __future__ import annotations

import json

from loadtest.reliability.rawhttp import Case

JSON = ("Content-Type", "application/json")


def cases(*, user_id: int, bearer: str, path_id: int, trip_id: int) -> list[Case]:
    auth = ("Authorization", bearer)
    me = f"/users/{user_id}"

    def patch(kind: str, name: str, body: bytes, expect: tuple[int, ...] = (),
              content_type: tuple[str, str] | None = JSON) -> Case:
        headers = (auth,) + ((content_type,) if content_type else ())
        return Case(kind, name, "PATCH", me, headers, body, expect)

    def get(kind: str, name: str, target: str, expect: tuple[int, ...] = ()) -> Case:
        return Case(kind, name, "GET", target, (auth,), None, expect)

    trip = json.dumps({"path_id": path_id, "name": "x", "starts_at": "2030-01-01T00:00:00Z",
                       "finishes_at": "2030-01-02T00:00:00Z"}).encode()
    return [
        # malformed JSON
        patch("malformed-json", "truncated object", b'{"title": ', (400,)),
        patch("malformed-json", "unquoted key", b"{title: 1}", (400,)),
        patch("malformed-json", "trailing brace", b'{"title": "a"}}', (400,)),
        patch("malformed-json", "NaN", b'{"title": NaN}', (400,)),
        patch("malformed-json", "duplicate keys", b'{"title": "a", "title": "b"}', (400,)),
        patch("malformed-json", "raw NUL", b'{"title": "a\x00b"}', (400,)),
        patch("malformed-json", "invalid UTF-8", b'{"title": "\xc3\x28"}', (400,)),
        patch("malformed-json", "lone surrogate", b'{"title": "\\ud800"}', (400,)),
        patch("malformed-json", "nested 100,000 deep", b"[" * 100_000 + b"]" * 100_000, (400,)),
        patch("malformed-json", "empty body", b"", (400,)),
        Case("malformed-json", "POST /paths, number of 5,000 digits", "POST", "/paths",
             (auth, JSON), b'{"start_point": ' + b"9" * 5000 + b', "end_point": "b"}', (400,)),
        # wrong types and values
        patch("wrong-type", "title a number", b'{"title": 5}', (422,)),
        patch("wrong-type", "title null", b'{"title": null}', (422,)),
        patch("wrong-type", "first_name a list", b'{"first_name": ["a"]}', (422,)),
        patch("wrong-type", "title an object", b'{"title": {"a": 1}}', (422,)),
        patch("wrong-type", "a string body", b'"just a string"', (422,)),
        patch("wrong-type", "a null body", b"null", (422,)),
        patch("wrong-type", "an array body", b"[]", (422,)),
        patch("wrong-type", "unknown field", b'{"admin": true}', (422,)),
        patch("wrong-type", "email not an email", b'{"email": "not-an-email"}', (422,)),
        patch("wrong-type", "first_name empty", b'{"first_name": ""}', (422,)),
        patch("wrong-type", "title over 100 characters", json.dumps({"title": "x" * 101}).encode(), (422,)),
        patch("wrong-type", "control character", b'{"title": "a\\u0000b"}', (422,)),
        Case("wrong-type", "POST /trips, ends before it starts", "POST", "/trips", (auth, JSON),
             json.dumps({"path_id": path_id, "name": "x", "starts_at": "2030-01-02T00:00:00Z",
                         "finishes_at": "2030-01-01T00:00:00Z"}).encode(), (422,)),
        Case("wrong-type", "PUT /trips with a stale If-Match", "PUT", f"/trips/{trip_id}",
             (auth, JSON, ("If-Match", '"999999"')), trip, (412, 403)),
        # oversized
        patch("oversized", "2 MiB body", json.dumps({"title": "a" * (2 * 1024 * 1024)}).encode(), (413,)),
        Case("oversized", "header line over 8 KiB", "GET", me, (auth, ("X-Big", "a" * 9000)), None,
             (400, 431), json_error=False),
        get("oversized", "search value of 101 characters", "/users/search?last_name=" + "a" * 101, (400,)),
        # paths that could name another resource
        get("bad-path", "encoded slash", f"/users/{user_id}%2F..%2F1", (400, 404)),
        get("bad-path", "dot-dot segment", f"/users/../users/{user_id}", (400, 404)),
        get("bad-path", "encoded dot-dot", "/users/%2e%2e/me", (400, 404)),
        get("bad-path", "empty segment", f"/users//{user_id}", (400, 404)),
        get("bad-path", "backslash", f"/users\\{user_id}", (400, 404)),
        get("bad-path", "encoded backslash", f"/users/%5C{user_id}", (400, 404)),
        get("bad-path", "malformed escape", "/users/%zz", (400, 404)),
        get("bad-path", "trailing dot-dot", f"/users/{user_id}/..", (400, 404)),
        get("bad-path", "leading zero id", f"/users/0{user_id}", (404,)),
        get("bad-path", "id over 64 bits", "/users/99999999999999999999999", (404,)),
        get("bad-path", "negative id", "/users/-1", (404,)),
        get("bad-path", "no such route", "/nowhere", (404,)),
        Case("bad-path", "DELETE on a read-only route", "DELETE", f"/paths/{path_id}", (auth,), None, (405,)),
        # bad queries
        get("bad-query", "repeated parameter", "/users/search?last_name=T&last_name=U", (400,)),
        get("bad-query", "unknown parameter", "/users/search?last_name=T&zzz=1", (400,)),
        get("bad-query", "query on /users/me", "/users/me?x=1", (400,)),
        get("bad-query", "limit 0", "/paths/search?start=A&limit=0", (400,)),
        get("bad-query", "limit 101", "/paths/search?start=A&limit=101", (400,)),
        get("bad-query", "negative offset", "/paths/search?start=A&offset=-1", (400,)),
        get("bad-query", "malformed escape", "/users/search?last_name=%zz", (400,)),
        # media types
        patch("media-type", "text/plain", b'{"title": "a"}', (415,), ("Content-Type", "text/plain")),
        patch("media-type", "form-urlencoded", b"title=a", (415,),
              ("Content-Type", "application/x-www-form-urlencoded")),
        patch("media-type", "no Content-Type", b'{"title": "a"}', (415,), None),
    ]
