"""The HTTP caching rules on their own: what may be stored, for how long, ETags, versions, Cache-Status."""
from __future__ import annotations

import pytest
from multidict import CIMultiDict

from strategies.httpcache import (cache_control, cache_status, decide, etag_matches, unconditional,
                                  version_from_etag, version_of)


def h(**headers: str) -> CIMultiDict[str]:
    return CIMultiDict({k.replace("_", "-"): v for k, v in headers.items()})


@pytest.mark.parametrize("status, headers, expected", [
    (200, h(), (60.0, "")),
    (203, h(), (60.0, "")),
    (404, h(), (10.0, "")),
    (201, h(), (0, "status-201")),
    (301, h(), (0, "status-301")),
    (500, h(), (0, "status-500")),
    (503, h(Cache_Control="max-age=60"), (0, "status-503")),
    (200, h(Cache_Control="no-store"), (0, "no-store")),
    (200, h(Cache_Control="Private"), (0, "private")),
    (200, h(Cache_Control='no-cache="Set-Cookie"'), (0, "no-cache")),
    (200, h(Cache_Control="public, max-age=5"), (5.0, "")),
    (200, h(Cache_Control="max-age=600"), (60.0, "")),
    (200, h(Cache_Control="s-maxage=7, max-age=1"), (7.0, "")),
    (200, h(Cache_Control="max-age=0"), (0, "ttl-0")),
    (200, h(Cache_Control="max-age=soon"), (0, "bad-max-age")),
    (200, h(Set_Cookie="sid=1"), (0, "set-cookie")),
    (200, h(Vary="Accept-Language"), (0, "vary")),
    (200, h(Content_Encoding="gzip"), (0, "content-encoding")),
])
def test_decide(status: int, headers: CIMultiDict[str], expected: tuple[float, str]) -> None:
    decision = decide(status, headers, ttl=60.0, negative_ttl=10.0)
    assert (decision.ttl, decision.reason) == expected
    assert decision.store == (expected[0] > 0)


def test_404_is_not_stored_without_a_negative_ttl() -> None:
    assert not decide(404, h(), ttl=60.0, negative_ttl=0.0).store


def test_cache_control_parsing() -> None:
    assert cache_control(' no-cache="a, b" , MAX-AGE=5,private') == {"no-cache": "a, b", "max-age": "5",
                                                                      "private": None}
    assert cache_control("") == {}


@pytest.mark.parametrize("etag, version", [('"7"', 7), ('W/"12"', 12), ('"abc"', 0), ("7", 0), (None, 0),
                                           ('""', 0)])
def test_version_from_etag(etag: str | None, version: int) -> None:
    assert version_from_etag(etag) == version


def test_version_of_falls_back_to_the_json_body() -> None:
    assert version_of(h(ETag='"3"'), b'{"version": 9}') == 3
    assert version_of(h(), b'{"id": 1, "version": 9}') == 9
    assert version_of(h(), b'{"version": true}') == 0
    assert version_of(h(), b'[{"version": 9}]') == 0
    assert version_of(h(), b"{not json") == 0


@pytest.mark.parametrize("if_none_match, etag, matches", [
    ('"1"', '"1"', True), ('W/"1"', '"1"', True), ('"1"', 'W/"1"', True), ('"0", "1"', '"1"', True),
    ("*", '"5"', True), ('"2"', '"1"', False), ("", '"1"', False), ('"1"', None, False),
])
def test_etag_matches_weakly(if_none_match: str, etag: str | None, matches: bool) -> None:
    assert etag_matches(if_none_match, etag) is matches


def test_unconditional_drops_validators_only() -> None:
    out = unconditional(h(If_None_Match='"1"', If_Modified_Since="x", Authorization="Bearer t", Accept="a"))
    assert dict(out) == {"Authorization": "Bearer t", "Accept": "a"}


def test_cache_status_members() -> None:
    assert cache_status(hit=True, ttl=41.9) == "cachegate; hit; ttl=41"
    assert cache_status(hit=True, ttl=-0.2, detail="stale-while-revalidate") == \
        "cachegate; hit; ttl=-1; detail=stale-while-revalidate"
    assert cache_status(fwd="miss", fwd_status=200, stored=True) == \
        "cachegate; fwd=miss; fwd-status=200; stored"
    assert cache_status(fwd="miss", collapsed=True) == "cachegate; fwd=miss; collapsed"
    assert cache_status(fwd="bypass", detail="CACHE-OFF") == "cachegate; fwd=bypass; detail=CACHE-OFF"
