"""What an entry keeps of an upstream's headers: the stored ones, a repeated one once, its values joined."""
from __future__ import annotations

from multidict import CIMultiDict, CIMultiDictProxy

from strategies.httpcache import stored_headers


def test_a_repeated_header_is_kept_once_with_every_value() -> None:
    headers = CIMultiDictProxy(CIMultiDict([("Cache-Control", "max-age=60"), ("ETag", '"3"'),
                                            ("Cache-Control", "public"), ("Set-Cookie", "a=1")]))
    assert stored_headers(headers) == [("ETag", '"3"'), ("Cache-Control", "max-age=60, public")]


def test_a_plain_mapping_gives_its_one_value() -> None:
    assert stored_headers({"Content-Type": "application/json", "X-Other": "1"}) == [
        ("Content-Type", "application/json")]
