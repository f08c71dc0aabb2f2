"""The launcher's database unit: one plain mariadbd, or a Galera cluster of the nodes of `mariadb.nodes`.

One node is today's server (`.stack/mariadb`, `run/mariadb.pid`). Several are a `GaleraCluster`
(stack/galera.py) under `<data_dir>/galera/nN`, pid files `run/mariadb-nN.pid`, logs `logs/mariadb-nN.log`:
- `start()` does what the data calls for: from nothing, node 1 is seeded and its copy given to the others
  (no state transfer), then all join; from stopped data, the node that stopped last (`safe_to_bootstrap`)
  bootstraps and the others join by IST; a node that was killed rejoins by IST at its recovered position.
  A lone survivor without quorum whose peers are gone (their pids dead: they all run on this machine) is
  made the new primary component first; with several survivors out of quorum it refuses and says why.
- `stop()` stops the nodes one at a time by pid, node 1 last, so node 1 is the one safe to bootstrap.
- `rows()`: one status line per node (Synced/Donor/Joining..., cluster size, Primary), `up` only when it
  serves.
The cluster's own accounts: the SST user `cachegate_sst` (mariabackup, only as the fallback state transfer)
and the replication user of the invalidator (`invalidator.user`, reads the binary log), their passwords in
`<data_dir>/secrets/db-sst-password` and `invalidator.password_file` (made on the first start, never
replaced).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cachegate.config import Config
from stack.galera import Account, GaleraCluster, NodeAddress, NodeStart, NodeStatus
from stack.keys import ensure_secret
from stack.mariadb import MariaDBServer
from stack.process import StackError

SST_USER, CDC_USER = "cachegate_sst", "cachegate_cdc"
# Never written to a node's my.cnf: a cluster built only for status or stop writes no file.
_UNUSED = Account("unused", "unused")


@dataclass(frozen=True)
class NodeRow:
    """A status line of one node, shaped like the launcher's rows; `up` only while the node serves."""
    name: str
    pid: int | None
    host: str
    port: int
    state: str
    serving: bool

    @property
    def up(self) -> bool:
        return self.serving

    def __str__(self) -> str:
        return f"{self.name:<8} pid {self.pid or '-':>7}  {self.host}:{self.port:<5}  {self.state}"


def sst_password_file(config: Config) -> Path:
    return config.stack.data_dir / "secrets" / "db-sst-password"


def cdc_password_file(config: Config) -> Path:
    return cdc_account(config)[1]


def cdc_account(config: Config) -> tuple[str, Path]:
    """The replication user and its password file: the invalidator's (invalidator.user, password_file)."""
    settings = config.invalidator
    if settings is not None and settings.password_file is not None:
        return settings.user, settings.password_file
    return CDC_USER, config.stack.data_dir / "secrets" / "db-cdc-password"


class DatabaseUnit:
    """The database as one unit of the launcher (pid, port, start, stop, is_running), whatever its shape."""

    def __init__(self, config: Config) -> None:
        self.config = config
        data = config.stack.data_dir
        self.logs, self.run = data / "logs", data / "run"
        db = config.mariadb
        self.port = db.port
        self.server: MariaDBServer | None = None
        self.cluster: GaleraCluster | None = None
        self.started: list[NodeStart] = []  # what the last start() did, node by node
        if db.cluster:
            self.cluster = self._cluster(_UNUSED, _UNUSED, _UNUSED)
        else:
            self.server = MariaDBServer(data / "mariadb", db.host, db.port, pid_path=self.run / "mariadb.pid",
                                        log_path=self.logs / "mariadb.log")

    @property
    def pid(self) -> int | None:
        """The plain server's pid, or the first running node's."""
        if self.server is not None:
            return self.server.pid
        return next((n.pid for n in self._nodes() if n.pid is not None), None)

    @property
    def pids(self) -> list[int]:
        """Every running node's pid (the plain server's alone)."""
        if self.server is not None:
            return [self.server.pid] if self.server.pid is not None else []
        return [n.pid for n in self._nodes() if n.pid is not None]

    def is_running(self) -> bool:
        """Every node runs."""
        if self.server is not None:
            return self.server.is_running()
        return all(n.is_running() for n in self._nodes())

    def start(self) -> bool:
        """Start what is not running (see the module docstring); False when everything ran already."""
        if self.server is not None:
            return self.server.start()
        config = self.config
        self.cluster = self._cluster(Account(config.mariadb.user, config.mariadb.password()),
                                     Account(SST_USER, ensure_secret(sst_password_file(config))),
                                     Account(cdc_account(config)[0],
                                             ensure_secret(cdc_password_file(config))))
        self.started = []
        self._recover_lone_survivor()
        self.started += self.cluster.start()
        return bool(self.started)

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
        elif self.cluster is not None:
            self.cluster.stop()

    def ensure_database(self, database: str, user: str, password: str) -> None:
        """The application's database and user (replicated to every node of a cluster)."""
        if self.server is not None:
            self.server.ensure_database(database, user, password)
        elif self.cluster is not None:
            self.cluster.ensure_database(database, user, password)

    def ensure_replication_user(self, user: str, password: str) -> None:
        """The invalidator's user: only REPLICATION SLAVE and BINLOG MONITOR (on every node of a cluster)."""
        if self.server is not None:
            self.server.ensure_replication_user(user, password)
        elif self.cluster is not None:
            self.cluster.ensure_replication_user(user, password)

    def rows(self) -> list[NodeRow]:
        """One line per node, from its process and (for a cluster) its wsrep status."""
        if self.server is not None:
            pid = self.server.pid
            return [NodeRow("mariadb", pid, self.server.host, self.server.port, "up" if pid else "down",
                            pid is not None)]
        assert self.cluster is not None
        return [_row(status) for status in self.cluster.status().nodes]

    def _nodes(self) -> list:
        assert self.cluster is not None
        return self.cluster.nodes

    def _cluster(self, app: Account, sst: Account, cdc: Account) -> GaleraCluster:
        db = self.config.mariadb
        nodes = [NodeAddress(n.host, n.port, n.gcomm_port, n.ist_port, n.sst_port) for n in db.nodes]
        return GaleraCluster(self.config.stack.data_dir / "galera", nodes, database=db.database, app=app,
                             sst=sst, replication=cdc, run_dir=self.run, log_dir=self.logs)

    def _recover_lone_survivor(self) -> None:
        """One node runs, out of quorum, and every other node's process is gone: make it Primary.

        Safe only because every node of this cluster is a process of this machine: a node whose pid is
        dead cannot be holding a primary component elsewhere."""
        assert self.cluster is not None
        running = [n for n in self.cluster.nodes if n.is_running()]
        if len(running) != 1:
            return
        status = running[0].status()
        if status.cluster_status is not None and status.cluster_status != "Primary":
            self.cluster.recover_quorum(running[0])
        elif status.state is None:
            raise StackError(f"galera {running[0].name} runs (pid {running[0].pid}) but does not answer")


def _row(status: NodeStatus) -> NodeRow:
    name = f"mariadb-{status.name}"
    if not status.up:
        return NodeRow(name, None, status.host, status.port, "down", False)
    if status.state is None:
        return NodeRow(name, status.pid, status.host, status.port, "up, not answering", False)
    serving = (status.cluster_status == "Primary" and bool(status.ready)
               and status.state in ("Synced", "Donor/Desynced"))
    state = (f"{status.state}, cluster size {status.cluster_size}, {status.cluster_status}"
             + ("" if status.ready else ", not ready"))
    return NodeRow(name, status.pid, status.host, status.port, state, serving)
