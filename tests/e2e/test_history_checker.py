"""The history checker of the concurrency test (tests/support/history.py) on hand-made histories."""
from __future__ import annotations

from tests.support.history import READ, WRITE, Op, check, final, monotonic, read_your_writes


def w(client: str, start: float, end: float, version: int | None, key: str = "trip:1") -> Op:
    return Op(client, WRITE, key, start, end, version, "PUT")


def r(client: str, start: float, end: float, version: int | None, key: str = "trip:1") -> Op:
    return Op(client, READ, key, start, end, version, "GET")


def rules(found) -> list[tuple[str, str]]:
    return [(v.rule, v.key) for v in found]


def test_a_clean_concurrent_history_passes():
    ops = [
        w("a", 0.0, 1.0, 2), w("b", 0.5, 2.0, 3),
        r("x", 0.2, 0.4, 1),          # before any ack
        r("y", 0.6, 1.5, 1),          # overlaps the ack of v2: promises nothing
        r("x", 1.1, 1.2, 2),          # after v2's ack
        r("y", 1.6, 1.7, 3),          # v3 is committed before its ack: may be seen early
        r("x", 1.8, 2.5, 3), r("z", 1.3, 3.0, 2),   # overlapping reads may disagree
        r("x", 2.1, 2.2, 3, key="trip:2"), w("c", 2.0, 2.05, None, key="trip:2"),  # a failed write
    ]
    assert check(ops) == []


def test_a_read_after_the_clients_own_ack_that_shows_older_fails():
    found = read_your_writes([w("a", 0.0, 1.0, 5), r("a", 1.5, 1.6, 4)])
    assert rules(found) == [("read-your-writes", "trip:1")] and "the same client" in found[0].detail


def test_a_read_after_anothers_ack_that_shows_older_fails():
    found = read_your_writes([w("a", 0.0, 1.0, 5), w("b", 0.1, 0.2, 4), r("c", 1.5, 1.6, 4)])
    assert rules(found) == [("read-your-writes", "trip:1")] and "a PUT" in found[0].detail


def test_writes_of_other_keys_and_unacknowledged_writes_constrain_nothing():
    ops = [w("a", 0.0, 1.0, 9, key="trip:2"), w("b", 0.0, 1.0, None), r("c", 2.0, 2.1, 1)]
    assert read_your_writes(ops) == []


def test_a_reader_going_back_fails():
    found = monotonic([r("x", 0.0, 0.1, 3), r("x", 0.2, 0.3, 2)])
    assert rules(found) == [("monotonic", "trip:1")] and "the same client" in found[0].detail


def test_a_read_older_than_one_that_ended_before_it_started_fails_across_readers():
    found = monotonic([r("x", 0.0, 0.1, 3), r("y", 0.2, 0.3, 2)])
    assert rules(found) == [("monotonic", "trip:1")] and "x GET" in found[0].detail
    assert monotonic([r("x", 0.0, 0.25, 3), r("y", 0.2, 0.3, 2)]) == []   # they overlap


def test_the_highest_earlier_version_is_the_floor_not_the_latest():
    ops = [w("a", 0.0, 0.1, 7), w("b", 0.0, 0.2, 6), r("c", 0.3, 0.4, 6)]
    assert rules(read_your_writes(ops)) == [("read-your-writes", "trip:1")]


def test_final_reads_must_show_the_databases_version():
    database = {"trip:1": 4, "user:2": 9}
    assert final([r("end", 5.0, 5.1, 4), r("end", 5.0, 5.1, 9, key="user:2")], database) == []
    found = final([r("end", 5.0, 5.1, 3), r("end", 5.0, 5.1, None, key="user:2")], database)
    assert rules(found) == [("final", "trip:1"), ("final", "user:2")]
    assert rules(final([r("end", 5.0, 5.1, 4)], database)) == [("final", "user:2")]  # never read


def test_check_runs_every_rule_over_the_history_and_the_final_reads():
    ops = [w("a", 0.0, 1.0, 5)]
    finals = [r("end", 2.0, 2.1, 4)]
    assert sorted(v.rule for v in check(ops, finals, {"trip:1": 5})) == ["final", "read-your-writes"]
    assert check(ops, [r("end", 2.0, 2.1, 5)], {"trip:1": 5}) == []
