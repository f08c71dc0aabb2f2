"""What counts as an expected failure in a scenario, and when the clients recovered (pure functions)."""
from __future__ import annotations

from loadtest.reliability.history import READ, Op
from loadtest.reliability.scenarios import ALL, RECOVERY_GRACE_S, select
from loadtest.reliability.summary import Window, hit_ratio, judge

SCENARIOS = {s.name: s for s in ALL}
WINDOW = Window(fault_at=3.0, healed_at=9.0, traffic_end=17.0)


def op(start, status, target="/users/5", error="", client="c00a", cache=""):
    return Op(client, READ, "user:5", start, start + 0.01, status, 1 if status == 200 else None,
              error=error, target=target, cache=cache)


def test_a_killed_backend_may_answer_502_for_its_own_routes_while_down():
    users = SCENARIOS["users-killed"]
    ops = [op(1.0, 200), op(4.0, 502, error="upstream_unavailable"), op(9.0 + RECOVERY_GRACE_S - 1, 503,
           error="database_unavailable"), op(16.0, 200)]
    verdict = judge(users, WINDOW, ops)
    assert verdict["unexpected"] == 0 and verdict["recovered"]
    assert verdict["recovered_after_s"] == round(9.0 + RECOVERY_GRACE_S - 1 + 0.01 - 3.0, 3)


def test_unexpected_before_the_fault_after_the_grace_on_other_routes_or_without_json():
    users = SCENARIOS["users-killed"]
    ops = [op(1.0, 502, error="upstream_unavailable"),                      # before the fault
           op(9.0 + RECOVERY_GRACE_S + 0.5, 502, error="upstream_unavailable"),   # after the grace
           op(4.0, 502, target="/paths/1", error="upstream_unavailable"),   # a route that does not need it
           op(4.0, 502, error="not-json"),                                  # a 5xx without the JSON error
           op(4.0, 500, error="internal_error"),                            # never allowed
           op(4.0, 0, error="connect")]                                     # the gateway itself is up
    assert judge(users, WINDOW, ops)["unexpected"] == 6


def test_nothing_but_2xx_is_allowed_while_redis_is_down():
    redis = SCENARIOS["redis-killed"]
    verdict = judge(redis, WINDOW, [op(4.0, 503, error="database_unavailable"), op(5.0, 200)])
    assert verdict["unexpected"] == 1 and verdict["unexpected_by_reason"] == {"503 on /users/{id}": 1}


def test_a_killed_proxy_means_no_answer_not_an_error_status():
    proxy = SCENARIOS["proxy-killed"]
    verdict = judge(proxy, WINDOW, [op(4.0, 0, error="connect"), op(4.1, 502, error="upstream_unavailable")])
    assert verdict["unexpected"] == 1 and verdict["no_answer"] == 1


def test_failures_until_the_end_mean_never_recovered():
    users = SCENARIOS["users-killed"]
    verdict = judge(users, WINDOW, [op(4.0, 502, error="x"), op(16.5, 502, error="x")])
    assert not verdict["recovered"]


def test_no_failure_recovers_at_once_and_statuses_are_counted_by_client_class():
    verdict = judge(SCENARIOS["redis-paused"], WINDOW, [op(1.0, 200), op(2.0, 200, client="f00")])
    assert verdict["recovered"] and verdict["recovered_after_s"] is None
    assert verdict["by_client"] == {"keep-alive": {"200": 1}, "new connection per request": {"200": 1}}


def test_hit_ratio_counts_2xx_reads_of_the_chosen_clients_in_the_window():
    ops = [op(1.0, 200, cache="hit"), op(2.0, 200, cache="miss"), op(4.0, 200, cache="stale/x"),
           op(4.5, 502), op(5.0, 200, cache="hit", client="s00")]
    assert hit_ratio(ops, end=3.0) == 0.5
    assert hit_ratio(ops, 3.0, 9.0) == 1.0
    assert hit_ratio(ops, clients="s") == 1.0


def test_quick_mode_is_a_subset_and_unknown_names_are_refused():
    quick = [s.name for s in select(True)]
    assert set(quick) < set(SCENARIOS) and "proxy-killed" in quick
    assert [s.name for s in select(False, ["cold-burst"])] == ["cold-burst"]
    try:
        select(False, ["nope"])
    except ValueError as exc:
        assert "nope" in str(exc) and "cold-burst" in str(exc)
    else:
        raise AssertionError("an unknown scenario was accepted")
