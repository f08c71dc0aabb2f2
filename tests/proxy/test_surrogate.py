"""Cache tags an upstream names (Cache-Tag, Surrogate-Key): either separator; invalid ones, excess dropped."""
from __future__ import annotations

from multidict import CIMultiDict

from proxy.records import ENTRY, FORMAT, PREFIX, decode, encode_tail, make_entry, read_record
from proxy.surrogate import MAX_TAGS, upstream_tags
from proxy.upstream import RESPONSE_DROP


def test_both_headers_and_both_separators_are_read_in_order_without_repeats():
    headers = CIMultiDict([("Cache-Tag", "user-1, user-lists"), ("Surrogate-Key", "user-1 trip:7  a.b_c"),
                           ("Cache-Tag", "last")])
    assert upstream_tags(headers) == (("user-1", "user-lists", "last", "trip:7", "a.b_c"), 0)


def test_invalid_tags_and_those_past_the_limit_are_dropped_and_counted():
    names = " ".join(f"t{n}" for n in range(MAX_TAGS + 3))
    tags, dropped = upstream_tags(CIMultiDict([("Surrogate-Key", names), ("Cache-Tag", "-bad, ok, x*y")]))
    assert len(tags) == MAX_TAGS and dropped == 3 + 3  # three past the limit; -bad, ok (past it), x*y
    assert upstream_tags(CIMultiDict([("Cache-Tag", "a" * 129)])) == ((), 1)


def test_the_gateway_keeps_the_headers_to_itself():
    assert {"cache-tag", "surrogate-key"} <= RESPONSE_DROP


def test_a_record_keeps_its_tags_for_explain_and_the_hit_path_skips_them():
    entry = make_entry(200, [("ETag", '"3"')], b'{"id": 1}', version=3, now=100.0, ttl=60, grace=5,
                       tags=("user-lists", "user-1"))
    raw = PREFIX.pack(FORMAT, ENTRY, 7, 3, b"t" * 8) + encode_tail(entry)
    served, token, kind = decode(raw, 7)
    assert served is not None and served.body == b'{"id": 1}' and served.headers == (("ETag", '"3"'),)
    assert served.tags == () and token == b"t" * 8 and kind == ENTRY
    record = read_record(raw)
    assert record is not None and record.kind == "entry" and record.entry is not None
    assert record.entry.tags == ("user-lists", "user-1") and record.entry.body == b'{"id": 1}'
    assert (record.epoch, record.floor, record.size) == (7, 3, len(raw))
    old = PREFIX.pack(1, ENTRY, 7, 3, b"t" * 8) + encode_tail(entry)  # format 1: never read as an entry
    assert decode(old, 7)[0] is None and read_record(old).kind == "other-format"
