"""A 3-node Galera cluster as plain processes: create, read-your-writes, a killed node, restart, quorum loss.

One cluster serves the whole module (it takes ~10 s to create); every test starts from a healthy cluster and
leaves it running, each with tables of its own.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import pymysql
import pytest

from stack.galera import Account, GaleraCluster, GaleraNode, NodeAddress, NodeStart
from stack.galera_conf import (ClusterSettings, parse_recovered, read_grastate, render_cnf,
                               set_safe_to_bootstrap)
from stack.keys import ensure_secret
from stack.net import free_port, port_open
from stack.process import StackError, pid_alive, wait_until

DATABASE = "galera_test"
# What a joiner's log says when it got a full copy, and when it got only the missing write-sets.
SST_WORDS = ("Proceeding with SST", "mariabackup SST completed on joiner")
IST_WORDS = ("Receiving IST:", "IST received:")


@dataclass
class Galera:
    cluster: GaleraCluster
    app: Account
    replication: Account
    created: list[NodeStart]
    timings: dict[str, float] = field(default_factory=dict)

    def connect(self, node: GaleraNode, account: Account | None = None, *,
                database: str | None = DATABASE) -> pymysql.connections.Connection:
        """A TCP connection as the application (or `account`), the way a service reaches a node."""
        account = account or self.app
        # read_timeout: long enough for a commit stalled by a dead peer (~3 s), short enough to fail a hang.
        return pymysql.connect(host=node.host, port=node.port, user=account.user, password=account.password,
                               database=database, autocommit=True, connect_timeout=5, read_timeout=60)

    def query(self, node: GaleraNode, sql: str, params: tuple = ()) -> list[tuple]:
        conn = self.connect(node)
        try:
            with conn.cursor() as cur:
                cur.execute(sql, params)
                return list(cur.fetchall())
        finally:
            conn.close()


@pytest.fixture(scope="module")
def galera(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Galera]:
    folder = tmp_path_factory.mktemp("galera")
    secrets = folder / "secrets"
    app = Account("galera_app", ensure_secret(secrets / "app"))
    replication = Account("galera_cdc", ensure_secret(secrets / "cdc"))
    nodes = [NodeAddress("127.0.0.1", free_port(), free_port(), free_port(), free_port()) for _ in range(3)]
    sst = Account("galera_sst", ensure_secret(secrets / "sst"))
    cluster = GaleraCluster(folder / "cluster", nodes, database=DATABASE, app=app, sst=sst,
                            replication=replication)
    began = time.monotonic()
    try:
        created = cluster.start()
        found = Galera(cluster, app, replication, created, {"start from nothing": time.monotonic() - began})
        yield found
    finally:
        cluster.stop()
    # For the record (run with -s); speed is never asserted here.
    print("\n" + "\n".join(f"galera {what}: {seconds:.1f}s" for what, seconds in found.timings.items()))


@pytest.fixture(autouse=True)
def _healthy(request: pytest.FixtureRequest) -> None:
    """Each cluster test begins on three Synced nodes, whatever the test before it left behind."""
    if "galera" not in request.fixturenames:
        return
    galera: Galera = request.getfixturevalue("galera")
    for node in galera.cluster.nodes:
        if node.is_running():
            node.resume()
    galera.cluster.start()
    assert galera.cluster.status().healthy, str(galera.cluster.status())


def log_offsets(cluster: GaleraCluster) -> dict[str, int]:
    return {n.name: n.log_path.stat().st_size if n.log_path.exists() else 0 for n in cluster.nodes}


def log_since(node: GaleraNode, offsets: dict[str, int]) -> str:
    with open(node.log_path, "rb") as f:
        f.seek(offsets[node.name])
        return f.read().decode(errors="replace")


def assert_joined_by_ist(node: GaleraNode, offsets: dict[str, int]) -> None:
    text = log_since(node, offsets)
    assert not [w for w in SST_WORDS if w in text], f"{node.name} got a full SST:\n{text[-3000:]}"
    assert [w for w in IST_WORDS if w in text], f"{node.name} shows no IST:\n{text[-3000:]}"


def make_table(galera: Galera, name: str) -> None:
    galera.query(galera.cluster.nodes[0], f"CREATE TABLE {name} (id BIGINT AUTO_INCREMENT PRIMARY KEY, "
                                          "node VARCHAR(4) NOT NULL, seq INT NOT NULL)")


def ids_on(galera: Galera, node: GaleraNode, table: str) -> set[int]:
    return {row[0] for row in galera.query(node, f"SELECT id FROM {table}")}


def insert(galera: Galera, node: GaleraNode, table: str, count: int) -> set[int]:
    """Insert `count` rows on `node`, one commit each; the ids it acknowledged."""
    ids: set[int] = set()
    conn = galera.connect(node)
    try:
        with conn.cursor() as cur:
            for seq in range(count):
                cur.execute(f"INSERT INTO {table} (node, seq) VALUES (%s, %s)", (node.name, seq))
                ids.add(cur.lastrowid)
    finally:
        conn.close()
    return ids


class Writers:
    """A thread per node inserting a row every ~10 ms on its own connection; keeps every acknowledged id."""

    def __init__(self, galera: Galera, nodes: list[GaleraNode], table: str) -> None:
        self.galera = galera
        self.table = table
        self.acked: dict[str, list[int]] = {n.name: [] for n in nodes}
        self.gaps: dict[str, float] = {n.name: 0.0 for n in nodes}
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(n,), daemon=True) for n in nodes]

    def __enter__(self) -> Writers:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=90)

    def count(self, name: str) -> int:
        return len(self.acked[name])

    def all_acked(self) -> set[int]:
        return {i for ids in self.acked.values() for i in ids}

    def _run(self, node: GaleraNode) -> None:
        try:
            conn = self.galera.connect(node)
            with conn.cursor() as cur:
                last = time.monotonic()
                while not self._stop.is_set():
                    cur.execute(f"INSERT INTO {self.table} (node, seq) VALUES (%s, %s)",
                                (node.name, len(self.acked[node.name])))
                    self.acked[node.name].append(cur.lastrowid)
                    now = time.monotonic()
                    self.gaps[node.name] = max(self.gaps[node.name], now - last)
                    last = now
                    self._stop.wait(0.01)  # pacing: a small load, not a synchronisation
            conn.close()
        except Exception as exc:  # noqa: BLE001 - any failure of an insert is what the test looks for
            self.errors.append(f"{node.name}: {exc!r}")


# --- the process layer's pure parts --------------------------------------------------------------------


def test_cnf_sets_the_addresses_binlog_and_timeouts_of_its_node(tmp_path: Path) -> None:
    peers = [NodeAddress("127.0.0.1", 3317 + i, 45671 + i, 45681 + i, 45691 + i) for i in range(3)]
    text = render_cnf(1, tmp_path / "n2", peers, ClusterSettings(), sst=Account("sst", "pw"),
                      pid_path=tmp_path / "n2.pid", log_path=tmp_path / "n2.log")
    lines = text.splitlines()
    for expected in ("port=3318", "server_id=2", "log_bin=mariadb-bin", "binlog_format=ROW",
                     "log_slave_updates=ON", "wsrep_gtid_mode=ON", "wsrep_gtid_domain_id=1",
                     "wsrep_sync_wait=1",
                     "wsrep_cluster_address=gcomm://127.0.0.1:45671,127.0.0.1:45672,127.0.0.1:45673",
                     "wsrep_sst_receive_address=127.0.0.1:45692", 'wsrep_sst_auth="sst:pw"',
                     f"sst-log-archive-dir={tmp_path / 'n2' / 'sst_log_archive'}"):
        assert expected in lines, expected
    options = next(line for line in lines if line.startswith("wsrep_provider_options="))
    for expected in ("gmcast.listen_addr=tcp://127.0.0.1:45672", "ist.recv_addr=127.0.0.1:45682",
                     "gcache.recover=yes", "evs.suspect_timeout=PT2S"):
        assert expected in options.split('"')[1].split(";"), expected


@pytest.mark.parametrize("password", ["", "with space", 'qu"ote', "semi;colon", "hash#", "back\\slash"])
def test_cnf_refuses_an_sst_password_it_cannot_quote(tmp_path: Path, password: str) -> None:
    peers = [NodeAddress("127.0.0.1", 3317, 45671, 45681, 45691)]
    with pytest.raises(StackError, match="SST password"):
        render_cnf(0, tmp_path, peers, ClusterSettings(), sst=Account("sst", password),
                   pid_path=tmp_path / "p", log_path=tmp_path / "l")


def test_grastate_is_read_and_its_flag_rewritten(tmp_path: Path) -> None:
    path = tmp_path / "grastate.dat"
    assert read_grastate(path) is None
    path.write_text("# GALERA saved state\nversion: 2.1\nuuid:    5ee99582-ed72-11f1-a6f1-3ffbfbc61bc3\n"
                    "seqno:   -1\nsafe_to_bootstrap: 0\n")
    state = read_grastate(path)
    assert state is not None and not state.safe_to_bootstrap and not state.position.known
    set_safe_to_bootstrap(path, True)
    state = read_grastate(path)
    assert state is not None and state.safe_to_bootstrap
    assert state.position.uuid == "5ee99582-ed72-11f1-a6f1-3ffbfbc61bc3" and state.position.seqno == -1
    assert "version: 2.1" in path.read_text()


def test_recovered_position_is_the_last_one_logged() -> None:
    log = ("[Note] WSREP: Recovered position: 5ee99582-ed72-11f1-a6f1-3ffbfbc61bc3:12\n"
           "[Note] WSREP: Recovered position: 5ee99582-ed72-11f1-a6f1-3ffbfbc61bc3:85\n")
    found = parse_recovered(log)
    assert found is not None and str(found) == "5ee99582-ed72-11f1-a6f1-3ffbfbc61bc3:85"
    assert parse_recovered("nothing recovered") is None


def test_cluster_refuses_a_name_that_would_go_into_sql_unquoted(tmp_path: Path) -> None:
    peers = [NodeAddress("127.0.0.1", 3317, 45671, 45681, 45691)]
    with pytest.raises(StackError, match="user name"):
        GaleraCluster(tmp_path, peers, database="db", app=Account("app'; DROP", "pw"),
                      sst=Account("sst", "pw"))
    with pytest.raises(StackError, match="database name"):
        GaleraCluster(tmp_path, peers, database="db`x", app=Account("app", "pw"), sst=Account("sst", "pw"))


# --- the cluster -----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_start_from_nothing_brings_three_synced_nodes_into_one_primary_component(galera: Galera) -> None:
    created = {s.node: s for s in galera.created}
    assert list(created) == ["n1", "n2", "n3"], galera.created
    assert created["n1"].how == "bootstrapped a new cluster"
    # The joiners were seeded with a copy of node 1's datadir: no full state transfer.
    assert created["n2"].transfer != "SST" and created["n3"].transfer != "SST", galera.created
    for node in galera.cluster.nodes[1:]:
        text = node.log_path.read_text(errors="replace")
        assert not [w for w in SST_WORDS if w in text], f"{node.name} got a full SST"
    status = galera.cluster.status()
    assert status.healthy
    for node in status.nodes:
        assert node.up and node.state == "Synced" and node.cluster_size == 3
        assert node.cluster_status == "Primary" and node.ready is True
    pids = {n.pid for n in status.nodes}
    assert len(pids) == 3 and all(pid_alive(p) for p in pids)
    for node in galera.cluster.nodes:
        assert galera.query(node, "SELECT 1") == [(1,)]  # the application user, over TCP, on every node
        assert (node.cnf_path.stat().st_mode & 0o077) == 0  # it holds the SST password


@pytest.mark.slow
def test_every_node_binlogs_every_write_with_the_cluster_gtids(galera: Galera) -> None:
    nodes = galera.cluster.nodes
    settings = [galera.query(n, "SELECT @@log_bin, @@binlog_format, @@log_slave_updates, @@wsrep_gtid_mode, "
                                "@@wsrep_gtid_domain_id, @@server_id, @@wsrep_sync_wait")[0] for n in nodes]
    assert {s[:5] for s in settings} == {(1, "ROW", 1, 1, 1)}
    assert len({s[5] for s in settings}) == 3  # distinct server_ids
    make_table(galera, "t_binlog")
    for node in nodes[1:]:
        galera.query(node, "INSERT INTO t_binlog (node, seq) VALUES (%s, 4242)", (node.name,))
    # The replication account reads node 1's binary log, and it holds the writes made on nodes 2 and 3.
    conn = galera.connect(nodes[0], galera.replication, database=None)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW BINARY LOGS")
            last = cur.fetchall()[-1][0]
            cur.execute("SHOW BINLOG EVENTS IN %s", (last,))
            annotated = [row[5] for row in cur.fetchall() if row[2] == "Annotate_rows"]
            with pytest.raises(pymysql.err.OperationalError) as denied:
                cur.execute(f"SELECT * FROM {DATABASE}.t_binlog")
            assert denied.value.args[0] == 1142  # no other privilege than reading the binary log
    finally:
        conn.close()
    written = [f"VALUES ('{n.name}', 4242)" for n in nodes[1:]]
    assert [w for w in written if any(w in a for a in annotated)] == written, annotated[-6:]
    positions = {galera.query(n, "SELECT @@gtid_binlog_pos")[0][0] for n in nodes}
    assert len(positions) == 1, positions  # one GTID history, the same on every node


@pytest.mark.slow
def test_a_write_on_node_1_is_read_at_once_on_node_3_and_ids_interleave(galera: Galera) -> None:
    n1, n2, n3 = galera.cluster.nodes
    make_table(galera, "t_ryw")
    writer, reader = galera.connect(n1), galera.connect(n3)
    stale = 0
    try:
        with writer.cursor() as w, reader.cursor() as r:
            for seq in range(200):
                w.execute("INSERT INTO t_ryw (node, seq) VALUES ('n1', %s)", (seq,))
                r.execute("SELECT seq FROM t_ryw WHERE id = %s", (w.lastrowid,))
                stale += r.fetchall() != ((seq,),)
    finally:
        writer.close()
        reader.close()
    assert stale == 0  # wsrep_sync_wait=1: a read waits until the node has applied what was committed before

    ids = {n.name: insert(galera, n, "t_ryw", 5) for n in (n1, n2, n3)}
    everything = set().union(*ids.values())
    assert len(everything) == 15
    # Each node hands out ids of its own residue (auto_increment_increment = 3): never consecutive ones.
    residues = {name: {i % 3 for i in found} for name, found in ids.items()}
    assert all(len(r) == 1 for r in residues.values()) and len(set().union(*residues.values())) == 3
    ordered = sorted(ids["n2"])
    assert all(b - a == 3 for a, b in zip(ordered, ordered[1:])), ordered
    assert ids_on(galera, n2, "t_ryw") >= everything


@pytest.mark.slow
@pytest.mark.fault
def test_sigkill_of_node_2_under_writes_stalls_them_then_it_rejoins_by_ist(galera: Galera) -> None:
    cluster = galera.cluster
    n1, n2, n3 = cluster.nodes
    make_table(galera, "t_kill")
    with Writers(galera, [n1, n3], "t_kill") as writers:
        assert wait_until(lambda: min(writers.count("n1"), writers.count("n3")) >= 20, 30)
        pid = n2.pid
        cluster.kill(n2)
        assert pid is not None and not pid_alive(pid)
        killed = {name: writers.count(name) for name in ("n1", "n3")}
        # The writes stall until the survivors drop node 2 from the view, then carry on.
        assert wait_until(lambda: all(writers.count(n) >= killed[n] + 50 for n in killed)
                          or writers.errors, 60)
        status = {s.name: s for s in cluster.status().nodes}
        assert not status["n2"].up
        assert status["n1"].cluster_size == 2 and status["n1"].cluster_status == "Primary"
        offsets = log_offsets(cluster)
        began = time.monotonic()
        started = cluster.start()
        galera.timings["rejoin of a killed node (IST)"] = time.monotonic() - began
        rejoined = {s.name: s for s in cluster.status().nodes}
        acked_at_rejoin = {name: writers.count(name) for name in killed}
        assert wait_until(lambda: all(writers.count(n) >= acked_at_rejoin[n] + 20 for n in killed)
                          or writers.errors, 60)
    assert writers.errors == []
    assert [s.node for s in started] == ["n2"] and started[0].transfer == "IST", started
    assert started[0].position is not None  # started at its recovered position, hence IST
    assert_joined_by_ist(n2, offsets)
    assert all(s.synced and s.cluster_size == 3 for s in rejoined.values()), rejoined
    acked = writers.all_acked()
    for node in cluster.nodes:  # node 2 has every acknowledged row, also those written while it was down
        assert ids_on(galera, node, "t_kill") == acked, node.name
    print(f"\nlongest insert gap while node 2 died: {max(writers.gaps.values()):.1f}s")


@pytest.mark.slow
def test_stop_and_start_again_bootstraps_from_the_last_node_stopped_and_keeps_every_row(
        galera: Galera) -> None:
    cluster = galera.cluster
    n1, n2, n3 = cluster.nodes
    make_table(galera, "t_restart")
    ids = insert(galera, n1, "t_restart", 20)
    cluster.stop_node(n1)
    ids |= insert(galera, n2, "t_restart", 20)  # node 1 has not seen these
    pids = [n.pid for n in (n2, n3)]
    cluster.stop()
    assert not any(pid_alive(p) for p in pids) and not cluster.is_running()
    assert not any(n.pid_path.exists() or port_open(n.host, n.port) for n in cluster.nodes)
    states = {n.name: read_grastate(n.grastate_path) for n in cluster.nodes}
    assert {name for name, s in states.items() if s and s.safe_to_bootstrap} == {"n2"}, states
    assert all(s is not None and s.position.known for s in states.values())

    offsets = log_offsets(cluster)
    began = time.monotonic()
    started = cluster.start()
    galera.timings["start from stopped data"] = time.monotonic() - began
    assert [s.node for s in started] == ["n2", "n1", "n3"], started
    assert "safe_to_bootstrap" in started[0].how
    # Node 1 missed 20 rows: it gets them from node 2's write-set cache, kept across the restart.
    assert started[1].transfer == "IST", started
    assert_joined_by_ist(n1, offsets)
    assert cluster.status().healthy
    for node in cluster.nodes:
        assert ids_on(galera, node, "t_restart") == ids, node.name


@pytest.mark.slow
@pytest.mark.fault
def test_start_after_every_node_crashed_bootstraps_from_the_highest_recovered_seqno(galera: Galera) -> None:
    cluster = galera.cluster
    n1, n2, n3 = cluster.nodes
    make_table(galera, "t_crash")
    ids = insert(galera, n1, "t_crash", 10)
    cluster.kill(n1)
    # Nodes 2 and 3 go on without node 1 once they have dropped it (the first insert waits for that).
    ids |= insert(galera, n2, "t_crash", 10)
    cluster.kill(n2)
    cluster.kill(n3)
    # A crash leaves no node marked safe. Node 3, alone for the moment between the two kills, may still have
    # marked itself (when it saw node 2 leave before it died): unmark it, so that every run is the crash case.
    for node in cluster.nodes:
        set_safe_to_bootstrap(node.grastate_path, False)
    states = [read_grastate(n.grastate_path) for n in cluster.nodes]
    assert all(s is not None and not s.safe_to_bootstrap and s.position.seqno == -1 for s in states), states

    offsets = log_offsets(cluster)
    started = cluster.start()
    first = started[0]
    # Node 1, the usual bootstrap node, is behind: bootstrapping it would lose the last 10 rows.
    assert first.node in ("n2", "n3") and "highest recovered seqno" in first.how, started
    assert {s.node for s in started} == {"n1", "n2", "n3"}
    assert next(s for s in started if s.node == "n1").transfer == "IST", started
    assert_joined_by_ist(n1, offsets)
    assert cluster.status().healthy
    for node in cluster.nodes:
        assert ids_on(galera, node, "t_crash") == ids, node.name


@pytest.mark.slow
def test_quorum_recovery_is_refused_while_the_cluster_is_primary(galera: Galera) -> None:
    with pytest.raises(StackError, match="still Primary"):
        galera.cluster.recover_quorum("n1")
    assert galera.cluster.status().healthy


@pytest.mark.slow
@pytest.mark.fault
def test_a_survivor_without_quorum_refuses_queries_until_it_is_made_primary(galera: Galera) -> None:
    cluster = galera.cluster
    n1, n2, n3 = cluster.nodes
    make_table(galera, "t_quorum")
    ids = insert(galera, n3, "t_quorum", 10)
    cluster.kill(n2)
    cluster.kill(n3)
    assert wait_until(lambda: n1.status().cluster_status == "non-Primary", 30), n1.status()
    alone = n1.status()
    assert alone.up and alone.ready is False and alone.cluster_size == 1
    assert not cluster.status().healthy
    for sql in ("SELECT COUNT(*) FROM t_quorum", "INSERT INTO t_quorum (node, seq) VALUES ('n1', 0)"):
        with pytest.raises(pymysql.err.OperationalError) as refused:
            galera.query(n1, sql)
        assert refused.value.args == (1047, "WSREP has not yet prepared node for application use")
    with pytest.raises(StackError, match="quorum lost"):
        cluster.start()  # nothing to join without a Primary component
    assert not n2.is_running() and not n3.is_running()

    cluster.recover_quorum(n1)
    assert n1.status().synced
    ids |= insert(galera, n1, "t_quorum", 10)  # writable at once, before the others are back
    offsets = log_offsets(cluster)
    started = cluster.start()
    assert [(s.node, s.transfer) for s in started] == [("n2", "IST"), ("n3", "IST")], started
    for node in (n2, n3):
        assert_joined_by_ist(node, offsets)
    assert cluster.status().healthy
    for node in cluster.nodes:
        assert ids_on(galera, node, "t_quorum") == ids, node.name


@pytest.mark.slow
@pytest.mark.fault
def test_a_paused_node_is_dropped_and_rejoins_by_itself_when_it_runs_again(galera: Galera) -> None:
    cluster = galera.cluster
    n1, n2, n3 = cluster.nodes
    make_table(galera, "t_pause")
    cluster.pause(n3)
    try:
        assert cluster.status().nodes[2].state is None  # up (its pid lives) but answering nothing
        ids = insert(galera, n1, "t_pause", 10)  # the first insert waits until node 3 is dropped
        assert wait_until(lambda: n1.status().cluster_size == 2, 30), n1.status()
    finally:
        cluster.resume(n3)
    assert wait_until(lambda: cluster.status().healthy, 60), str(cluster.status())
    assert ids_on(galera, n3, "t_pause") == ids
