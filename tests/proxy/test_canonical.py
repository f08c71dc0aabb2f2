"""The canonical request target: one spelling per resource or a 400, and what an aiohttp service reads."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from yarl import URL

from proxy.canonical import canonical_path, canonical_query, canonical_target
from proxy.errors import BadPath, BadQuery

ACCEPTED = [
    # target, path the router matches, path sent upstream, query
    ("/users/123", "/users/123", "/users/123", ""),
    ("/users/%31%32", "/users/12", "/users/12", ""),              # escaped unreserved characters decoded
    ("/users/%7e%41-_.x", "/users/~A-_.x", "/users/~A-_.x", ""),
    ("/a/%c3%a9", "/a/é", "/a/%C3%A9", ""),                        # other escapes upper-cased
    ("/a/%D9%A1", "/a/\u0661", "/a/%D9%A1", ""),
    ('/a"b<c>', '/a"b<c>', "/a%22b%3Cc%3E", ""),                   # what the parser lets through, escaped
    ("/a/%3F%23%25%20", "/a/?#% ", "/a/%3F%23%25%20", ""),
    ("/a/%3b%2B%40", "/a/;+@", "/a/;+@", ""),                      # sub-delims go as themselves
    ("/a/.b/..c/b.", "/a/.b/..c/b.", "/a/.b/..c/b.", ""),          # dots inside a segment are data
    ("/users/", "/users/", "/users/", ""),                         # a trailing slash is another resource
    ("/", "/", "/", ""),
    ("http://example.com:80/users/1?b=1", "/users/1", "/users/1", "b=1"),  # absolute-form
    ("http://example.com", "/", "/", ""),
    ("/users/1?", "/users/1", "/users/1", ""),
    ("/x?b=2&a=1", "/x", "/x", "a=1&b=2"),                         # sorted by name...
    ("/x?a=2&b=0&a=1", "/x", "/x", "a=2&a=1&b=0"),                  # ...a repeated name keeps its order
    ("/x?q=a+b&r=a%20b&s=a%2Bb", "/x", "/x", "q=a%20b&r=a%20b&s=a%2Bb"),  # + is a space, %2B a plus
    ("/x?a;b=1;2", "/x", "/x", "a%3Bb=1%3B2"),                     # ; is data, not a separator
    ("/x?a=%26&b=%3d", "/x", "/x", "a=%26&b=%3D"),
    ("/x?flag&&b=&", "/x", "/x", "b=&flag="),                       # empty pairs dropped, = added
    ("/x?%6Cogin=%7e", "/x", "/x", "login=~"),
    ("/x?a=%FF&b=%ed%a0%80", "/x", "/x", "a=%FF&b=%ED%A0%80"),      # not UTF-8: kept as bytes
    ("/x?a=%22'()", "/x", "/x", "a=%22%27%28%29"),
]


@pytest.mark.parametrize("target, path, wire, query", ACCEPTED)
def test_accepted_targets_have_one_spelling(target, path, wire, query):
    assert canonical_target(target) == (path, wire, query)
    assert canonical_target(wire + ("?" + query if query else "")) == (path, wire, query)  # a fixed point


REFUSED_PATHS = [
    "/users%2f951", "/users%2F951", "/users/1%2F..%2F2",           # encoded slash
    "/a\\b", "/a%5cb", "/a%5C",                                    # backslash
    "/a/./b", "/a/../b", "/a/.", "/a/..", "/a/%2e", "/a/%2E%2e/b", "/.%2E/x", "/../users/1",  # dot segments
    "//users/1", "/users//1", "/users/1//",                        # empty segments
    "/a%00", "/a%0a", "/a%7F", "/a%C2%85", "/a%E2%80%AE",          # control and unprintable characters
    "/a%", "/a%4", "/a%zz", "/a%%31",                              # malformed escapes
    "/a%e9", "/a%C0%AF", "/a%ED%A0%80", "/a%FF",                   # not UTF-8 (lone, overlong, surrogate)
    "/a#frag", "*", "users/1", "ftp//x/y",                         # a fragment; not a path
    "/a\x01", "/\u00e9",                                           # raw bytes the parser should have refused
]


@pytest.mark.parametrize("target", REFUSED_PATHS)
def test_ambiguous_paths_are_refused(target):
    with pytest.raises(BadPath) as info:
        canonical_target(target)
    assert info.value.status == 400 and info.value.code == "bad_path"


@pytest.mark.parametrize("target", ["/x?a=%", "/x?a=%4", "/x?a=%zz", "/x?a=1#f", "/x?a=\x01", "/x?a=\u00e9"])
def test_ambiguous_queries_are_refused(target):
    with pytest.raises(BadQuery) as info:
        canonical_target(target)
    assert info.value.status == 400 and info.value.code == "bad_query"


# -- properties ---------------------------------------------------------------------------------------------

SEGMENT_TEXT = st.text(st.characters(codec="utf-8", categories=("L", "N", "P", "S", "Zs"),
                                     exclude_characters="/\\"), min_size=1, max_size=8)
RAW_TOKENS = st.sampled_from(["/", "\\", ".", "..", "%", "%2f", "%2F", "%2e", "%5c", "%41", "%7e", "%c3%a9",
                              "%e9", "%00", "%zz", "a", "Z", "1", "~", "-", "+", ";", "=", "&", "?", "#",
                              '"'])
RAW_QUERY = st.lists(st.sampled_from(["a", "b", "=", "&", "+", "%20", "%2B", "%26", "%3D", "%FF", ";", "~",
                                      "%7E", "%e2%82%ac", "1"]), max_size=12).map("".join)


@settings(max_examples=300, derandomize=True, database=None)
@given(st.lists(SEGMENT_TEXT.filter(lambda s: s not in (".", "..")), min_size=1, max_size=4))
def test_an_aiohttp_service_reads_back_the_path_the_router_matched(segments):
    decoded = "/" + "/".join(segments)
    if not decoded.isprintable():
        return
    path, wire, _ = canonical_target(URL.build(path=decoded).raw_path)
    assert path == decoded
    assert URL.build(path=wire, encoded=True).path == decoded  # what the service's request.path will be


@settings(max_examples=500, derandomize=True, database=None)
@given(st.lists(RAW_TOKENS, max_size=12).map(lambda t: "/" + "".join(t)))
def test_every_raw_path_is_refused_or_canonical(raw):
    try:
        path, wire = canonical_path(raw)
    except BadPath:
        return
    assert canonical_path(wire) == (path, wire)
    assert "//" not in wire and "\\" not in wire and "%2F" not in wire.upper()
    assert all(s not in (".", "..") for s in path.split("/"))
    assert URL.build(path=wire, encoded=True).path == path


@settings(max_examples=500, derandomize=True, database=None)
@given(RAW_QUERY)
def test_an_aiohttp_service_reads_the_same_parameters_from_the_canonical_query(raw):
    query = canonical_query(raw)
    assert canonical_query(query) == query

    def parameters(q: str) -> dict[str, list[str]]:
        seen: dict[str, list[str]] = {}
        for name, value in URL.build(path="/", query_string=q, encoded=True).query.items():
            seen.setdefault(name, []).append(value)
        return seen
    assert parameters(query) == parameters(raw)
