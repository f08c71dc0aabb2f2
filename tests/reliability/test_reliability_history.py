"""The history's own plumbing: Cache-Status in short, and the raw file a run commits (gzipped CSV)."""
from __future__ import annotations

import pytest

from loadtest.reliability.history import OBSERVE, READ, WRITE, Op, read_csv, short_cache_status, write_csv


@pytest.mark.parametrize("value, short", [
    ("cachegate; hit; ttl=275", "hit"),
    ("cachegate; fwd=miss; fwd-status=200; stored", "miss"),
    ("cachegate; fwd=miss; fwd-status=200; detail=fenced", "miss/fenced"),
    ("cachegate; fwd=bypass; detail=CACHE-UNAVAILABLE", "bypass/CACHE-UNAVAILABLE"),
    ("cachegate; stale; detail=stale-if-error", "stale/stale-if-error"),
    ("", ""), (None, ""),
])
def test_cache_status_in_short(value, short):
    assert short_cache_status(value) == short


def test_a_history_survives_its_raw_file(tmp_path):
    ops = [Op("c00a", WRITE, "user:1", 0.1234567, 0.2, 200, 2, sent="c00a-1", seen="c00a-1", cache="method",
              target="/users/1"),
           Op("c00b", READ, "user:1", 0.3, 0.4, 0, None, error="connect", target="/users/me"),
           Op("db", OBSERVE, "user:1", 0.5, 0.6, 200, 2),
           Op("c00c", READ, "", 0.7, 0.8, 502, None, error="not-json", target="/users/search?last_name=a,b")]
    path = tmp_path / "raw" / "x.history.csv.gz"
    assert write_csv(ops, path) == 4
    back = list(read_csv(path))
    assert back[1:] == ops[1:] and back[0] == Op(**{**vars(ops[0]), "start": 0.123457})
    first = path.read_bytes()
    write_csv(ops, path)
    assert path.read_bytes() == first   # the same history, the same bytes
