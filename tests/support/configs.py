"""Configs for tests: the repo's config.yaml pointed at the test servers, one fresh database per config."""
from __future__ import annotations

import copy
import random
import socket
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import yaml

from cachegate.config import Config, load_config
from cachegate.routes import RouteRules
from stack.mariadb import MariaDBServer
from stack.net import free_port
from stack.redis import RedisServer
from stack.redis_acl import RedisUsers
from stack.redis_cluster import RedisCluster

REPO = Path(__file__).resolve().parents[2]
TEST_DB_USER = "cachegate_test"
TEST_REDIS_USER = "cachegate"
TEST_CDC_USER = "cachegate_test_cdc"


@dataclass(frozen=True)
class TestSecrets:
    """Secrets made once per session: the JWT key pair, the database, Redis and admin passwords."""
    __test__ = False  # not a test class, despite the name

    jwt_private: Path
    jwt_public: Path
    db_password_file: Path
    redis_password_file: Path
    redis_admin_password_file: Path
    admin_token_file: Path
    cdc_password_file: Path

    @property
    def db_password(self) -> str:
        return self.db_password_file.read_text().strip()

    @property
    def redis_users(self) -> RedisUsers:
        """The users every test Redis runs with: the gateway's (what the code under test uses), the admin."""
        return RedisUsers(TEST_REDIS_USER, self.redis_password_file.read_text().strip(),
                          self.redis_admin_password_file.read_text().strip())


def deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A copy of `base` with `overrides` merged in: mappings recursively, anything else (lists) replaced."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


class ConfigBuilder:
    """Configs from the repo's config.yaml pointing at the test world, one fresh database per call."""

    def __init__(self, tmp_path: Path, redis: RedisServer, mariadb: MariaDBServer,
                 secrets: TestSecrets) -> None:
        self.tmp_path = tmp_path
        self.redis = redis
        self.mariadb = mariadb
        self.secrets = secrets
        self.calls = 0

    def mapping(self, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The config as a dict; creates its database and its folder as a side effect."""
        self.calls += 1
        unique = uuid.uuid4().hex[:10]
        database = f"t_{unique}"
        self.mariadb.ensure_database(database, TEST_DB_USER, self.secrets.db_password)
        data_dir = self.tmp_path / f"stack{self.calls}"
        data_dir.mkdir(parents=True, exist_ok=True)
        services = {name: {"host": "127.0.0.1", "port": free_port()} for name in ("users", "paths", "trips")}
        world = {
            "stack": {"data_dir": str(data_dir)},
            # No drain: a test that stops a proxy process does not wait for balancers (test_drain.py does).
            "proxy": {"host": "127.0.0.1", "port": free_port(), "drain": "0s",
                      "admin": {"host": "127.0.0.1", "port": free_port(),
                                "token_file": str(self.secrets.admin_token_file)}},
            "redis": {"url": self.redis.url, "username": TEST_REDIS_USER,
                      "password_file": str(self.secrets.redis_password_file)},
            "mariadb": {"host": self.mariadb.host, "port": self.mariadb.port, "database": database,
                        "user": TEST_DB_USER, "password_file": str(self.secrets.db_password_file)},
            "auth": {"public_key": str(self.secrets.jwt_public),
                     "private_key": str(self.secrets.jwt_private)},
            # A prefix of its own per config, so tests sharing the session Redis never see each other's keys.
            "cache": {"prefix": f"t{unique}"},
            # Off unless a test runs an invalidator: with it on, the gateway bypasses the rules' routes
            # while no invalidator reports in. A server id of its own: the server drops a replica's older
            # connection when another connects with the same id.
            "invalidator": {"enabled": False, "port": free_port(), "user": TEST_CDC_USER,
                            "password_file": str(self.secrets.cdc_password_file),
                            "server_id": random.randint(10_000, 2**31)},
            "services": services,
            "upstreams": {name: f"http://{s['host']}:{s['port']}" for name, s in services.items()},
        }
        base = yaml.safe_load((REPO / "config.yaml").read_text())
        base["mariadb"].pop("nodes", None)  # the test server's host and port (the one-node shorthand) instead
        return deep_merge(deep_merge(base, world), overrides or {})

    def __call__(self, overrides: dict[str, Any] | None = None, *,
                 strategies: Mapping[str, RouteRules] | None = None) -> Config:
        """The config as the services read it; as the proxy does with `strategies` (the registry)."""
        # env={}: the developer's shell (CACHEGATE_CACHE=off, CACHEGATE_*_PASSWORD) must not leak into tests.
        return load_config(self.mapping(overrides), base_dir=self.tmp_path, env={}, strategies=strategies)

    def file(self, overrides: dict[str, Any] | None = None, *,
             strategies: Mapping[str, RouteRules] | None = None) -> Config:
        """Like calling the builder, but written to a config.yaml first: for commands run as subprocesses."""
        mapping = self.mapping(overrides)
        path = Path(mapping["stack"]["data_dir"]) / "config.yaml"
        path.write_text(yaml.safe_dump(mapping, sort_keys=False))
        return load_config(path, env={}, strategies=strategies)




def cluster_node_ports(count: int) -> list[int]:
    """Free ports for the launcher's Redis Cluster nodes: each one's cluster bus (+10000) free too."""
    found: list[int] = []
    while len(found) < count:
        port = free_port()
        if port + 10000 > 65535 or port in found:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        found.append(port)
    return found


def on_cluster(cluster: RedisCluster, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """Config overrides that put the cache on `cluster` (its nodes as `redis.cluster.nodes`). A fill with
    tags is a few more calls there than on one Redis, so a loaded test machine gets a longer redis.timeout
    than the shipped 250ms: a timed-out call is a bypass (and may move the epoch), which would make a test
    that expects a hit see a miss."""
    nodes = {"redis": {"timeout": "1s", "cluster": {"nodes": [f"{h}:{p}" for h, p in cluster.startup_nodes],
                                                    "replicas": cluster.replicas}}}
    return deep_merge(nodes, overrides or {})
