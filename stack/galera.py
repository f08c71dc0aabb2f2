"""A MariaDB Galera cluster run as plain mariadbd processes: create, bootstrap, join, rejoin, stop, status.

    cluster = GaleraCluster(data_dir, [NodeAddress("127.0.0.1", 3317, 45671, 45681, 45691), ...],
                            database="cachegate", app=Account("cachegate", pw), sst=Account("sst", pw2),
                            replication=Account("cdc", pw3))
    cluster.start()     # -> [NodeStart, ...]: what each node did (bootstrapped / joined, by IST or SST)
    cluster.status()    # -> ClusterStatus: per node pid, state, cluster size, Primary, ready; `.healthy`
    cluster.stop()      # by pid, one at a time; the last one stopped is the node safe to bootstrap

`start()` does whatever the data on disk calls for, then returns once every node is Synced:
- nothing on disk: node 1 is initialised, bootstrapped and given the accounts (the application user for
  `database`, the SST user, the replication user), stopped cleanly, and its datadir is copied to the others
  ("seed and clone": no state transfer at all). Then as below.
- every node stopped: the node whose grastate.dat says `safe_to_bootstrap: 1` bootstraps; when none does (all
  crashed), `mariadbd --wsrep-recover` gives each node's last committed seqno and the highest one is marked
  safe and bootstraps. A node with no data yet gets a copy of that node's datadir first.
- some nodes run: each node that is down joins, one at a time. A node that crashed (grastate seqno -1) is
  first recovered and started at its recovered position, so it catches up by IST, not by a full copy (SST).
Faults for tests: `kill(node)` (SIGKILL), `pause(node)`/`resume(node)` (SIGSTOP/SIGCONT), and after a loss of
quorum `recover_quorum(survivor)` (`pc.bootstrap=YES`), then `start()` rejoins the others.

Also: `stop_node(node)` (one clean stop), `node(name)`, `ensure_accounts()`, and `ensure_database(db, user,
password)` as on `MariaDBServer` (any DDL runs on one Synced node and replicates). `start()` answers an empty
list when everything ran already, so "started" / "already running" reads as with the other servers.

Each node's folder `data_dir/nN` holds its my.cnf, data/, tmp/, sst_log_archive/ and, unless `run_dir` and
`log_dir` are given, its pid file and logs. Root reaches a node over its unix socket; applications over TCP.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import pymysql

from stack.galera_conf import (Account, ClusterSettings, GraState, NodeAddress, Position, parse_recovered,
                               read_grastate, render_cnf, set_safe_to_bootstrap)
from stack.mariadb import MariaDBServer
from stack.net import port_open
from stack.process import StackError, log_tail, send_signal, spawn, wait_until

__all__ = ["Account", "ClusterSettings", "ClusterStatus", "GaleraCluster", "GaleraNode", "NodeAddress",
           "NodeStart", "NodeStatus"]

BOOTSTRAP_TIMEOUT = 60.0
# A joiner that needs a full copy (SST) of a big datadir takes long; a failed one exits and is seen at once.
JOIN_TIMEOUT = 600.0
RECOVER_TIMEOUT = 120.0
QUORUM_TIMEOUT = 30.0
# Longer than evs.inactive_timeout, after which the survivors have evicted a dead node.
EVICT_TIMEOUT = 15.0
_STATUS_VARS = ("wsrep_local_state_comment", "wsrep_cluster_size", "wsrep_cluster_status", "wsrep_ready")
# User names go into SQL as identifiers, which cannot be parameters: allow only these.
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")
# What a joiner's error log says about how it got the cluster's state. The SST script runs for an IST too
# (the donor then bypasses the copy), so only its own words tell the two apart.
_SST_MARK = re.compile(r"Proceeding with SST|SST completed on joiner")
_IST_MARK = re.compile(r"Receiving IST|IST received|IST completed on joiner")


@dataclass(frozen=True)
class NodeStart:
    """What `start()` did to one node: how it came up, how it got the data (IST, SST or none), how long."""
    node: str
    how: str
    transfer: str
    seconds: float
    position: str | None = None

    def __str__(self) -> str:
        at = f" at {self.position}" if self.position else ""
        return f"{self.node}: {self.how}{at}, state transfer: {self.transfer}, {self.seconds:.1f}s"


@dataclass(frozen=True)
class NodeStatus:
    """One node as its process and its wsrep status show it; wsrep fields are None when it did not answer."""
    name: str
    host: str
    port: int
    pid: int | None
    state: str | None = None
    cluster_size: int | None = None
    cluster_status: str | None = None
    ready: bool | None = None

    @property
    def up(self) -> bool:
        return self.pid is not None

    @property
    def synced(self) -> bool:
        """Up, Synced, in the Primary component and accepting queries."""
        return self.up and self.state == "Synced" and self.cluster_status == "Primary" and bool(self.ready)

    def __str__(self) -> str:
        if not self.up:
            return f"{self.name:<8} pid {'-':>7}  {self.host}:{self.port:<5}  down"
        if self.state is None:
            return f"{self.name:<8} pid {self.pid:>7}  {self.host}:{self.port:<5}  up, not answering"
        ready = "ready" if self.ready else "not ready"
        return (f"{self.name:<8} pid {self.pid:>7}  {self.host}:{self.port:<5}  {self.state}, "
                f"cluster size {self.cluster_size}, {self.cluster_status}, {ready}")


@dataclass(frozen=True)
class ClusterStatus:
    nodes: tuple[NodeStatus, ...]

    @property
    def healthy(self) -> bool:
        """Every node up, Synced and ready in one Primary component that holds them all."""
        return all(n.synced and n.cluster_size == len(self.nodes) for n in self.nodes)

    def __str__(self) -> str:
        return "\n".join(str(n) for n in self.nodes)


class GaleraNode(MariaDBServer):
    """One mariadbd of a Galera cluster; `bootstrap()` starts a new primary component, `join()` joins one."""

    def __init__(self, index: int, folder: Path, peers: Sequence[NodeAddress], settings: ClusterSettings,
                 sst: Account, *, pid_path: Path | None = None, log_path: Path | None = None) -> None:
        self.address = peers[index]
        super().__init__(folder, self.address.host, self.address.port, pid_path=pid_path, log_path=log_path)
        self.index = index
        self.name = f"n{index + 1}"
        self.peers = tuple(peers)
        self.settings = settings
        self.sst = sst
        self.grastate_path = self.datadir / "grastate.dat"
        self.recover_log_path = self.log_path.with_name(self.log_path.stem + "-recover.log")

    def __repr__(self) -> str:
        return f"GaleraNode({self.name} {self.host}:{self.port}, pid={self.pid})"

    def grastate(self) -> GraState | None:
        return read_grastate(self.grastate_path)

    def last_position(self) -> Position | None:
        """Where this stopped node's data ends: grastate.dat after a clean stop, else `--wsrep-recover`."""
        state = self.grastate()
        if state is not None and state.position.known:
            return state.position
        return self.recover_position() if self.is_initialized() else None

    def recover_position(self) -> Position | None:
        """Run `mariadbd --wsrep-recover` (InnoDB recovery, then exit) and read the position it logs."""
        if self.is_running():
            raise StackError(f"galera {self.name}: cannot recover the position of a running node")
        self._write_cnf()
        offset = _size(self.recover_log_path)
        with open(self.recover_log_path, "ab") as log:
            result = subprocess.run(
                [_binary("mariadbd"), f"--defaults-file={self.cnf_path}", "--wsrep-recover",
                 f"--log-error={self.recover_log_path}", f"--pid-file={self.data_dir / 'recover.pid'}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=RECOVER_TIMEOUT, cwd=self.data_dir)
        text = _read_from(self.recover_log_path, offset)
        if result.returncode != 0:
            raise StackError(f"galera {self.name}: --wsrep-recover failed (exit {result.returncode}):\n"
                             + "\n".join(text.splitlines()[-20:]))
        found = parse_recovered(text)
        return found if found is not None and found.known else None

    def bootstrap(self, how: str = "bootstrapped a new primary component",
                  position: Position | None = None) -> NodeStart:
        """Start as the first node of a new primary component (`--wsrep-new-cluster`): its data wins."""
        args = ["--wsrep-new-cluster"]
        return self._launch(args, how, position, BOOTSTRAP_TIMEOUT)

    def join(self, position: Position | None = None) -> NodeStart | None:
        """Join the running cluster and wait until Synced; None (nothing done) when it runs already.

        A node that was not stopped cleanly starts at its recovered position, which lets a donor send only
        the missing write-sets (IST); a node with no data at all is sent a full copy (SST).
        """
        if self.is_running():
            return None
        return self._launch([], "joined", position, JOIN_TIMEOUT)

    def start(self) -> bool:
        """Join the running cluster (the launcher's unit interface); False when it runs already."""
        return self.join() is not None

    def pause(self) -> None:
        """SIGSTOP: the process holds its ports but answers nothing, as a hung machine would."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def wsrep_status(self) -> dict[str, str] | None:
        """The wsrep status variables (lower-case names); None when the node does not answer within ~2 s."""
        try:
            # read_timeout: a node in a membership stall, or SIGSTOPped, would block a status query forever.
            conn = pymysql.connect(unix_socket=str(self.socket_path), user="root", connect_timeout=1,
                                   read_timeout=2, write_timeout=2, autocommit=True, ssl_disabled=True)
        except (pymysql.MySQLError, OSError):
            return None
        try:
            with conn.cursor() as cur:
                # A status query must not wait for the cluster (wsrep_sync_wait), nor fail without quorum.
                cur.execute("SET SESSION wsrep_sync_wait = 0")
                cur.execute("SHOW GLOBAL STATUS WHERE Variable_name IN %s", (_STATUS_VARS,))
                return {str(name).lower(): str(value) for name, value in cur.fetchall()}
        except (pymysql.MySQLError, OSError):
            return None
        finally:
            conn.close()

    def status(self) -> NodeStatus:
        pid = self.pid
        found = self.wsrep_status() if pid is not None else None
        if not found:
            return NodeStatus(self.name, self.host, self.port, pid)
        size = found.get("wsrep_cluster_size", "")
        return NodeStatus(self.name, self.host, self.port, pid, found.get("wsrep_local_state_comment"),
                          int(size) if size.isdigit() else None, found.get("wsrep_cluster_status"),
                          found.get("wsrep_ready", "").upper() == "ON")

    def _signal(self, sig: signal.Signals) -> None:
        pid = self.pid
        if pid is None:
            raise StackError(f"galera {self.name} is not running")
        send_signal(pid, sig)

    def _launch(self, args: list[str], how: str, position: Position | None, timeout: float) -> NodeStart:
        if self.is_running():
            raise StackError(f"galera {self.name} runs already (pid {self.pid})")
        a = self.address
        for port in (a.port, a.gcomm_port, a.ist_port, a.sst_port):
            if port_open(self.host, port):
                raise StackError(f"galera {self.name}: {self.host}:{port} is already taken by another "
                                 "process")
        if len(str(self.socket_path).encode()) > 107:
            raise StackError(f"galera {self.name}: socket path too long for a unix socket (max 107 bytes): "
                             f"{self.socket_path}")
        began = time.monotonic()
        self._write_cnf()
        self.datadir.mkdir(exist_ok=True)  # an empty datadir is filled by SST
        state = self.grastate()
        # grastate.dat says seqno -1 while the node runs, so also after a crash; a fresh datadir has none.
        if position is None and self.is_initialized() and state is not None and not state.position.known:
            position = self.recover_position()
        if position is not None:
            args = args + [f"--wsrep-start-position={position}"]
        offset = _size(self.log_path)
        # --defaults-file must come first, or mariadbd also reads /etc/mysql.
        self._popen = spawn([_binary("mariadbd"), f"--defaults-file={self.cnf_path}", *args],
                            self.stdout_path, cwd=self.data_dir)
        popen = self._popen
        wait_until(lambda: popen.poll() is not None or self.status().synced, timeout, interval=0.1)
        if popen.poll() is not None:
            self._popen = None
            raise StackError(f"galera {self.name}: mariadbd exited with code {popen.returncode}:\n"
                             f"{_errors(_read_from(self.log_path, offset))}{log_tail(self.log_path)}\n"
                             f"{log_tail(self.stdout_path, 5)}")
        if not self.status().synced:
            self.stop()
            raise StackError(f"galera {self.name} was not Synced within {timeout:.0f}s:\n"
                             f"{_errors(_read_from(self.log_path, offset))}{log_tail(self.log_path)}")
        return NodeStart(self.name, how, _transfer(_read_from(self.log_path, offset)),
                         time.monotonic() - began, str(position) if position else None)

    def _write_cnf(self) -> None:
        # Called by MariaDBServer.init() too, so mariadb-install-db sees the same file.
        for folder in (self.data_dir, self.data_dir / "tmp", self.data_dir / "sst_log_archive",
                       self.pid_path.parent, self.log_path.parent):
            folder.mkdir(parents=True, exist_ok=True)
        text = render_cnf(self.index, self.data_dir, self.peers, self.settings, sst=self.sst,
                          pid_path=self.pid_path, log_path=self.log_path)
        # It holds the SST password: readable by its owner only.
        fd = os.open(self.cnf_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        os.chmod(self.cnf_path, 0o600)


class GaleraCluster:
    """The nodes of one Galera cluster, each a plain mariadbd with its folder under `data_dir`."""

    def __init__(self, data_dir: Path, nodes: Sequence[NodeAddress], *, database: str, app: Account,
                 sst: Account, replication: Account | None = None, settings: ClusterSettings | None = None,
                 run_dir: Path | None = None, log_dir: Path | None = None) -> None:
        if len(nodes) < 1:
            raise StackError("galera: a cluster needs at least one node")
        for account in (app, sst, replication):
            if account is not None and not _NAME.fullmatch(account.user):
                raise StackError(f"galera: user name {account.user!r} must match {_NAME.pattern}")
        if not _NAME.fullmatch(database):
            raise StackError(f"galera: database name {database!r} must match {_NAME.pattern}")
        self.data_dir = Path(data_dir)
        self.database = database
        self.app = app
        self.sst = sst
        self.replication = replication
        self.settings = settings or ClusterSettings()
        self.nodes = [
            GaleraNode(i, self.data_dir / f"n{i + 1}", nodes, self.settings, sst,
                       pid_path=Path(run_dir) / f"mariadb-n{i + 1}.pid" if run_dir else None,
                       log_path=Path(log_dir) / f"mariadb-n{i + 1}.log" if log_dir else None)
            for i in range(len(nodes))]

    def __repr__(self) -> str:
        return f"GaleraCluster({', '.join(repr(n) for n in self.nodes)})"

    def node(self, which: GaleraNode | str | int) -> GaleraNode:
        """A node by itself, by name (`n2`) or by 0-based index."""
        if isinstance(which, GaleraNode) and which in self.nodes:
            return which
        for i, node in enumerate(self.nodes):
            if which == node.name or which == i:
                return node
        raise StackError(f"galera: no node {which!r}; known: {', '.join(n.name for n in self.nodes)}")

    def is_running(self) -> bool:
        return any(n.is_running() for n in self.nodes)

    def start(self) -> list[NodeStart]:
        """Bring every node up and Synced, from whatever is on disk (see the module docstring).

        Returns what was done per node; an empty list when every node was running already.
        """
        done: list[NodeStart] = []
        if not self.is_running():
            began = time.monotonic()
            fresh = not any(n.is_initialized() for n in self.nodes)
            if fresh:
                self._seed(self.nodes[0])
                first, how, position = self.nodes[0], "bootstrapped a new cluster", None
            else:
                first, how, position = self._choose_bootstrap()
            self._clone_into_empty(first)
            started = first.bootstrap(how, position)
            if not fresh:
                # The accounts are in the data already; this mends a cluster whose seed was cut short.
                self.ensure_accounts(first)
            done.append(NodeStart(started.node, started.how, started.transfer, time.monotonic() - began,
                                  started.position))
        # One at a time: joiners started together make the group membership thrash.
        for node in self.nodes:
            if node.is_running():
                continue
            self._wait_for_primary_view()
            joined = node.join()
            if joined is not None:
                done.append(joined)
        return done

    def stop(self) -> None:
        """Stop every node by pid, one at a time; the last one stopped leaves `safe_to_bootstrap: 1`.

        Nodes outside the Primary component go first; of the rest, node 1 goes last, so a later `start()`
        usually bootstraps from it. (Without a Primary component no node is marked safe; `start()` then
        finds the most advanced one by `--wsrep-recover`.)
        """
        running = [n for n in self.nodes if n.is_running()]
        primary = {n.name for n in running if n.status().cluster_status == "Primary"}
        for node in sorted(running, key=lambda n: (n.name in primary, -n.index)):
            node.stop()

    def stop_node(self, which: GaleraNode | str | int) -> None:
        """Stop one node cleanly (the others keep the cluster); it rejoins by IST on the next `start()`."""
        self.node(which).stop()

    def status(self) -> ClusterStatus:
        return ClusterStatus(tuple(n.status() for n in self.nodes))

    def kill(self, which: GaleraNode | str | int) -> None:
        """SIGKILL one node by its pid, as a crash would."""
        node = self.node(which)
        if node.pid is None:
            raise StackError(f"galera {node.name} is not running")
        node.kill()

    def pause(self, which: GaleraNode | str | int) -> None:
        self.node(which).pause()

    def resume(self, which: GaleraNode | str | int) -> None:
        self.node(which).resume()

    def recover_quorum(self, which: GaleraNode | str | int) -> None:
        """Make a survivor without quorum (non-Primary) the new primary component (`pc.bootstrap=YES`).

        Only for when the other nodes are really gone: it is refused while another node is Primary, which
        would split the cluster in two. Then `start()` rejoins the others to it.
        """
        survivor = self.node(which)
        if not survivor.is_running():
            raise StackError(f"galera {survivor.name} is not running")
        others = [n.status() for n in self.nodes if n is not survivor]
        if any(s.cluster_status == "Primary" for s in others):
            raise StackError("galera: another node is still Primary; "
                             f"bootstrapping {survivor.name} would split the cluster")
        survivor.root_execute("SET GLOBAL wsrep_provider_options = 'pc.bootstrap=YES'")
        if not wait_until(lambda: survivor.status().synced, QUORUM_TIMEOUT, interval=0.1):
            raise StackError(f"galera {survivor.name} did not become Primary within {QUORUM_TIMEOUT:.0f}s:\n"
                             f"{log_tail(survivor.log_path)}")

    def ensure_accounts(self, on: GaleraNode | None = None) -> None:
        """Create (or update) the application, SST and replication accounts; DDL replicates to every node."""
        node = on or self._synced_node()
        node.ensure_database(self.database, self.app.user, self.app.password)
        statements: list[tuple[str, Sequence[str] | None]] = []
        # mariabackup logs in over the donor's unix socket.
        grants = [(self.sst, ("localhost",), "RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, REPLICA MONITOR")]
        if self.replication is not None:
            # A change-data-capture client reads the binary log over TCP and needs nothing else.
            grants.append((self.replication, ("127.0.0.1", "localhost"), "REPLICATION SLAVE, BINLOG MONITOR"))
        for account, hosts, privileges in grants:
            for host in hosts:
                statements += [
                    (f"CREATE USER IF NOT EXISTS '{account.user}'@'{host}' IDENTIFIED BY %s",
                     (account.password,)),
                    (f"ALTER USER '{account.user}'@'{host}' IDENTIFIED BY %s", (account.password,)),
                    (f"GRANT {privileges} ON *.* TO '{account.user}'@'{host}'", None)]
        node.root_execute_many(statements)

    def ensure_replication_user(self, user: str, password: str) -> None:
        """A replication user as `MariaDBServer.ensure_replication_user` (replicated to every node)."""
        self._synced_node().ensure_replication_user(user, password)

    def ensure_database(self, database: str, user: str, password: str) -> None:
        """Another database and its user, as `MariaDBServer.ensure_database` (replicated to every node)."""
        self._synced_node().ensure_database(database, user, password)

    def _wait_for_primary_view(self) -> None:
        """Wait (boundedly) until the running nodes agree on a Primary view without the dead ones.

        A node restarted at once after a crash, while the others still counted its dead self, made the
        membership churn for 8-14 s in our runs; once they have dropped it (~3 s), it joins in 2-4 s.
        Without any Primary node there is nothing to join: that takes `recover_quorum()` first.
        """
        def settled() -> bool:
            answering = [s for s in (n.status() for n in self.nodes if n.is_running()) if s.state is not None]
            return bool(answering) and all(s.cluster_size == len(answering) and s.cluster_status == "Primary"
                                           for s in answering)
        if wait_until(settled, EVICT_TIMEOUT, interval=0.2):
            return
        if not any(s.cluster_status == "Primary" for s in self.status().nodes):
            raise StackError("galera: no running node is in a Primary component (quorum lost); make the "
                             "most advanced survivor Primary with recover_quorum(), then start again:\n"
                             f"{self.status()}")

    def _synced_node(self) -> GaleraNode:
        for node in self.nodes:
            if node.status().synced:
                return node
        raise StackError("galera: no node is Synced in a Primary component")

    def _seed(self, first: GaleraNode) -> None:
        """A new cluster's data: node 1 initialised, bootstrapped once for its accounts, stopped cleanly."""
        first.init()
        first.bootstrap()
        self.ensure_accounts(first)
        first.stop()
        state = first.grastate()
        if state is None or not state.safe_to_bootstrap:
            raise StackError(f"galera {first.name}: no safe_to_bootstrap after a clean stop:\n"
                             f"{log_tail(first.log_path)}")

    def _choose_bootstrap(self) -> tuple[GaleraNode, str, Position | None]:
        """The stopped node with the newest data: the one marked safe, else the highest recovered seqno."""
        candidates = [n for n in self.nodes if n.is_initialized()]
        states = {n.name: n.grastate() for n in candidates}
        safe = [n for n in candidates if (s := states[n.name]) is not None and s.safe_to_bootstrap]
        if safe:
            return safe[0], "bootstrapped (safe_to_bootstrap: 1)", None
        positions = {n.name: n.last_position() for n in candidates}
        known = [n for n in candidates if positions[n.name] is not None]
        if not known:
            # Never part of a cluster (a seed that failed before its first bootstrap): nothing to lose.
            return candidates[0], "bootstrapped (no saved position on any node)", None
        uuids = {positions[n.name].uuid for n in known}
        if len(uuids) > 1:
            found = ", ".join(f"{n.name} {positions[n.name]}" for n in known)
            raise StackError(f"galera: the nodes' data belong to different clusters ({found}); "
                             f"remove the datadirs of the wrong ones under {self.data_dir}")
        # max() keeps the first of equals: with a tie, the lowest-numbered node.
        first = max(known, key=lambda n: positions[n.name].seqno)
        if first.grastate_path.exists():
            set_safe_to_bootstrap(first.grastate_path, True)
        position = positions[first.name]
        return first, f"bootstrapped (highest recovered seqno {position.seqno})", position

    def _clone_into_empty(self, source: GaleraNode) -> None:
        """Give each node without data a copy of the stopped `source` datadir, so it needs no SST."""
        for node in self.nodes:
            if node is source or node.is_initialized():
                continue
            shutil.rmtree(node.datadir, ignore_errors=True)
            # gvwstate.dat holds the source's gcomm identity, galera.cache is rebuilt by each node.
            shutil.copytree(source.datadir, node.datadir, symlinks=True,
                            ignore=shutil.ignore_patterns("gvwstate.dat", "galera.cache"))
            if node.grastate_path.exists():
                set_safe_to_bootstrap(node.grastate_path, False)


def _binary(name: str) -> str:
    # mariadbd lives in /usr/sbin, which a non-login PATH may lack.
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise StackError(f"{name} is not installed (apt-get install mariadb-server galera-4)")
    return found


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _read_from(path: Path, offset: int) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def _errors(log: str, lines: int = 10) -> str:
    """The [ERROR] lines of a log excerpt (they say why a node gave up; the tail often does not)."""
    found = [line for line in log.splitlines() if "[ERROR]" in line][-lines:]
    return "".join(line + "\n" for line in found)


def _transfer(log: str) -> str:
    """How a node that just started got the cluster's state, from what its error log says."""
    if _SST_MARK.search(log):
        return "SST"
    if _IST_MARK.search(log):
        return "IST"
    return "none"
