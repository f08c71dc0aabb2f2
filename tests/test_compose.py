"""compose.yaml agrees with config.yaml: the same services, ports, addresses, Redis ACL; no secret in it."""
from __future__ import annotations

import configparser
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

from cachegate.config import load_config
from stack.net import free_port
from stack.process import terminate, wait_until
from stack.redis_acl import gateway_rules

REPO = Path(__file__).resolve().parents[1]
BACKENDS = ("users", "paths", "trips")
APP_SERVICES = ("keys", "migrate", *BACKENDS, "proxy")
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
           "CACHEGATE_ADMIN_TOKEN": "not-a-real-admin-token"}


def interpolated(value: str) -> str:
    """A value as compose hands it over, DOT_ENV being the .env file: `${NAME:?...}` replaced, `$$` -> `$`."""
    value = re.sub(r"\$\{(\w+)(?::\?[^}]*)?\}", lambda m: DOT_ENV[m.group(1)], value)
    return value.replace("$$", "$")


def config_in(service: dict[str, Any]):
    """The Config a container of this service would load: config.yaml plus its environment."""
    return load_config(REPO / "config.yaml", env={k: interpolated(v) for k, v in env_of(service).items()})


def test_compose_has_the_whole_stack(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"redis", "mariadb", *APP_SERVICES, *MONITORING}
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
    assert holders == {"redis", "proxy"}
    assert "CACHEGATE_ADMIN_TOKEN" not in env_of(compose["services"]["redis"])
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


def test_docker_compose_accepts_the_file() -> None:
    command = _compose_command()
    if command is None:
        pytest.skip("no working `docker compose` or `docker-compose` here")
    result = subprocess.run([*command, "-f", str(REPO / "compose.yaml"), "config", "-q"], capture_output=True,
                            text=True, timeout=60, env={**os.environ, **DOT_ENV})
    assert result.returncode == 0, result.stderr


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
