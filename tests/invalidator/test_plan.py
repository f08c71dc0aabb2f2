"""The pure parts of the invalidator: GTID positions, and row changes into cache actions by the rules."""
from __future__ import annotations

from pathlib import Path

import pytest

from cachegate.config import load_config
from invalidator.changes import DELETE, INSERT, UPDATE, Actions, Change, Planner, RuleError
from invalidator.positions import Position, parse_gtid

REPO = Path(__file__).resolve().parents[2]
RULES = load_config(REPO / "config.yaml", env={}).invalidations


def user(**values) -> dict:
    return {"id": 7, "version": 3, "token_version": 1, "login": "u7", **values}


def test_positions_parse_advance_and_cover():
    position = Position.parse("0-1-15,1-1-3")
    assert str(position) == "0-1-15,1-1-3" and position.seq(0) == 15 and position.seq(9) == -1
    position.advance(parse_gtid("1-1-4"))
    assert position.covers(Position.parse("1-1-4,0-1-10")) and not position.covers(Position.parse("0-1-16"))
    assert not position.covers(Position.parse("2-1-1"))
    with pytest.raises(ValueError):
        Position.parse("0-1")


def test_positions_are_equal_by_their_transactions_only():
    assert Position.parse("0-1-15,1-1-3") == Position.parse("1-1-3,0-1-15")
    assert Position.parse("0-1-15") != Position.parse("0-1-16")
    assert Position.parse("0-1-15") != Position.parse("0-1-15,1-1-3")
    assert Position.parse("0-1-15") != "0-1-15"


def test_a_start_on_another_node_keeps_the_shared_domain_only():
    mine = Position.parse("1-1-90,101-1-4")       # read on node 1: the cluster's domain and node 1's own
    node2 = Position.parse("1-1-95,102-2-7")      # node 2 never wrote domain 101
    start, dropped = mine.within(node2)
    assert str(start) == "1-1-90,102-2-7" and [str(g) for g in dropped] == ["101-1-4"]


def test_an_update_fences_both_images_at_the_new_version_and_bumps_the_tags():
    actions = Actions()
    Planner(RULES).plan(Change("users", UPDATE, user(), user(version=4, login="new")), actions)
    assert actions.keys == {"user:7": (4, False), "user-me:7": (4, False)}
    assert actions.tags == {"user-lists"} and actions.revocations == {}


def test_a_delete_is_a_tombstone_after_the_last_version_and_revokes_every_token():
    actions = Actions()
    Planner(RULES).plan(Change("users", DELETE, user(token_version=5), None), actions)
    assert actions.keys["user:7"] == (4, True) and actions.revocations == {"7": 6}


def test_a_raised_token_version_revokes_below_the_new_one_and_a_lower_one_changes_nothing():
    actions = Actions()
    planner = Planner(RULES)
    planner.plan(Change("users", UPDATE, user(token_version=2), user(token_version=3, version=4)), actions)
    planner.plan(Change("users", UPDATE, user(token_version=3), user(token_version=3, version=5)), actions)
    assert actions.revocations == {"7": 3} and actions.keys["user:7"] == (5, False)


def test_a_batch_keeps_each_key_at_its_highest_version():
    actions = Actions()
    planner = Planner(RULES)
    for version in (5, 9, 6):
        planner.plan(Change("users", UPDATE, user(version=version - 1), user(version=version)), actions)
    planner.plan(Change("trip_members", INSERT, None, {"trip_id": 3, "user_id": 7}), actions)
    assert actions.keys["user:7"] == (9, False) and actions.keys["trip-members:3"] == (0, False)
    assert len(actions) == 4  # user:7, user-me:7, trip-members:3, tag user-lists


def test_a_rule_naming_a_missing_column_stops_at_the_first_change_of_its_table():
    with pytest.raises(RuleError, match="has no column token_version"):
        Planner(RULES).plan(Change("users", UPDATE, {"id": 1, "version": 1}, {"id": 1, "version": 2}),
                            Actions())
    Planner(RULES).plan(Change("unknown", INSERT, None, {"x": 1}), Actions())  # no rule: nothing
