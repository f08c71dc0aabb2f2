"""The launcher's Redis unit: one redis-server for `redis.url`, or the Redis Cluster of `redis.cluster.nodes`.

One server is today's (`.stack/redis`, `run/redis.pid`). A cluster is a `RedisCluster`
(stack/redis_cluster.py) under `<data_dir>/redis-cluster/<port>/`, pid files `run/redis-<port>.pid`, logs
`logs/redis-<port>.log`, each node's cluster bus on its port + 10000: `start()` creates it (nodes /
(1 + replicas) masters, the replicas linked) or rejoins the nodes that are down, and returns once every
node reports `cluster_state:ok` and every replica's link is up; `stop()` stops every node by pid, replicas
first; `rows()` is one status line per node: its role, its master or slots, the cluster's state as it
sees it.
"""
from __future__ import annotations

from pathlib import Path

from cachegate.config import Config
from stack.database import NodeRow
from stack.process import StackError
from stack.redis import RedisServer
from stack.redis_acl import RedisUsers
from stack.redis_cluster import RedisCluster
from stack.redis_cluster_status import NodeStatus

BUS_OFFSET = 10000  # a node's cluster-bus port: its port + this (Redis's own default)


def cluster_ports(config: Config) -> list[tuple[str, int]]:
    """Every (host, port) the cluster's nodes listen on: client ports and cluster-bus ports."""
    return [(host, p) for host, port in config.redis.cluster_nodes for p in (port, port + BUS_OFFSET)]


class RedisUnit:
    """Redis as one unit of the launcher (pid, port, start, stop, is_running), whatever its shape."""

    def __init__(self, config: Config, users: RedisUsers | None) -> None:
        data = config.stack.data_dir
        logs, run = data / "logs", data / "run"
        redis = config.redis
        self.server: RedisServer | None = None
        self.cluster: RedisCluster | None = None
        if not redis.cluster:
            self.port = redis.port
            self.server = RedisServer(data / "redis", redis.host, redis.port, users=users,
                                      pid_path=run / "redis.pid", log_path=logs / "redis.log",
                                      maxmemory=redis.maxmemory, maxmemory_policy=redis.maxmemory_policy)
            return
        hosts = {host for host, _ in redis.cluster_nodes}
        if len(hosts) != 1:
            raise StackError(f"redis.cluster.nodes: the launcher starts a cluster on one host, got "
                             f"{', '.join(sorted(hosts))}")
        ports = [port for _, port in redis.cluster_nodes]
        if max(ports) + BUS_OFFSET > 65535:
            raise StackError(f"redis.cluster.nodes: port {max(ports)}'s cluster bus would be past 65535")
        self.port = ports[0]
        # The users are needed to start (and to read status as the admin): a placeholder before `up` makes
        # them, for `status` and `down`, which then only look at pid files.
        self.cluster = RedisCluster(
            data / "redis-cluster", hosts.pop(), ports, replicas=redis.cluster_replicas,
            users=users or RedisUsers("cachegate", "-", "-"), node_timeout_ms=round(redis.cluster_node_timeout
                                                                                  * 1000),
            maxmemory=redis.maxmemory, maxmemory_policy=redis.maxmemory_policy, pid_dir=run, log_dir=logs)
        self._users = users

    @property
    def pid(self) -> int | None:
        """The server's pid, or the first running node's."""
        if self.server is not None:
            return self.server.pid
        assert self.cluster is not None
        return next((n.pid for n in self.cluster.nodes if n.pid is not None), None)

    @property
    def pids(self) -> list[int]:
        if self.server is not None:
            return [self.server.pid] if self.server.pid is not None else []
        assert self.cluster is not None
        return [n.pid for n in self.cluster.nodes if n.pid is not None]

    def is_running(self) -> bool:
        """Every node runs."""
        if self.server is not None:
            return self.server.is_running()
        assert self.cluster is not None
        return all(n.is_running() for n in self.cluster.nodes)

    def start(self) -> bool:
        """Start what is not running; False when everything ran already."""
        if self.server is not None:
            return self.server.start()
        assert self.cluster is not None
        if self._users is None:
            raise StackError("redis: the cluster's users are not made yet (`cachegate up` makes them)")
        return self.cluster.start() != "running"

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        elif self.cluster is not None:
            self.cluster.stop()

    def ping(self) -> bool:
        """The admin's login works (on every node of a cluster)."""
        if self.server is not None:
            return self.server.ping()
        assert self.cluster is not None
        return all(n.ping() for n in self.cluster.nodes)

    def rows(self) -> list[NodeRow]:
        """One line per node of a cluster: its role, its master or slots, and the cluster state it sees."""
        assert self.cluster is not None
        status = self.cluster.status()
        problems = status.problems()
        rows = [_row(node) for node in status.nodes]
        state = "ok" if not problems else f"not ok: {problems[0]}" + (
            f" (+{len(problems) - 1} more)" if len(problems) > 1 else "")
        host = self.cluster.host
        rows.insert(0, NodeRow("redis", None, host, self.port, f"cluster {len(status.masters)} masters, "
                               f"{len(status.replicas)} replicas: {state}", not problems))
        return rows

    @property
    def data_dir(self) -> Path | None:
        return self.cluster.data_dir if self.cluster is not None else None


def _row(node: NodeStatus) -> NodeRow:
    host, _, port = node.address.rpartition(":")
    name = f"redis-{port}"
    if not node.up:
        return NodeRow(name, node.pid, host, int(port), "down" if node.pid is None else "up, not answering",
                       False)
    if node.role == "replica":
        what = f"replica of {node.master}, link {node.master_link}"
    else:
        what = f"master of {sum(b - a + 1 for a, b in node.slots)} slots"
    return NodeRow(name, node.pid, host, int(port), f"{what}, cluster_state:{node.cluster_state}",
                   node.cluster_state == "ok")
