"""config.yaml loading: the shipped file loads, and each bad input is refused with its place and reason."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from cachegate.cli import describe
from cachegate.config import load_config, settings
from cachegate.errors import ConfigError
from cachegate.values import parse_duration, parse_size
from strategies.registry import REGISTRY

REPO = Path(__file__).resolve().parents[2]
SHIPPED = yaml.safe_load((REPO / "config.yaml").read_text())


def shipped() -> dict:
    return copy.deepcopy(SHIPPED)


def refused(data: dict, env: dict | None = None) -> str:
    """Why the proxy (which hands config validation the strategy registry) refuses `data`."""
    with pytest.raises(ConfigError) as info:
        load_config(data, env=env or {}, base_dir=REPO, strategies=REGISTRY)
    return str(info.value)


def test_shipped_config_loads_with_every_route():
    config = load_config(REPO / "config.yaml", env={}, strategies=REGISTRY)
    assert len(config.routes) == len(SHIPPED["routes"])
    assert config.redis.port == 6390 and config.mariadb.port == 3316
    assert config.cache.jitter == pytest.approx(0.1)
    assert config.stack.data_dir == REPO / ".stack"
    users = next(r for r in config.routes if r.path == "/users/{id:int}" and r.strategy == "read-through")
    assert users.key == "user:{id}" and users.ttl == 300.0 and users.negative_ttl == 10.0



def test_the_write_fence_outlasts_the_upstream_call_and_two_redis_calls():
    config = load_config(REPO / "config.yaml", env={}, strategies=REGISTRY)
    assert config.cache.write_fence == pytest.approx(5.0 + 2 * 0.25 + 1.0)
    data = shipped()
    data["proxy"]["upstream_timeout"], data["redis"]["timeout"] = "2s", "50ms"
    assert load_config(data, env={}, base_dir=REPO).cache.write_fence == pytest.approx(2.0 + 0.1 + 1.0)

def test_check_config_table_names_every_route():
    config = load_config(REPO / "config.yaml", env={}, strategies=REGISTRY)
    table = describe(config)
    for route in SHIPPED["routes"]:
        assert route["path"] in table


@pytest.mark.parametrize("text, seconds", [("50ms", 0.05), ("30s", 30), ("5m", 300), ("1h", 3600), (2, 2.0)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["soon", "10 secs", "-1s", True, "", None])
def test_bad_durations(text):
    with pytest.raises((ValueError, TypeError)):
        parse_duration(text)


def test_sizes():
    assert parse_size("1MiB") == 1024 * 1024 and parse_size("512KiB") == 512 * 1024 and parse_size(10) == 10


def test_bad_duration_names_route_and_value():
    data = shipped()
    data["routes"][3]["ttl"] = "soon"
    assert refused(data) == '<config>: routes[3].ttl: expected a duration like 30s, got "soon"'


def test_file_errors_name_the_file(tmp_path):
    data = shipped()
    data["routes"][4]["ttl"] = "10 secs"
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    line = path.read_text().splitlines().index("  ttl: 10 secs") + 1
    expected = rf'^config\.yaml:{line}: routes\[4\]\.ttl: expected a duration like 30s, got "10 secs"$'
    with pytest.raises(ConfigError, match=expected):
        load_config(path, env={})


def test_unknown_key_refused_at_every_level():
    data = shipped()
    data["redis"]["timout"] = "50ms"
    assert "redis.timout: unknown key" in refused(data)
    data = shipped()
    data["routes"][0]["ttll"] = "5s"
    assert "routes[0].ttll: unknown key" in refused(data)
    data = shipped()
    data["extra"] = {}
    assert "extra: unknown key" in refused(data)


def test_unknown_strategy_lists_the_known_ones():
    data = shipped()
    data["routes"][4]["strategy"] = "read-thru"
    message = refused(data)
    assert "routes[4].strategy: unknown strategy 'read-thru'" in message
    assert "passthrough, read-through, write-through" in message


@pytest.mark.parametrize("path, reason", [
    ("/users/{id:float}", "unknown parameter type"),
    ("/users/{id", "unbalanced braces"),
    ("users/{id}", "starting with /"),
    ("/users/x{id}", "whole path segment"),
    ("/users/{id}/{id}", "appears twice"),
])
def test_bad_path_template(path, reason):
    data = shipped()
    data["routes"][4]["path"] = path
    assert reason in refused(data)


def test_key_placeholder_must_exist():
    data = shipped()
    data["routes"][4]["key"] = "user:{uid}"
    assert 'routes[4].key: placeholder "{uid}"' in refused(data)


def test_duplicate_route_refused():
    data = shipped()
    data["routes"].append(copy.deepcopy(data["routes"][4]))
    assert f"routes[{len(data['routes']) - 1}]: duplicates routes[4]" in refused(data)


def test_caller_scope_needs_caller_in_key_and_auth():
    data = shipped()
    data["routes"][4]["scope"] = "caller"
    assert "needs {caller} in the key" in refused(data)
    data = shipped()
    data["routes"][2]["auth"] = "none"
    assert "scope: caller needs an authenticated route" in refused(data)


def rule(data: dict, method: str, path: str) -> dict:
    return next(r for r in data["routes"] if method in r["methods"] and r["path"] == path)


def test_a_caller_scoped_key_is_never_shared():
    data = shipped()
    me, user = rule(data, "GET", "/users/me"), rule(data, "GET", "/users/{id:int}")
    me["key"] = "user:{caller}"  # /users/me in the key space of /users/{id}: one caller's view for all
    index = data["routes"].index
    assert (f'routes[{index(user)}].key: "user:{{id}}" may name the entries of '
            f'routes[{index(me)}] ("user:{{caller}}", scope: caller)') in refused(data)
    data = shipped()
    write = rule(data, "PATCH", "/users/{id:int}")
    del write["scope"]
    write["key"] = "user-me:{id}"  # what one caller's write returned, stored under another caller's key
    assert 'key: "user-me:{id}" may name the entries of' in refused(data)
    data = shipped()
    rule(data, "GET", "/users/search")["key"] = "user-me{query}"  # a prefix of the caller's keys
    assert "may name the entries of" in refused(data)


def test_the_write_rule_stores_the_private_view_for_its_caller_only():
    config = load_config(REPO / "config.yaml", env={}, strategies=REGISTRY)
    me = next(r for r in config.routes if r.path == "/users/me")
    write = next(r for r in config.routes if r.path == "/users/{id:int}" and r.strategy == "write-through")
    assert me.scope == write.scope == "caller" and me.key == write.key == "user-me:{caller}"
    assert "user:{id}" in write.invalidates and write.ttl == me.ttl


def test_strategy_specific_rules():
    data = shipped()
    data["routes"][0]["key"] = "token"
    assert "routes[0].key: passthrough stores and drops nothing" in refused(data)
    data = shipped()
    data["routes"][4]["methods"] = ["GET", "POST"]
    assert "read-through serves only GET and HEAD" in refused(data)
    data = shipped()
    del data["routes"][4]["key"]
    assert "read-through needs a key template" in refused(data)


def test_unknown_upstream_and_missing_sections():
    data = shipped()
    data["routes"][4]["upstream"] = "userz"
    assert 'routes[4].upstream: unknown upstream "userz"' in refused(data)
    data = shipped()
    del data["redis"]
    assert "redis.url: is required" in refused(data)


def test_environment_overrides(tmp_path):
    config = load_config(shipped(), base_dir=tmp_path, env={
        "CACHEGATE__REDIS__URL": "redis://redis:6379/0", "CACHEGATE__PROXY__PORT": "9999",
        "CACHEGATE_CACHE": "off", "CACHEGATE_DB_PASSWORD": "from-env"})
    assert config.redis.host == "redis" and config.redis.port == 6379
    assert config.proxy.port == 9999
    assert config.cache.enabled is False
    assert config.mariadb.password() == "from-env"
    assert "CACHEGATE_CACHE: expected on or off" in refused(shipped(), env={"CACHEGATE_CACHE": "maybe"})
    assert "proxy.port: expected a port number" in refused(shipped(), env={"CACHEGATE__PROXY__PORT": "http"})


def test_not_yaml_is_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("routes: [\n")
    with pytest.raises(ConfigError, match=r"^config\.yaml: not valid YAML at line"):
        load_config(path, env={})


def test_write_rule_stores_entries_as_long_as_its_read_rule():
    config = load_config(REPO / "config.yaml", env={}, strategies=REGISTRY)
    write = next(r for r in config.routes if r.path == "/trips/{id:int}" and r.strategy == "write-through")
    read = next(r for r in config.routes if r.path == "/trips/{id:int}" and r.strategy == "read-through")
    assert write.ttl == read.ttl == 60.0


def test_ttl_on_a_write_rule_without_key_is_refused():
    data = shipped()
    rule = next(r for r in data["routes"] if r["path"] == "/paths" and r["methods"] == ["POST"])
    rule["ttl"] = "5m"
    assert "ttl is the lifetime of the entry stored under key" in refused(data)


def test_no_admin_token_configured_is_refused_naming_the_key():
    """Regression (issue 7): without a token the admin listener took any call from any local process."""
    data = shipped()
    del data["proxy"]["admin"]["token_file"]
    message = refused(data)
    assert "proxy.admin.token_file: no admin token configured" in message
    assert "CACHEGATE_ADMIN_TOKEN" in message
    config = load_config(data, env={"CACHEGATE_ADMIN_TOKEN": "t" * 32}, base_dir=REPO)
    assert config.proxy.admin_token() == "t" * 32
    assert "too short (8 characters, at least 16)" in refused(data, env={"CACHEGATE_ADMIN_TOKEN": "12345678"})


@pytest.mark.parametrize("admin_host", ["127.0.0.1", "0.0.0.0", "::", "192.0.2.10", "gateway.internal"])
def test_an_admin_listener_without_a_token_is_refused_wherever_it_binds(admin_host):
    """Above all off loopback, where any host that reaches the port could switch the cache off."""
    data = shipped()
    data["proxy"]["admin"]["host"] = admin_host
    del data["proxy"]["admin"]["token_file"]
    message = refused(data)
    assert message.startswith("<config>: proxy.admin.token_file: no admin token configured"), message
    assert "CACHEGATE_ADMIN_TOKEN" in message
    config = load_config(data, env={"CACHEGATE_ADMIN_TOKEN": "t" * 32}, base_dir=REPO, strategies=REGISTRY)
    assert (config.proxy.admin_host, config.proxy.admin_token()) == (admin_host, "t" * 32)


def test_the_admin_token_file_is_read_on_use_and_the_environment_wins(tmp_path):
    data = shipped()
    data["proxy"]["admin"]["token_file"] = str(tmp_path / "admin-token")
    config = load_config(data, env={}, base_dir=REPO)  # loads before `cachegate up` made the file
    with pytest.raises(ConfigError, match="proxy.admin.token_file: cannot read .*admin-token"):
        config.proxy.admin_token()
    (tmp_path / "admin-token").write_text("short\n")
    with pytest.raises(ConfigError, match="too short"):
        config.proxy.admin_token()
    (tmp_path / "admin-token").write_text("a-long-enough-admin-token\n")
    assert config.proxy.admin_token() == "a-long-enough-admin-token"
    from_env = load_config(data, env={"CACHEGATE_ADMIN_TOKEN": "from-the-environment"}, base_dir=REPO)
    assert from_env.proxy.admin_token() == "from-the-environment"
    assert "from-the-environment" not in repr(from_env)


def test_redis_credentials_come_from_their_keys_never_from_the_url(tmp_path):
    data = shipped()
    data["redis"]["url"] = "redis://cachegate:hunter2-secret@127.0.0.1:6390/0"
    message = refused(data)
    assert "redis.url: must not hold credentials" in message and "hunter2" not in message
    data = shipped()
    data["redis"]["password_file"] = str(tmp_path / "redis-password")
    config = load_config(data, env={}, base_dir=REPO)
    assert config.redis.username == "cachegate" and "redis-password" in str(config.redis.password_file)
    with pytest.raises(ConfigError, match="redis.password_file: cannot read"):
        config.redis.password()
    (tmp_path / "redis-password").write_text("from-the-file\n")
    assert config.redis.password() == "from-the-file"
    from_env = load_config(data, env={"CACHEGATE_REDIS_PASSWORD": "from-env"}, base_dir=REPO)
    assert from_env.redis.password() == "from-env" and "from-env" not in repr(from_env)
    del data["redis"]["password_file"]
    with pytest.raises(ConfigError, match="redis.username: cachegate needs a password"):
        load_config(data, env={}, base_dir=REPO).redis.password()
    del data["redis"]["username"]
    assert load_config(data, env={}, base_dir=REPO).redis.password() is None  # a Redis without AUTH


def test_readiness_interval_has_a_floor():
    data = shipped()
    data["proxy"]["readiness_interval"] = "10ms"
    assert "proxy.readiness_interval: expected at least 100ms" in refused(data)


def test_every_rule_that_stores_has_its_lifetimes_resolved_once_at_load():
    """Regression: the defaults were merged again on every request (and a third time by check-config)."""
    config = load_config(REPO / "config.yaml", env={}, strategies=REGISTRY)
    stores = [r for r in config.routes if r.key is not None and REGISTRY[r.strategy].stores]
    assert stores and all(isinstance(v, float) for r in stores for v in (r.ttl, r.negative_ttl, r.grace))
    search = next(r for r in config.routes if r.path == "/users/search")
    cache = config.cache
    # cache.grace (5m) is clamped to the rule's ttl: an entry is kept at most twice its ttl.
    assert (search.ttl, search.negative_ttl, search.grace) == (30.0, cache.negative_ttl, 30.0)
    user = next(r for r in config.routes if r.path == "/users/{id:int}" and "GET" in r.methods)
    assert (user.ttl, user.grace) == (300.0, cache.grace)
    passthrough = next(r for r in config.routes if r.strategy == "passthrough")
    assert (passthrough.ttl, passthrough.negative_ttl, passthrough.grace) == (None, None, None)


def test_without_the_registry_only_the_structure_is_checked():
    """The services, the launcher and the load test read the file without the proxy's strategies."""
    data = shipped()
    data["routes"][4]["strategy"] = "made-up"
    config = load_config(data, env={}, base_dir=REPO)
    assert config.routes[4].strategy == "made-up" and not config.strategies_checked
    assert "routes[4].strategy: unknown strategy 'made-up'" in refused(data)
    data["routes"][4]["ttl"] = "soon"  # the structure is checked either way
    with pytest.raises(ConfigError, match=r'routes\[4\]\.ttl: expected a duration'):
        load_config(data, env={}, base_dir=REPO)


def leaves(node: dict, prefix: str = "") -> set[str]:
    out = set()
    for key, value in node.items():
        if isinstance(value, dict):
            out |= leaves(value, f"{prefix}{key}.")
        else:
            out.add(prefix + key)
    return out


def test_every_key_of_the_file_is_a_declared_setting():
    """Each key says whether a reload applies it (tests/e2e/test_reload_settings.py walks them all)."""
    config = load_config(REPO / "config.yaml", env={}, strategies=REGISTRY)
    declared = {s.key for s in settings(config)}
    in_file = leaves(SHIPPED) | {f"services.{name}.{key}" for name in SHIPPED["services"]  # defaults
                                 for key in ("max_body", "access_log")} | {"logging.access_dir"}
    assert declared == in_file


@pytest.mark.parametrize("admin_host", ["127.0.0.1", "0.0.0.0"])
def test_the_admin_listener_cannot_take_the_api_address(admin_host):
    data = shipped()
    data["proxy"]["admin"].update(host=admin_host, port=data["proxy"]["port"])
    assert "proxy.admin.port: must differ from proxy.port (8888)" in refused(data)
    data["proxy"]["admin"]["host"] = "127.0.0.2" if admin_host == "127.0.0.1" else "::"
    if admin_host == "127.0.0.1":
        assert load_config(data, env={}, base_dir=REPO).proxy.admin_port == 8888  # another address
    else:
        assert "proxy.admin.port: must differ" in refused(data)


def test_a_service_reads_its_own_body_limit():
    data = shipped()
    data["services"]["users"]["max_body"] = "64KiB"
    config = load_config(data, env={}, base_dir=REPO)
    assert config.services["users"].max_body == 64 * 1024 and config.services["paths"].max_body == 1024**2
    assert config.proxy.max_body == 1024**2


def test_a_rules_own_grace_may_not_exceed_its_ttl():
    """Regression (issue 9): every distinct search was kept for its 30 s ttl plus the 5-minute grace."""
    data = shipped()
    search = next(r for r in data["routes"] if r["path"] == "/users/search")
    search["grace"] = "31s"
    assert "routes[3].grace: 31s exceeds the rule's ttl (30s)" in refused(data)
    search["grace"] = "30s"
    load_config(data, env={}, base_dir=REPO, strategies=REGISTRY)


@pytest.mark.parametrize("policy, why", [
    ("allkeys-lru", "could evict the epoch key"), ("volatile-ttl", "evicts the shortest-lived keys first"),
    ("volatile-random", "as readily as idle entries"), ("lru-please", "unknown policy")])
def test_an_eviction_policy_that_may_drop_the_gateways_own_keys_is_refused(policy, why):
    data = shipped()
    data["redis"]["maxmemory_policy"] = policy
    message = refused(data)
    assert "redis.maxmemory_policy:" in message and why in message and "volatile-lru" in message


def test_redis_memory_limit_is_read_as_a_size():
    data = shipped()
    data["redis"]["maxmemory"] = "64MiB"
    assert load_config(data, env={}, base_dir=REPO).redis.maxmemory == 64 * 1024**2
    data["redis"]["maxmemory"] = "1KiB"
    assert "redis.maxmemory: expected at least 1MiB" in refused(data)


def test_upstream_pools_of_every_worker_must_fit_the_services_backlog():
    data = shipped()
    data["proxy"].update(workers=32, upstream_pool=64)
    assert "proxy.upstream_pool: 64 connections x 32 workers exceed the services' listen backlog (1024)" \
        in refused(data)
    data["proxy"]["upstream_pool"] = 32
    load_config(data, env={}, base_dir=REPO, strategies=REGISTRY)


@pytest.mark.parametrize("key", ["header_timeout", "body_timeout", "keepalive_timeout"])
def test_listener_deadlines_must_be_at_least_100ms(key):
    data = shipped()
    data["proxy"][key] = "0s"
    assert f"proxy.{key}: expected at least 100ms" in refused(data)
