"""The history checker on hand-made histories: each rule passes a clean history and fails its violation."""
from __future__ import annotations

import pytest

from loadtest.reliability.checker import RULES, Row, check, counts, older_than_db
from loadtest.reliability.history import DB_CLIENT, OBSERVE, READ, WRITE, Op


def w(client, start, end, version, sent, key="user:1", status=200):
    return Op(client, WRITE, key, start, end, status, version, sent=sent, target=f"/users/{key[5:]}")


def r(client, start, end, version, seen, key="user:1", status=200):
    return Op(client, READ, key, start, end, status, version, seen=seen, target=f"/users/{key[5:]}")


def obs(start, end, version, key="user:1"):
    return Op(DB_CLIENT, OBSERVE, key, start, end, 200, version)


# Two clients on one user: a writes v2, b reads it, a writes v3 while b reads (overlap: either is fine).
CLEAN = [
    r("a", 0.0, 0.1, 1, "t0"), r("b", 0.0, 0.1, 1, "t0"),
    w("a", 0.2, 0.3, 2, "a-1"), obs(0.25, 0.26, 2),
    r("a", 0.4, 0.5, 2, "a-1"), r("b", 0.4, 0.5, 2, "a-1"),
    w("a", 0.6, 0.9, 3, "a-2"), r("b", 0.7, 0.8, 2, "a-1"),   # overlapping the write: the old one is fine
    r("b", 1.0, 1.1, 3, "a-2"),
    w("b", 1.2, 1.3, 0, "lost-answer", status=0),              # no answer: no claim either way
    r("a", 1.5, 1.6, 503, "", status=503),                      # not a 2xx: no version claimed
]
ROWS = {"user:1": Row(3, "a-2")}
FINAL = [Op("final", READ, "user:1", 2.0, 2.1, 200, 3, seen="a-2", target="/users/1", cache="hit")]


def test_a_clean_history_passes_every_rule():
    found = check(CLEAN, ROWS, FINAL)
    assert counts(found) == {rule: 0 for rule in RULES}


def test_an_unanswered_write_that_committed_is_not_lost():
    assert counts(check(CLEAN, {"user:1": Row(4, "lost-answer")}, [
        Op("final", READ, "user:1", 2.0, 2.1, 200, 4, target="/users/1")]))["lost"] == 0


@pytest.mark.parametrize("rows, why", [
    ({"user:1": Row(2, "a-1")}, "the database is at v2"),
    ({"user:1": Row(3, "someone else")}, "sent 'a-2'"),
    ({}, "no row"),
])
def test_lost_when_the_database_lacks_an_acknowledged_write(rows, why):
    found = check(CLEAN, rows)["lost"]
    assert len(found) == 1 and why in found[0].detail


def test_lost_when_two_acknowledged_writes_claim_one_version():
    found = check(CLEAN + [w("b", 1.4, 1.45, 3, "b-1")], ROWS, FINAL)["lost"]
    assert len(found) == 1 and "two acknowledged writes got version 3" in found[0].detail


def test_read_your_writes_fails_on_an_older_read_after_the_own_write():
    history = CLEAN + [r("a", 1.0, 1.1, 2, "a-1")]   # a's own v3 returned at 0.9
    found = check(history, ROWS, FINAL)
    assert [v.client for v in found["read-your-writes"]] == ["a"]
    assert "v2" in found["read-your-writes"][0].detail and "v3" in found["read-your-writes"][0].detail


def test_monotonic_fails_when_a_client_goes_back():
    history = CLEAN + [r("b", 1.2, 1.3, 2, "a-1")]   # b saw v3 at 1.0-1.1
    found = check(history, ROWS, FINAL)
    assert [v.client for v in found["monotonic"]] == ["b"]


def test_stale_fails_on_a_version_older_than_an_acknowledged_write():
    history = CLEAN + [r("c", 1.0, 1.1, 2, "a-1")]   # c never read before, but a's v3 was acknowledged
    found = check(history, ROWS, FINAL)
    assert [v.client for v in found["stale"]] == ["c"] and found["monotonic"] == []
    assert found["read-your-writes"] == []


def test_older_than_db_fails_on_a_version_the_database_had_passed():
    # The row reached v5 through a write nobody saw answered; the observer saw it at 2.1.
    history = CLEAN + [obs(2.0, 2.1, 5), r("c", 2.2, 2.3, 3, "a-2")]
    found = check(history, {"user:1": Row(5, "x")})
    assert [v.client for v in found["older-than-db"]] == ["c"]
    assert found["stale"] == []   # no acknowledged write says v5


def test_older_than_db_allows_the_lag_and_no_more():
    history = CLEAN + [obs(2.0, 2.1, 5), r("c", 3.0, 3.1, 3, "a-2"), r("d", 2.5, 2.6, 3, "a-2")]
    found = check(history, {"user:1": Row(5, "x")}, lag=0.8)["older-than-db"]
    assert [v.client for v in found] == ["c"] and "0.8 s before" in found[0].detail
    assert len(older_than_db(history)) == 2   # the strict count: both


def test_a_read_overlapping_an_observation_is_not_older_than_db():
    history = CLEAN + [obs(2.0, 2.3, 5), r("c", 2.2, 2.4, 3, "a-2")]
    assert check(history, {"user:1": Row(5, "x")})["older-than-db"] == []


def test_content_fails_when_a_version_shows_another_write():
    history = CLEAN + [r("c", 1.0, 1.1, 3, "a-1")]
    found = check(history, ROWS, FINAL)
    assert [v.client for v in found["content"]] == ["c"]


@pytest.mark.parametrize("final, why", [
    (Op("final", READ, "user:1", 2.0, 2.1, 200, 2, seen="a-1", target="/users/1", cache="hit"), "v2"),
    (Op("final", READ, "user:1", 2.0, 2.1, 502, None, target="/users/1"), "502"),
    (Op("final", READ, "user:1", 2.0, 2.1, 0, None, error="connect", target="/users/1"), "connect"),
])
def test_final_fails_when_the_gateway_does_not_serve_the_database_version(final, why):
    found = check(CLEAN, ROWS, [final])["final"]
    assert len(found) == 1 and why in found[0].detail and "v3" in found[0].detail


def test_final_accepts_a_404_for_an_entity_without_a_row():
    final = Op("final", READ, "user:9", 2.0, 2.1, 404, None, target="/users/9")
    assert check(CLEAN, {**ROWS, "user:9": None}, [final])["final"] == []
