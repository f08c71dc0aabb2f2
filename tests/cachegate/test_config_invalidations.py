"""The invalidator's config: its rules checked against the routes (keys read, tags carried), its section's
bounds; and the pure parts the rules rely on: row templates and key shapes."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from cachegate.cli import describe
from cachegate.config import load_config
from cachegate.errors import ConfigError
from cachegate.invalidations import affected_routes
from cachegate.templates import compile_key_template, compile_row_template, key_shape
from strategies.registry import REGISTRY

REPO = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((REPO / "config.yaml").read_text())


def with_rules(rules: list | None = None, **invalidator) -> dict:
    data = copy.deepcopy(SHIPPED)
    if rules is not None:
        data["invalidations"] = rules
    data["invalidator"].update(invalidator)
    return data


def refused(data: dict) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(data, env={}, base_dir=REPO, strategies=REGISTRY)
    return str(info.value)


def test_the_shipped_rules_load_and_cover_the_read_routes_of_their_entities():
    config = load_config(REPO / "config.yaml", env={}, strategies=REGISTRY)
    users = next(r for r in config.invalidations if r.table == "users")
    assert users.keys == ("user:{id}", "user-me:{id}") and users.tags == ("user-lists",)
    assert users.revokes is not None
    assert (users.revokes.user, users.revokes.version) == ("id", "token_version")
    assert next(r for r in config.invalidations if r.table == "trip_members").version is None
    covered = {config.routes[i].path for i in affected_routes(config.routes, config.invalidations)}
    assert {"/users/{id:int}", "/users/me", "/users/search", "/trips/{id:int}/members"} <= covered
    assert not covered & {"/users/{id:int}/x"}
    assert "4 invalidation rules (invalidator on)" in describe(config)


def test_a_key_no_route_reads_is_refused_with_its_line():
    why = refused(with_rules([{"table": "users", "keys": ["person:{id}"]}]))
    assert 'no route reads the key "person:{id}"' in why and "invalidations[0].keys" in why


def test_a_key_only_a_write_rule_names_is_refused():
    # The write rule PUT /trips/{id} has the key trip:{id}, but so has the GET: that one reads it. A key of
    # the POST members rule (invalidates only) is no read key.
    why = refused(with_rules([{"table": "trips", "keys": ["trip-owner:{owner_id}"]}]))
    assert "no route reads the key" in why


def test_a_plain_tag_no_route_carries_is_refused_and_a_templated_one_is_taken():
    why = refused(with_rules([{"table": "users", "tags": ["people"]}]))
    assert 'no route carries the tag "people"' in why and "user-lists" in why
    config = load_config(with_rules([{"table": "users", "tags": ["user-{id}"]}]), env={}, base_dir=REPO)
    assert config.invalidations[0].tag_renderers[0]({"id": 7}) == "user-7"


@pytest.mark.parametrize("rule, words", [
    ({"table": "users"}, "would invalidate nothing"),
    ({"table": "users;drop", "keys": ["user:{id}"]}, "expected a table name"),
    ({"table": "users", "keys": ["user:{query}x{"]}, "unbalanced braces"),
    ({"table": "users", "keys": ["user:{Id}"]}, "expected a column name"),
    ({"table": "users", "keys": ["user:{id}"], "version": "v-1"}, "a column name or none"),
    ({"table": "users", "keys": ["user:{id}"], "color": "red"}, "unknown key"),
    ({"table": "users", "keys": ["user:{id}"], "revoke_tokens": {"user": "id"}}, "is required"),
])
def test_a_bad_rule_is_refused_with_the_reason(rule, words):
    assert words in refused(with_rules([rule]))


def test_two_rules_for_one_table_are_refused():
    why = refused(with_rules([{"table": "users", "keys": ["user:{id}"]},
                              {"table": "users", "keys": ["user-me:{id}"]}]))
    assert "has a rule already" in why


def test_the_invalidator_section_is_checked():
    assert "must exceed 2 x probe_interval" in refused(with_rules(None, lag_bound="100ms"))
    assert "must differ from the proxy's ports" in refused(with_rules(None, port=8888))
    assert "expected at least" in refused(with_rules(None, heartbeat="1ms"))


def test_the_password_comes_from_the_environment_first(tmp_path):
    config = load_config(with_rules(None), env={"CACHEGATE_CDC_PASSWORD": "from-env"}, base_dir=tmp_path)
    assert config.invalidator.password() == "from-env"
    missing = load_config(with_rules(None, password_file=str(tmp_path / "none")), env={}, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="invalidator.password_file"):
        missing.invalidator.password()


def test_a_row_renders_the_key_its_route_renders():
    route, _ = compile_key_template("user:{id}", ["id"])
    row, columns = compile_row_template("user:{id}")
    assert columns == ("id",)
    assert row({"id": 42}) == route({"id": "42"}, "", None) == "user:42"
    assert row({"id": "a b"}) == route({"id": "a b"}, "", None)  # quoted alike: no forged separator
    with pytest.raises(KeyError):
        row({"other": 1})
    assert key_shape("user-me:{caller}") == key_shape("user-me:{id}") != key_shape("user:{id}")


def test_with_the_invalidator_off_its_rules_are_checked_alone():
    data = with_rules([{"table": "users", "keys": ["person:{id}"], "tags": ["people"]}], enabled=False)
    config = load_config(data, env={}, base_dir=REPO, strategies=REGISTRY)
    assert config.invalidations[0].keys == ("person:{id}",)
    assert "expected a table name" in refused(with_rules([{"table": "a b", "keys": ["x"]}], enabled=False))
