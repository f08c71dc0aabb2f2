"""An entry's age (the `Age` header): whole seconds since it was stored, never negative."""
from __future__ import annotations

from proxy.records import make_entry


def test_an_entrys_age_is_the_whole_seconds_since_it_was_stored() -> None:
    entry = make_entry(200, [], b"{}", version=1, now=1_700_000_000.25, ttl=60, grace=300)
    assert entry.age(1_700_000_000.25) == 0
    assert entry.age(1_700_000_030.9) == 30
    assert entry.age(1_699_999_990.0) == 0  # a clock that stepped back never makes it negative
