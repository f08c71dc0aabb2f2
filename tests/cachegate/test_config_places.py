"""Config mistakes refused with their place: duplicate keys, shadowed rules, environment overrides, lines."""
from __future__ import annotations

from pathlib import Path

import pytest

from cachegate.config import load_config
from cachegate.errors import ConfigError
from strategies.registry import REGISTRY

REPO = Path(__file__).resolve().parents[2]
SHIPPED = (REPO / "config.yaml").read_text()


def line_of(text: str, needle: str, start: int = 0) -> int:
    """1-based number of the first line (from line `start`) that contains `needle`."""
    lines = text.splitlines()
    return next(i + 1 for i in range(start, len(lines)) if needle in lines[i])


def refused_file(tmp_path: Path, text: str, env: dict[str, str] | None = None) -> str:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path, env=env or {}, strategies=REGISTRY)
    return str(info.value)


def test_a_second_section_of_one_name_is_refused_with_both_lines(tmp_path):
    """Regression: a second `cache:` section silently replaced the first."""
    text = SHIPPED + "\ncache:\n  enabled: false\n"
    first, second = line_of(text, "cache:"), len(text.splitlines()) - 1
    message = refused_file(tmp_path, text)
    assert message.startswith(f"config.yaml:{second}: duplicate key 'cache'")
    assert f"first given at line {first}" in message


def test_a_key_given_twice_inside_a_rule_is_refused_with_both_lines(tmp_path):
    needle = '{methods: [GET], path: "/paths/{id:int}"'
    at = line_of(SHIPPED, needle)
    lines = SHIPPED.splitlines()
    lines[at] = lines[at].replace("ttl: 10m", "ttl: 10m,\n     ttl: 1s")  # the rule's second line
    text = "\n".join(lines) + "\n"
    message = refused_file(tmp_path, text)
    assert message.startswith(f"config.yaml:{at + 2}: duplicate key 'ttl'; it is first given at line {at + 1}")


def test_a_duplicate_key_inside_a_nested_section_names_both_lines(tmp_path):
    text = SHIPPED.replace("  jitter: 10%\n", "  jitter: 10%\n  jitter: 20%\n", 1)
    message = refused_file(tmp_path, text)
    assert message == (f"config.yaml:{line_of(text, 'jitter: 20%')}: duplicate key 'jitter'; it is first given "
                       f"at line {line_of(text, 'jitter: 10%')}, and a second one would silently replace it")


def test_a_semantic_error_carries_the_line_of_the_offending_node(tmp_path):
    at = line_of(SHIPPED, '{methods: [GET], path: "/users/{id:int}"')
    text = SHIPPED.replace('key: "user:{id}", ttl: 5m', 'key: "user:{id}", ttl: 5m, scope: caller', 1)
    message = refused_file(tmp_path, text)
    assert message.startswith(f"config.yaml:{at + 1}: routes[4].key: scope: caller needs {{caller}} in the key")
    text = SHIPPED.replace("    port: 8889\n", "    port: 8888\n", 1)
    assert refused_file(tmp_path, text).startswith(
        f"config.yaml:{line_of(text, 'port: 8888', line_of(text, 'admin:'))}: proxy.admin.port: must differ")
    text = SHIPPED.replace("  timeout: 250ms", "  timeout: soon", 1)
    assert refused_file(tmp_path, text) == (f'config.yaml:{line_of(text, "timeout: soon")}: redis.timeout: '
                                            'expected a duration like 30s, got "soon"')


def test_an_error_in_an_environment_override_names_the_variable(tmp_path):
    message = refused_file(tmp_path, SHIPPED, env={"CACHEGATE__REDIS__TIMEOUT": "soon"})
    assert message == ('environment CACHEGATE__REDIS__TIMEOUT: redis.timeout: expected a duration like 30s, '
                       'got "soon"')
    message = refused_file(tmp_path, SHIPPED, env={"CACHEGATE__PROXY__ADMIN__PORT": "8888"})
    assert message.startswith("environment CACHEGATE__PROXY__ADMIN__PORT: proxy.admin.port: must differ")
    message = refused_file(tmp_path, SHIPPED, env={"CACHEGATE__REDIS__TIMOUT": "1s"})
    assert message.startswith("environment CACHEGATE__REDIS__TIMOUT: redis.timout: unknown key")
    message = refused_file(tmp_path, SHIPPED, env={"CACHEGATE__PROXY__PORT__X": "1"})
    assert message.startswith("environment CACHEGATE__PROXY__PORT__X: proxy.port is not a section")
    # The file's own values still point at the file.
    assert refused_file(tmp_path, SHIPPED.replace("  timeout: 250ms", "  timeout: soon", 1),
                        env={"CACHEGATE__PROXY__PORT": "9999"}).startswith("config.yaml:")


SHADOWING = '  - {methods: [GET], path: "/users/{id}", upstream: users, strategy: passthrough}\n'


def test_a_rule_shadowed_by_an_earlier_str_parameter_is_refused_naming_both(tmp_path):
    me = line_of(SHIPPED, "path: /users/me")
    text = SHIPPED.replace("  - {methods: [GET], path: /users/me,", SHADOWING + "  - {methods: [GET], path: /users/me,")
    message = refused_file(tmp_path, text)
    assert message.startswith(f"config.yaml:{me + 1}: routes[3] (GET /users/me) can never match: "
                              f"routes[2] (GET /users/{{id}}, config.yaml:{me}) comes first")


def test_an_earlier_int_parameter_does_not_shadow_a_literal_segment(tmp_path):
    lines = SHIPPED.splitlines(keepends=True)
    me = line_of(SHIPPED, "path: /users/me") - 1
    by_id = line_of(SHIPPED, 'path: "/users/{id:int}", upstream: users, strategy: read-through') - 1
    rule_me, rule_id = lines[me:me + 2], lines[by_id:by_id + 2]
    moved = lines[:me] + rule_id + lines[me + 2:by_id] + rule_me + lines[by_id + 2:]
    path = tmp_path / "config.yaml"
    path.write_text("".join(moved))
    config = load_config(path, env={}, strategies=REGISTRY)  # /users/{id:int} first, /users/me still served
    assert [r.path for r in config.routes].index("/users/{id:int}") < [r.path for r in config.routes].index(
        "/users/me")


@pytest.mark.parametrize("earlier, later, shadowed", [
    ("/trips/{id:int}", "/trips/12", True),          # a literal of digits is an int
    ("/trips/{id:int}", "/trips/{x}", False),        # a str parameter takes more than digits
    ("/trips/{id}", "/trips/{x:int}", True),
    ("/trips/{id}", "/trips/", False),               # a trailing slash is an empty segment
    ("/trips/{id}", "/trips/{x}/members", False),    # another number of segments
    ("/trips/{a}/{b}", "/trips/7/members", True),
])
def test_which_templates_shadow_which(tmp_path, earlier, later, shadowed):
    rules = (f'  - {{methods: [DELETE], path: "{earlier}", upstream: trips, strategy: passthrough}}\n'
             f'  - {{methods: [DELETE, OPTIONS], path: "{later}", upstream: trips, strategy: passthrough}}\n')
    text = SHIPPED.replace("routes:\n", "routes:\n" + rules, 1)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    if shadowed:  # one shared method is enough: DELETE of the later rule is dead config
        assert f"routes[1] (DELETE {later}) can never match: routes[0] (DELETE {earlier}" in \
            refused_file(tmp_path, text)
    else:
        load_config(path, env={}, strategies=REGISTRY)


def test_a_head_only_rule_is_refused(tmp_path):
    text = SHIPPED.replace("routes:\n", "routes:\n  - {methods: [HEAD], path: /ping, upstream: users, "
                           "strategy: passthrough}\n", 1)
    assert "routes[0].methods: HEAD without GET never matches" in refused_file(tmp_path, text)


def test_a_config_given_as_a_mapping_has_no_lines_but_the_same_messages():
    import yaml
    data = yaml.safe_load(SHIPPED)
    data["redis"]["timeout"] = "soon"
    with pytest.raises(ConfigError, match=r'^<config>: redis\.timeout: expected a duration'):
        load_config(data, env={}, base_dir=REPO)
    with pytest.raises(ConfigError, match=r'^environment CACHEGATE__REDIS__TIMEOUT: redis\.timeout'):
        load_config(yaml.safe_load(SHIPPED), env={"CACHEGATE__REDIS__TIMEOUT": "x"}, base_dir=REPO)
