"""The whole stack in cluster shape for tests: `cachegate up` on a config with three Galera nodes.

Everything is a real process the launcher starts (Redis, three mariadbd, the three services, the proxy), on
free ports, with its data under one temporary folder; the tests reach the nodes directly as the application
user and the API through the proxy.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pymysql
import yaml

from cachegate.config import Config, load_config
from cachegate.settings import DatabaseNode
from stack import launcher
from stack.database import DatabaseUnit
from stack.net import free_port
from stack.process import StackError, wait_until
from tests.support.configs import cluster_node_ports

REPO = Path(__file__).resolve().parents[2]
NODES = 3


def cluster_config_file(root: Path) -> Path:
    """config.cluster.yaml with every port free and every file under `root` (the suite's own stack)."""
    data = yaml.safe_load((REPO / "config.cluster.yaml").read_text())
    stack_dir, secrets = root / "stack", root / "stack" / "secrets"
    data["stack"]["data_dir"] = str(stack_dir)
    data["proxy"].update(port=free_port(), access_log=False)
    data["proxy"]["admin"].update(port=free_port(), token_file=str(secrets / "admin-token"))
    data["redis"].update(url=f"redis://127.0.0.1:{free_port()}/0",
                         password_file=str(secrets / "redis-password"))
    data["redis"]["cluster"]["nodes"] = [f"127.0.0.1:{port}" for port in cluster_node_ports(6)]
    data["mariadb"].update(password_file=str(secrets / "db-password"), pool={"min": 1, "max": 8},
                           nodes=[{"host": "127.0.0.1", "port": free_port(), "gcomm_port": free_port(),
                                   "ist_port": free_port(), "sst_port": free_port()} for _ in range(NODES)])
    data["invalidator"].update(port=free_port(), password_file=str(secrets / "db-cdc-password"))
    data["auth"].update(public_key=str(secrets / "jwt-public.pem"),
                        private_key=str(secrets / "jwt-private.pem"))
    for name, service in data["services"].items():
        service["port"] = free_port()
        data["upstreams"][name] = f"http://127.0.0.1:{service['port']}"
    path = root / "config.cluster.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class ClusterStack:
    path: Path
    config: Config
    timings: dict[str, float] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)  # what `up` and `down` printed

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.config.proxy.port}"

    def database(self) -> DatabaseUnit:
        return launcher.mariadb_server(self.config)

    def up(self, what: str | None = None) -> list[str]:
        """`cachegate up` (what is not running starts; a node that is down rejoins); the lines it printed
        about the database's nodes (`n1: joined at ..., state transfer: IST, 2.4s`)."""
        began = time.monotonic()
        printed: list[str] = []
        launcher.up(self.config, seed_users=20, say=printed.append)
        if what:
            self.timings[what] = time.monotonic() - began
        self.lines += printed
        return [line.strip() for line in printed if re.match(r"\s+n\d+: ", line)]

    def down(self) -> None:
        launcher.down(self.config, say=self.lines.append)

    def unsupervised(self) -> None:
        """Stop the stack's supervisor, leaving every process running: a node killed now stays down (with
        the supervisor it would rejoin by itself) until the next `up`, which starts the supervisor again."""
        assert launcher.supervisor(self.config).stop() is not None

    def healthy(self) -> bool:
        return all(row.up for row in launcher.status(self.config))

    def heal(self) -> None:
        """Back to everything up and every node serving, whatever a test left behind."""
        for node in self.database().cluster.nodes:  # type: ignore[union-attr]
            if node.is_running():
                node.resume()
        try:
            self.up()
        except StackError:
            self.up()  # a node killed a moment ago may still be in the survivors' view: once more
        if not wait_until(self.healthy, 60, interval=0.2):
            raise AssertionError("\n".join(str(r) for r in launcher.status(self.config)))

    def node_config(self, first: int, **mariadb: Any) -> Config:
        """The stack's config with node `first` (0-based) first in the list: a service pinned to it."""
        nodes = self.config.mariadb.nodes
        order = nodes[first:] + nodes[:first]
        return replace(self.config, mariadb=replace(self.config.mariadb, nodes=order, **mariadb))

    def connect(self, node: DatabaseNode | int, **options: Any) -> pymysql.connections.Connection:
        """The application user on one node, straight over TCP (no service in between)."""
        address = self.config.mariadb.nodes[node] if isinstance(node, int) else node
        db = self.config.mariadb
        return pymysql.connect(host=address.host, port=address.port, user=db.user, password=db.password(),
                               database=db.database, autocommit=True, connect_timeout=5, read_timeout=30,
                               ssl_disabled=True, **options)

    def query(self, node: int, sql: str, args: Any = None, *, sync_wait: int = 1) -> list[tuple]:
        conn = self.connect(node)
        try:
            with conn.cursor() as cur:
                cur.execute("SET SESSION wsrep_sync_wait = %s", (sync_wait,))
                cur.execute(sql, args)
                return list(cur.fetchall())
        finally:
            conn.close()


def cluster_stack(root: Path) -> ClusterStack:
    """The stack of a cluster config under `root`, not started yet."""
    path = cluster_config_file(root)
    return ClusterStack(path, load_config(path, env={}))

