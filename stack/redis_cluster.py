"""A Redis Cluster of plain redis-server processes, one folder each, created, started and stopped by pid.

    cluster = RedisCluster(data_dir, "127.0.0.1", ports=[...6 ports...], replicas=1, users=users)
    cluster.start()            # "created", "restarted" or "running"; returns once the cluster is healthy
    cluster.status()           # ClusterStatus: per node pid, up, role, master followed, slots, cluster_state
    cluster.startup_nodes      # [(host, port), ...] for redis-py's RedisCluster(startup_nodes=...)
    cluster.kill(port)         # SIGKILL one node, as a crash; pause(port) / resume(port): SIGSTOP / SIGCONT
    cluster.stop()             # every node by pid, replicas first; no process is left

`len(ports)` nodes make `len(ports) // (1 + replicas)` masters (at least 3, as Redis Cluster needs), each
with `replicas` replicas. Each node is a `RedisServer` (not daemonized, pid tracked) in `data_dir/<port>/`:
`redis.conf` (mode 0600), `nodes.conf` (the cluster's own state, which Redis writes), `redis.log`,
`redis.pid`. Its cluster bus listens on `bus_ports[i]` (default port + 10000), so tests can pass free ports.

What every node runs with:
- the stack's ACL users (`RedisUsers`: the gateway's user, the admin, `default` off), as a single Redis;
- a replication user (`replication`: PSYNC, REPLCONF and PING only) that replicas log in to their master
  with (`masteruser`/`masterauth`). Its password is derived from the admin's, so every node and every
  restart agrees on it without another secret file, and the clear-text `masterauth` in the conf grants no
  more than a replica needs (the gateway's and the admin's passwords stay hashes);
- no persistence: no RDB snapshots, no AOF, and replicas load the master's data from the socket
  (`repl-diskless-load swapdb`), so no `dump.rdb` is ever written. A node that restarts comes back empty;
- `cluster-announce-ip`, `repl-diskless-sync-delay 0` (else replicas link up ~5 s after a create or a
  rejoin), `cluster-node-timeout` (default 1000 ms: a failover within ~2.5 s on loopback),
  `cluster-require-full-coverage no` by default: with a master down and no replica to promote, only the
  keys of its slots fail, the other masters keep serving;
- `maxmemory` (bytes, 0 = no limit) and `maxmemory-policy` (default `noeviction`: a full node refuses
  writes, which the gateway counts as Redis unavailable, rather than evicting a key the store relies on).

`start()`:
- from nothing (no node runs, no saved cluster): starts every node, runs `redis-cli --cluster create`
  as the admin, then waits until every node reports `cluster_state:ok`, knows every node and flags none as
  failing, the masters claim all 16384 slots, and every replica's link to its master is up;
- when some nodes run: starts the others with their `nodes.conf`, so they rejoin (a killed master whose
  replica was promoted meanwhile comes back as that replica's replica; one restarted before the failover,
  or one without a replica, comes back as the master of its slots, empty), and waits for the same
  state. It never recreates a cluster one of whose nodes still runs: that node holds the cache's data. A
  stopped node without a saved cluster (its folder wiped) is refused with an error that says so;
- when no node runs but each one's `nodes.conf` lists this very cluster: restarts them from it; if that
  does not come back healthy within `RECOVER_TIMEOUT`, or the saved files do not match the ports given,
  the saved state is removed and the cluster created again. With no persistence every key died with the
  processes, so a new cluster loses nothing.
"""
from __future__ import annotations

import hashlib
import hmac
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Callable, Sequence

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from stack.net import loopback
from stack.process import StackError, wait_until
from stack.redis import RedisServer, _quote
from stack.redis_acl import ADMIN_USER, RedisUsers
from stack.redis_cluster_status import ClusterStatus, NodeStatus, parse_cluster_nodes, parse_info

REPLICATION_USER = "replication"
CREATE_TIMEOUT = 60.0
READY_TIMEOUT = 30.0
RECOVER_TIMEOUT = 15.0
STATUS_TIMEOUT = 0.5  # per node: a paused node must not hold status() up for long
_ANSI = re.compile(r"\x1b\[[0-9;]*m")  # redis-cli colours its output even into a pipe


def replication_password(users: RedisUsers) -> str:
    """The replication user's password: a keyed hash of the admin's, the same on every node and restart."""
    return hmac.new(users.admin_password.encode(), b"cachegate redis replication",
                    hashlib.sha256).hexdigest()


class ClusterNodeServer(RedisServer):
    """One node: the single server's conf (ACL users, no persistence) with the cluster's own lines."""

    def __init__(self, data_dir: Path, host: str, port: int, *, bus_port: int, users: RedisUsers,
                 announce_ip: str, node_timeout_ms: int, require_full_coverage: bool, maxmemory: int,
                 maxmemory_policy: str, pid_path: Path | None = None, log_path: Path | None = None) -> None:
        super().__init__(data_dir, host, port, users=users, pid_path=pid_path, log_path=log_path)
        self.bus_port = bus_port
        self.announce_ip = announce_ip
        self.node_timeout_ms = node_timeout_ms
        self.require_full_coverage = require_full_coverage
        self.maxmemory = maxmemory
        self.maxmemory_policy = maxmemory_policy
        self.nodes_conf_path = self.data_dir / "nodes.conf"

    def __repr__(self) -> str:
        return f"ClusterNodeServer({self.address}, pid={self.pid})"

    @property
    def address(self) -> str:
        return f"{self.announce_ip}:{self.port}"

    @property
    def bus_address(self) -> str:
        """How nodes.conf and CLUSTER NODES name this node: host:port@bus."""
        return f"{self.address}@{self.bus_port}"

    def saved_cluster(self) -> frozenset[str]:
        """The nodes (host:port@bus) this node's nodes.conf lists; empty when it has none.

        Redis writes nodes.conf as soon as it starts, with itself alone: a single line is no cluster yet.
        """
        try:
            lines = parse_cluster_nodes(self.nodes_conf_path.read_text())
        except OSError:
            return frozenset()
        if len(lines) < 2:
            return frozenset()
        return frozenset(f"{line.address}@{line.bus_port}" for line in lines)

    def admin(self, timeout: float = STATUS_TIMEOUT) -> redis.Redis:
        """A client as the admin, without retries: a node that does not answer is down for this call."""
        assert self.users is not None
        return redis.Redis(host=loopback(self.host), port=self.port, username=ADMIN_USER,
                           password=self.users.admin_password, socket_timeout=timeout,
                           socket_connect_timeout=timeout, decode_responses=True, retry=Retry(NoBackoff(), 0))

    def state(self) -> NodeStatus:
        """What this node says about itself, in one round trip (CLUSTER INFO, CLUSTER NODES, INFO)."""
        pid = self.pid
        if pid is None:
            return NodeStatus(self.address, None, up=False)
        client = self.admin()
        try:
            pipe = client.pipeline(transaction=False)
            # As two words, redis-py leaves the replies as text (it has its own shapes for "CLUSTER INFO").
            pipe.execute_command("CLUSTER", "INFO")
            pipe.execute_command("CLUSTER", "NODES")
            pipe.execute_command("INFO", "replication")
            cluster_info, nodes_text, replication = pipe.execute()
        except redis.RedisError:
            return NodeStatus(self.address, pid, up=False)
        finally:
            client.close()
        info = parse_info(cluster_info)
        lines = parse_cluster_nodes(nodes_text)
        by_id = {line.node_id: line for line in lines}
        me = next((line for line in lines if "myself" in line.flags), None)
        if me is None:
            return NodeStatus(self.address, pid, up=True, cluster_state=info.get("cluster_state"))
        followed = by_id.get(me.master_id) if me.master_id else None
        return NodeStatus(
            self.address, pid, up=True, node_id=me.node_id,
            role="master" if me.is_master else "replica",
            master=followed.address if followed else None,
            slots=me.slots,
            master_link=replication.get("master_link_status") if not me.is_master else None,
            cluster_state=info.get("cluster_state"),
            known_nodes=int(info.get("cluster_known_nodes", 0)),
            in_trouble=tuple(sorted(line.address for line in lines if line.in_trouble)),
            failed=tuple(sorted(line.address for line in lines if "fail" in line.flags)),
            links_down=tuple(sorted(line.address for line in lines
                                    if line is not me and line.link != "connected")))

    def _conf(self) -> str:
        assert self.users is not None
        # The single server's lines, its memory limit replaced by this node's.
        lines = [line for line in super()._conf().splitlines() if line and not line.startswith("maxmemory ")]
        return "\n".join([
            *lines,
            f"maxmemory {self.maxmemory}",
            f"maxmemory-policy {self.maxmemory_policy}",
            f"user {REPLICATION_USER} reset on #{_sha256(replication_password(self.users))} "
            "-@all +psync +replconf +ping",
            f"masteruser {REPLICATION_USER}",
            f"masterauth {replication_password(self.users)}",
            "cluster-enabled yes",
            f"cluster-config-file {_quote(self.nodes_conf_path)}",
            f"cluster-port {self.bus_port}",
            f"cluster-node-timeout {self.node_timeout_ms}",
            f"cluster-announce-ip {self.announce_ip}",
            f"cluster-require-full-coverage {'yes' if self.require_full_coverage else 'no'}",
            "repl-diskless-sync yes",
            "repl-diskless-sync-delay 0",
            "repl-diskless-load swapdb",
            "",
        ])


class RedisCluster:
    """Masters x (1 + replicas) redis-server processes on `host`, one folder each under `data_dir`."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", ports: Sequence[int] = (),
                 *, replicas: int = 1, users: RedisUsers, bus_ports: Sequence[int] | None = None,
                 node_timeout_ms: int = 1000, require_full_coverage: bool = False, maxmemory: int = 0,
                 maxmemory_policy: str = "noeviction", announce_ip: str | None = None,
                 pid_dir: Path | None = None, log_dir: Path | None = None) -> None:
        ports = list(ports)
        bus_ports = list(bus_ports) if bus_ports is not None else [p + 10000 for p in ports]
        if replicas < 0 or len(ports) % (1 + replicas) or len(ports) // (1 + replicas) < 3:
            raise ValueError(f"{len(ports)} ports for {replicas} replica(s) per master: a Redis Cluster "
                             f"needs at least 3 masters, each with the same number of replicas")
        if len(bus_ports) != len(ports) or len(set(ports) | set(bus_ports)) != 2 * len(ports):
            raise ValueError("every node needs its own port and its own cluster-bus port")
        if users.gateway_user == REPLICATION_USER:
            raise ValueError(f"the gateway's Redis user cannot be called {REPLICATION_USER}")
        self.data_dir = Path(data_dir)
        self.host = host
        self.replicas = replicas
        self.masters = len(ports) // (1 + replicas)
        self.users = users
        self.announce_ip = announce_ip or loopback(host)
        self.nodes = tuple(
            ClusterNodeServer(
                self.data_dir / str(port), host, port, bus_port=bus, users=users,
                announce_ip=self.announce_ip, node_timeout_ms=node_timeout_ms,
                require_full_coverage=require_full_coverage, maxmemory=maxmemory,
                maxmemory_policy=maxmemory_policy,
                pid_path=Path(pid_dir) / f"redis-{port}.pid" if pid_dir else None,
                log_path=Path(log_dir) / f"redis-{port}.log" if log_dir else None)
            for port, bus in zip(ports, bus_ports))

    def __repr__(self) -> str:
        return f"RedisCluster({', '.join(n.address for n in self.nodes)})"

    @property
    def startup_nodes(self) -> list[tuple[str, int]]:
        """(host, port) of every node: any one that answers lets a cluster client find the others."""
        return [(self.announce_ip, n.port) for n in self.nodes]

    @property
    def urls(self) -> list[str]:
        return [f"redis://{self.announce_ip}:{n.port}" for n in self.nodes]

    def node(self, port: int) -> ClusterNodeServer:
        for n in self.nodes:
            if n.port == port:
                return n
        raise KeyError(f"no node of {self!r} on port {port}")

    def status(self) -> ClusterStatus:
        return ClusterStatus(tuple(n.state() for n in self.nodes), self.masters, self.replicas)

    def is_running(self) -> bool:
        """True when any node's process runs."""
        return any(n.is_running() for n in self.nodes)

    # -- start ----------------------------------------------------------------------------------------

    def start(self) -> str:
        """Start what is not running and return once healthy: "created", "restarted" or "running"."""
        running = [n for n in self.nodes if n.is_running()]
        if not running:
            expected = frozenset(n.bus_address for n in self.nodes)
            if all(n.saved_cluster() == expected for n in self.nodes):
                self._start_nodes()
                if self._wait_healthy(RECOVER_TIMEOUT):
                    return "restarted"
                # No node had data to keep (no persistence): a new cluster loses nothing.
                self.stop()
            self._forget_saved_cluster()
            self._start_nodes()
            self._create()
            return "created"
        if not any(n.saved_cluster() or n.state().known_nodes > 1 for n in running):
            # Nodes run but none has met another (a create that never ran or was interrupted).
            self._start_nodes()
            self._create()
            return "created"
        missing = [n for n in self.nodes if not n.is_running()]
        lost = [n.address for n in missing if not n.saved_cluster()]
        if lost:
            raise StackError(f"redis cluster: {', '.join(lost)} lost its nodes.conf while other nodes run; "
                             f"stop the cluster to create it again")
        self._start_nodes()
        self._wait_healthy_or_fail(READY_TIMEOUT, "rejoin")
        return "restarted" if missing else "running"

    def _start_nodes(self) -> None:
        for n in self.nodes:
            n.start()

    def _forget_saved_cluster(self) -> None:
        for n in self.nodes:
            n.nodes_conf_path.unlink(missing_ok=True)

    def _create(self) -> None:
        """redis-cli --cluster create as the admin (password by environment), then wait until healthy."""
        binary = shutil.which("redis-cli")
        if binary is None:
            raise StackError("redis-cli is not installed (apt-get install redis-tools)")
        argv = [binary, "--user", ADMIN_USER, "--no-auth-warning", "--cluster", "create",
                *(n.address for n in self.nodes), "--cluster-replicas", str(self.replicas), "--cluster-yes"]
        env = {**os.environ, "REDISCLI_AUTH": self.users.admin_password}
        try:
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=CREATE_TIMEOUT,
                                  stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as exc:
            raise StackError(f"redis cluster: `redis-cli --cluster create` took over {CREATE_TIMEOUT:.0f}s:"
                             f"\n{_tail(exc.stdout)}") from exc
        if done.returncode != 0:
            raise StackError(f"redis cluster: `redis-cli --cluster create` failed ({done.returncode}):\n"
                             f"{_tail(done.stdout + done.stderr)}")
        self._wait_healthy_or_fail(READY_TIMEOUT, "create")

    def _wait_healthy(self, timeout: float) -> bool:
        return wait_until(lambda: self.status().healthy, timeout, interval=0.05)

    def _wait_healthy_or_fail(self, timeout: float, what: str) -> None:
        if not self._wait_healthy(timeout):
            status = self.status()
            raise StackError(f"redis cluster not healthy {timeout:.0f}s after {what}: "
                             + "; ".join(status.problems()) + "\n" + "\n".join(status.lines()))

    # -- stop and faults ------------------------------------------------------------------------------

    def stop(self) -> None:
        """Every node by pid (SHUTDOWN NOSAVE as the admin, else SIGTERM, then SIGKILL).

        Replicas go first: a master stopped before its replicas would make them start a failover, and a
        Redis 7 master waits for lagging replicas before it shuts down.
        """
        states = {n.address: n.state() for n in self.nodes}
        for n in sorted(self.nodes, key=lambda n: states[n.address].role != "replica"):
            n.stop()

    def kill(self, port: int) -> None:
        """SIGKILL one node, as a crash: nothing saved, its clients' connections reset."""
        self.node(port).kill()

    def pause(self, port: int) -> None:
        """SIGSTOP one node: its ports still accept connections but nothing answers, not even the bus."""
        self.node(port).pause()

    def resume(self, port: int) -> None:
        self.node(port).resume()

    def wait(self, predicate: Callable[[ClusterStatus], bool],
             timeout: float = READY_TIMEOUT) -> ClusterStatus:
        """Poll status() until `predicate(status)` holds; the last status, whether it held or not."""
        last: list[ClusterStatus] = []

        def check() -> bool:
            last[:] = [self.status()]
            return bool(predicate(last[0]))

        wait_until(check, timeout, interval=0.05)
        return last[0]


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def _tail(output: str | bytes | None, lines: int = 20) -> str:
    if isinstance(output, bytes):
        output = output.decode(errors="replace")
    return "\n".join(_ANSI.sub("", output or "").splitlines()[-lines:])
