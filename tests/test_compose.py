"""compose.yaml agrees with config.yaml: the same services, ports, addresses, Redis ACL, restart policies and
healthchecks on every long-running service; no secret in it."""
from __future__ import annotations

import asyncio
import configparser
import copy
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import jsonschema
import pytest
import yaml

from backends.migrate import migrate
from cachegate.config import load_config
from stack.net import free_port, port_open
from stack.process import terminate, wait_until
from stack.redis_acl import gateway_rules

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("users", "paths", "trips")
APP_SERVICES = ("keys", "migrate", *BACKENDS, "proxy", "invalidator")
MONITORING = ("prometheus", "grafana")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


@pytest.fixture(scope="module")
def shipped():
    return load_config(REPO / "config.yaml", env={})


def env_of(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {key: str(value) for key, value in env.items()}


DOT_ENV = {"CACHEGATE_DB_PASSWORD": "not-a-real-db-password", "CACHEGATE_REDIS_PASSWORD": "no-real-redis-pw",
           "CACHEGATE_ADMIN_TOKEN": "not-a-real-admin-token",
           "CACHEGATE_CDC_PASSWORD": "not-a-real-cdc-pw"}


def interpolated(value: str, dot_env: dict[str, str] | None = None) -> str:
    """A value as compose hands it over, DOT_ENV being the .env file: `${NAME:?...}` replaced, `${NAME:-x}`
    by x unless .env has NAME, `$$` -> `$`."""
    env = DOT_ENV if dot_env is None else dot_env

    def value_of(m: re.Match) -> str:
        name, default = m.group(1), m.group(2)
        return env.get(name, default[2:]) if default is not None else env[name]

    value = re.sub(r"\$\{(\w+)(:-[^}]*)?(?::\?[^}]*)?\}", value_of, value)
    return value.replace("$$", "$")


def config_in(service: dict[str, Any], dot_env: dict[str, str] | None = None):
    """The Config a container of this service would load: config.yaml plus its environment."""
    return load_config(REPO / "config.yaml",
                       env={k: interpolated(v, dot_env) for k, v in env_of(service).items()})


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    default = {name for name, service in compose["services"].items() if not service.get("profiles")}
    assert default == {"redis", "mariadb", *APP_SERVICES}
    for name in MONITORING:  # started only with `--profile monitoring`
        assert compose["services"][name]["profiles"] == ["monitoring"], name
    for name in APP_SERVICES:
        assert compose["services"][name].get("build") == ".", name


def test_app_containers_reach_redis_and_mariadb_by_service_name(compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        config = config_in(compose["services"][name])
        assert (config.redis.host, config.redis.port) == ("redis", 6379), name
        assert (config.mariadb.host, config.mariadb.port) == ("mariadb", 3306), name
        assert config.mariadb.database == env_of(compose["services"]["mariadb"])["MARIADB_DATABASE"]
        assert config.mariadb.user == env_of(compose["services"]["mariadb"])["MARIADB_USER"]


def test_backends_listen_where_config_yaml_says_and_the_proxy_finds_them(
        compose: dict[str, Any], shipped) -> None:
    proxy = config_in(compose["services"]["proxy"])
    for name in BACKENDS:
        service = compose["services"][name]
        assert service["command"] == ["cachegate", "backend", name]
        inside = config_in(service)
        port = shipped.services[name].port
        assert inside.services[name].host == "0.0.0.0"  # reachable from the proxy container
        assert inside.services[name].port == port
        assert [int(p) for p in service["expose"]] == [port]
        assert proxy.upstreams[name] == f"http://{name}:{port}"


def test_proxy_publishes_its_ports_on_loopback_only_and_the_admin_api_through_the_token(
        compose: dict[str, Any], shipped) -> None:
    service = compose["services"]["proxy"]
    inside = config_in(service)
    assert inside.proxy.host == "0.0.0.0" and inside.proxy.port == shipped.proxy.port
    # The admin listener asks every call for the token, so the host reaches it too, on its loopback only.
    assert inside.proxy.admin_host == "0.0.0.0" and inside.proxy.admin_port == shipped.proxy.admin_port
    assert service["ports"] == [f"127.0.0.1:{shipped.proxy.port}:{shipped.proxy.port}",
                                f"127.0.0.1:{shipped.proxy.admin_port}:{shipped.proxy.admin_port}"]
    assert inside.proxy.admin_token() == DOT_ENV["CACHEGATE_ADMIN_TOKEN"]
    for name in APP_SERVICES:  # a container's access lines go to stdout, none to a file in the image
        assert config_in(compose["services"][name]).logging.access_dir is None, name


def test_no_secret_is_written_in_compose(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for key, value in env_of(service).items():
            if re.search(r"PASSWORD|SECRET|TOKEN", key) and key != "MARIADB_RANDOM_ROOT_PASSWORD":
                assert value.startswith("${"), f"{name}: {key} must come from .env, not compose.yaml"


def test_only_the_proxy_gets_the_redis_password_and_the_admin_token(compose: dict[str, Any]) -> None:
    holders = {name for name, service in compose["services"].items()
               if {"CACHEGATE_REDIS_PASSWORD", "CACHEGATE_ADMIN_TOKEN"} & set(env_of(service))}
    assert holders == {"redis", "proxy", "invalidator"}  # the invalidator writes to the cache: Redis only
    for name in ("redis", "invalidator"):
        assert "CACHEGATE_ADMIN_TOKEN" not in env_of(compose["services"][name])
    invalidator = config_in(compose["services"]["invalidator"])
    assert invalidator.invalidator.password() == DOT_ENV["CACHEGATE_CDC_PASSWORD"]
    assert invalidator.invalidator.user == "cachegate_cdc" and invalidator.invalidator.port == 8890
    proxy = config_in(compose["services"]["proxy"])
    assert proxy.redis.password() == DOT_ENV["CACHEGATE_REDIS_PASSWORD"]
    assert proxy.proxy.admin_token() == DOT_ENV["CACHEGATE_ADMIN_TOKEN"]
    assert "@" not in proxy.redis.url  # no credentials in the URL


def test_compose_redis_has_the_gateway_user_of_config_yaml_and_the_rules_of_the_launcher(
        compose: dict[str, Any], shipped) -> None:
    redis = compose["services"]["redis"]
    env = env_of(redis)
    assert env["REDIS_GATEWAY_USER"] == shipped.redis.username
    assert " ".join(env["REDIS_GATEWAY_RULES"].split()) == gateway_rules()
    script = redis["command"][2]
    assert redis["command"][:2] == ["sh", "-ec"] and "--aclfile /tmp/users.acl" in script
    assert "$$CACHEGATE_REDIS_PASSWORD" in " ".join(redis["healthcheck"]["test"])  # the probe logs in too


def test_compose_redis_has_the_memory_limit_and_policy_of_config_yaml(compose: dict[str, Any],
                                                                     shipped) -> None:
    script = compose["services"]["redis"]["command"][2]
    assert f"--maxmemory {shipped.redis.maxmemory} " in script
    assert f"--maxmemory-policy {shipped.redis.maxmemory_policy} " in script


@pytest.fixture
def compose_acl_redis(compose: dict[str, Any], tmp_path: Path) -> Iterator[tuple[int, str]]:
    """A local redis-server on the ACL file that compose's own script writes (its printf, run by sh)."""
    script = compose["services"]["redis"]["command"][2]
    printf = script[script.index("printf"):script.index("\n", script.index("> /tmp/users.acl"))]
    acl = tmp_path / "users.acl"
    env = {k: interpolated(v) for k, v in env_of(compose["services"]["redis"]).items()}
    subprocess.run(["sh", "-ec", interpolated(printf).replace("/tmp/users.acl", str(acl))], env=env,
                   check=True, timeout=10)
    port = free_port()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--aclfile", str(acl),
            "--save", "", "--appendonly", "no", "--dir", str(tmp_path)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: "NOAUTH" in cli(port, "PING"), 10), "redis-server did not start"
        yield port, env["REDIS_GATEWAY_USER"]
    finally:
        terminate(proc.pid, timeout=5, popen=proc)


def cli(port: int, *args: str, user: str | None = None, password: str | None = None) -> str:
    env = {"REDISCLI_AUTH": password} if password else {}
    done = subprocess.run(["redis-cli", "-p", str(port), *(["--user", user] if user else []), *args],
                          capture_output=True, text=True, timeout=10, env=env)
    return (done.stdout + done.stderr).strip()


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="no redis-server here")
def test_compose_redis_acl_lets_only_the_gateway_in(compose_acl_redis) -> None:
    port, user = compose_acl_redis
    password = DOT_ENV["CACHEGATE_REDIS_PASSWORD"]
    assert cli(port, "SET", "cg:e:user:1", "forged").startswith("NOAUTH")
    assert cli(port, "SET", "cg:e:user:1", "v", user=user, password=password) == "OK"
    assert cli(port, "GET", "cg:e:user:1", user=user, password=password) == "v"
    assert "NOPERM" in cli(port, "FLUSHALL", user=user, password=password)
    assert "WRONGPASS" in cli(port, "PING", user="default", password=password)  # default is switched off


def test_only_the_users_service_gets_the_private_key(compose: dict[str, Any]) -> None:
    holders = {name for name, service in compose["services"].items()
               if any(str(v).startswith("jwt-private:") for v in service.get("volumes", []))}
    assert holders == {"keys", "users"}
    private = config_in(compose["services"]["users"]).auth.private_key
    assert str(private).startswith("/run/cachegate/private/")


def test_dockerfile_copies_every_package_setup_cfg_installs() -> None:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    packages = {line.strip() for line in setup["options.packages.find"]["include"].split() if "." not in line}
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (REPO / "Dockerfile").read_text(), re.M))
    assert packages and packages <= copied


def _compose_command() -> list[str] | None:
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        probe = subprocess.run([*command, "version"], capture_output=True, timeout=30)
        if probe.returncode == 0:
            return command
    return None


COMPOSE_SPEC = REPO / "tests" / "support" / "compose-spec.json"  # its source: compose-spec.README.md there


def compose_spec_errors(document: Any) -> list[str]:
    """Where and why `document` breaks the Compose Specification's JSON schema (nothing: it is valid)."""
    schema = json.loads(COMPOSE_SPEC.read_text())
    validator = jsonschema.Draft7Validator(schema)
    return [f"{'/'.join(map(str, error.absolute_path)) or '(top)'}: {error.message}"
            for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path)))]


def test_compose_yaml_follows_the_compose_specification(compose: dict[str, Any]) -> None:
    """The schema docker compose itself validates with, and no Docker needed."""
    assert compose_spec_errors(compose) == []


@pytest.mark.parametrize("break_it, where", [
    (lambda c: c["services"]["proxy"].update(restart_policy="always"), "services/proxy"),
    (lambda c: c["services"]["redis"].update(ports="6379"), "services/redis/ports"),
    (lambda c: c["services"]["proxy"]["healthcheck"].update(every="5s"), "services/proxy/healthcheck"),
    (lambda c: c["services"]["proxy"]["depends_on"]["users"].update(condition="service_ready"),
     "services/proxy/depends_on"),
    (lambda c: c.update(servics={}), "(top)"),
], ids=["unknown-service-key", "ports-not-a-list", "unknown-healthcheck-key", "unknown-condition",
        "unknown-top-level-key"])
def test_the_compose_schema_refuses_a_broken_file(compose: dict[str, Any], break_it, where: str) -> None:
    broken = copy.deepcopy(compose)
    break_it(broken)
    errors = compose_spec_errors(broken)
    assert errors and all(e.startswith(where) for e in errors), errors


def test_docker_compose_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no working `docker compose` or `docker-compose` here")
    result = subprocess.run([*command, "-f", str(REPO / "compose.yaml"), "config", "-q"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, **DOT_ENV})
    assert result.returncode == 0, result.stderr


ONE_SHOTS = ("keys", "migrate")


def test_every_long_running_service_restarts_unless_stopped_and_has_a_healthcheck(
        compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        if name in ONE_SHOTS:
            assert service.get("restart") == "no", name   # a failed one-shot is reported, not retried
            continue
        assert service.get("restart") == "unless-stopped", name
        test = service.get("healthcheck", {}).get("test")
        assert isinstance(test, list) and test[0] in ("CMD", "CMD-SHELL") and len(test) > 1, name


def health_url(service: dict[str, Any]) -> str:
    found = re.search(r"http://127\.0\.0\.1:\d+/-/health", " ".join(service["healthcheck"]["test"]))
    assert found, service["healthcheck"]
    return found.group(0)


def test_backend_healthchecks_ask_their_own_health_endpoint_and_gate_the_proxy(
        compose: dict[str, Any], shipped) -> None:
    for name in BACKENDS:
        service = compose["services"][name]
        assert health_url(service) == f"http://127.0.0.1:{shipped.services[name].port}/-/health", name
        assert service["healthcheck"]["test"][:3] == ["CMD", "python", "-c"], name
        assert compose["services"]["proxy"]["depends_on"][name] == {"condition": "service_healthy"}
    assert health_url(compose["services"]["proxy"]) == f"http://127.0.0.1:{shipped.proxy.port}/-/health"


@pytest.mark.slow
def test_a_backend_healthcheck_passes_on_a_live_service_and_fails_on_a_dead_one(
        compose: dict[str, Any], make_config, tmp_path: Path) -> None:
    """The container's own probe command, pointed at a real users service (and then at nothing)."""
    config = make_config.file()
    asyncio.run(migrate(config))
    port = config.services["users"].port
    test = compose["services"]["users"]["healthcheck"]["test"]
    shipped = health_url(compose["services"]["users"])
    ours = f"http://127.0.0.1:{port}/-/health"

    def probe() -> int:
        argv = [sys.executable if part == "python" else part.replace(shipped, ours) for part in test[1:]]
        return subprocess.run(argv, capture_output=True, timeout=30).returncode

    log = (tmp_path / "users.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "backends.runner", "users", str(config.path)], cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: proc.poll() is not None or port_open("127.0.0.1", port, 0.2), 30)
        assert proc.poll() is None
        assert probe() == 0
    finally:
        terminate(proc.pid, timeout=15, popen=proc)
        log.close()
    assert probe() != 0   # nothing answers there any more


# --- profile galera: the database as a 3-node Galera cluster ---------------------------------------------

GALERA = ("galera-1", "galera-2", "galera-3")
GALERA_ENV = {**DOT_ENV, "CACHEGATE_DB_NODES": "galera-1:3306,galera-2:3306,galera-3:3306"}


def galera_cnf(compose: dict[str, Any]) -> dict[str, str]:
    parser = configparser.ConfigParser(strict=True)
    parser.read_string(interpolated(compose["configs"]["galera-cnf"]["content"]))
    return dict(parser["mysqld"])


def test_the_galera_profile_has_three_nodes_of_the_image_and_database_of_the_single_server(
        compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert {name for name, s in services.items() if s.get("profiles") == ["galera"]} == set(GALERA)
    single = services["mariadb"]
    for name in GALERA:
        node = services[name]
        assert node["image"] == single["image"]
        assert env_of(node) == env_of(single)  # the same database, user and password (from .env)
        assert any(str(v).startswith(f"{name}-data:") for v in node["volumes"]), name
        assert f"{name}-data" in compose["volumes"]
        assert {"source": "galera-cnf", "target": "/etc/mysql/conf.d/galera.cnf"} in node["configs"]
        command = " ".join(node["command"])
        assert f"--wsrep-node-name={name}" in command and f"--wsrep-node-address={name}" in command
        assert "--galera_online" in node["healthcheck"]["test"]


def test_only_node_1_bootstraps_and_only_when_it_has_no_data_or_stopped_last(compose: dict[str, Any]) -> None:
    services = compose["services"]
    first = services["galera-1"]["command"]
    assert first[:2] == ["sh", "-ec"]
    script = first[2]
    assert "--wsrep-new-cluster" in script
    assert "[ ! -d /var/lib/mysql/mysql ]" in script and "safe_to_bootstrap: *1" in script
    assert "/var/lib/mysql/grastate.dat" in script
    for name in GALERA[1:]:
        assert "--wsrep-new-cluster" not in " ".join(services[name]["command"]), name
    # Joiners one at a time, each after the one before it is online.
    assert services["galera-2"]["depends_on"] == {"galera-1": {"condition": "service_healthy"}}
    assert services["galera-3"]["depends_on"] == {"galera-2": {"condition": "service_healthy"}}
    # The migration waits for the last joiner when the profile runs (and for nothing when it does not).
    waits = services["migrate"]["depends_on"]["galera-3"]
    assert waits == {"condition": "service_healthy", "required": False}


def test_galera_cnf_has_what_the_local_nodes_get(compose: dict[str, Any], tmp_path: Path) -> None:
    from stack.galera_conf import Account, ClusterSettings, NodeAddress, render_cnf
    cnf = galera_cnf(compose)
    peers = [NodeAddress("127.0.0.1", 3317 + i, 13317 + i, 23317 + i, 33317 + i) for i in range(3)]
    local = configparser.ConfigParser(strict=True, allow_no_value=True)
    local.read_string(render_cnf(0, tmp_path, peers, ClusterSettings(), sst=Account("s", "p"),
                                 pid_path=tmp_path / "p", log_path=tmp_path / "l"))
    for key in ("binlog_format", "log_bin", "log_slave_updates", "default_storage_engine",
                "innodb_autoinc_lock_mode", "wsrep_on", "wsrep_provider", "wsrep_cluster_name",
                "wsrep_gtid_mode", "wsrep_sync_wait", "wsrep_sst_method"):
        assert cnf[key] == local["mysqld"][key], key
    assert cnf["wsrep_cluster_address"] == "gcomm://" + ",".join(GALERA)
    # The state-transfer user: made by node 1's first start, with the password of .env, never in the file.
    raw = compose["configs"]["galera-cnf"]["content"]
    assert "wsrep_sst_auth=cachegate_sst:${CACHEGATE_DB_PASSWORD:?" in raw
    assert cnf["wsrep_sst_auth"] == "cachegate_sst:" + DOT_ENV["CACHEGATE_DB_PASSWORD"]
    sql = compose["configs"]["galera-sst-user"]["content"]
    assert "'cachegate_sst'@'localhost'" in sql and "IDENTIFIED BY '${CACHEGATE_DB_PASSWORD:?" in sql
    assert {"source": "galera-sst-user", "target": "/docker-entrypoint-initdb.d/sst-user.sql"} in \
        compose["services"]["galera-1"]["configs"]


def test_with_the_galera_nodes_in_dot_env_every_app_container_uses_the_three_nodes(
        compose: dict[str, Any]) -> None:
    for name in APP_SERVICES:
        config = config_in(compose["services"][name], GALERA_ENV)
        assert config.mariadb.cluster, name
        assert [(n.host, n.port) for n in config.mariadb.nodes] == [(g, 3306) for g in GALERA], name
        assert config_in(compose["services"][name]).mariadb.nodes[0].host == "mariadb"  # without: the one


def dockerfile_instructions() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", "", (REPO / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_dockerfile_installs_the_dependencies_in_a_layer_code_changes_do_not_invalidate(tmp_path) -> None:
    steps = dockerfile_instructions()
    installs = [i for i, step in enumerate(steps) if step.startswith("RUN") and "pip install" in step]
    assert len(installs) == 2
    deps, project = installs
    before = [step for step in steps[:deps] if step.startswith(("COPY", "ADD"))]
    assert before == ["COPY setup.cfg ./"]  # nothing of the code, nor the README, above the dependencies
    assert "--no-deps" in steps[project] and "--no-deps" not in steps[deps]
    assert all(steps.index(f"COPY {package} ./{package}") < project for package in ("cachegate", "proxy"))
    # The layer's own command, run here on setup.cfg, lists exactly what setup.cfg installs.
    command = re.search(r'python -c "([^"]+)"', steps[deps]).group(1)
    (tmp_path / "setup.cfg").write_text((REPO / "setup.cfg").read_text())
    listed = subprocess.run([sys.executable, "-c", command], capture_output=True, text=True, check=True,
                            cwd=tmp_path, timeout=30).stdout.split()
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    assert listed == setup["options"]["install_requires"].split() and "aiohttp>=3.9" in listed


def test_the_license_is_the_mit_license_setup_cfg_names() -> None:
    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    assert setup["metadata"]["license"] == "MIT" and setup["metadata"]["license_files"] == "LICENSE"
    text = (REPO / "LICENSE").read_text()
    assert text.startswith("MIT License\n\nCopyright (c) ") and "WITHOUT WARRANTY OF ANY KIND" in text
