"""What a Galera node is given: its addresses, the cluster-wide settings, its my.cnf and its grastate.dat."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from stack.process import StackError

PROVIDER = "/usr/lib/galera/libgalera_smm.so"
# Group-communication timeouts on loopback. A killed peer stalls the survivors' commits for about
# evs.suspect_timeout: ~3 s here instead of ~6 s with the defaults (keepalive <= check period <= suspect).
# The survivors must then agree on the new view within evs.install_timeout, counted from when the peer's
# connection broke. Its default, half of evs.inactive_timeout (1.5 s with inactive at 3 s), left too little
# time after the suspect timeout on a loaded 2-core machine: the survivors gave up and both fell out of the
# Primary component. It may be at most evs.inactive_timeout, hence the larger inactive timeout.
EVS_OPTIONS = ("evs.suspect_timeout=PT2S;evs.inactive_timeout=PT6S;evs.install_timeout=PT5S;"
               "evs.inactive_check_period=PT0.5S;evs.keepalive_period=PT0.5S")
# Characters a value may not hold when it goes into my.cnf between double quotes.
_CNF_UNSAFE = re.compile(r"[\s\"'\\#;]")
_GRASTATE_LINE = re.compile(r"^(uuid|seqno|safe_to_bootstrap):\s*(\S+)\s*$", re.MULTILINE)
NO_UUID = "00000000-0000-0000-0000-000000000000"


@dataclass(frozen=True)
class NodeAddress:
    """Where one node listens: SQL clients on `port`, peers on gcomm, IST and SST ports (all on `host`)."""
    host: str
    port: int
    gcomm_port: int
    ist_port: int
    sst_port: int


@dataclass(frozen=True)
class Account:
    """A MariaDB account: a user name (letters, digits, `_`) and its password."""
    user: str
    password: str


@dataclass(frozen=True)
class ClusterSettings:
    """What every node of one cluster shares.

    `sync_wait` is `wsrep_sync_wait` for every session: 1 makes each read (SELECT, SHOW, BEGIN) wait until the
    node has applied what the cluster committed before it, so a read on one node sees a write committed on
    another, at the price of one group round trip per read statement: a point SELECT over loopback went from
    254 to 287 us (median) on an idle cluster, and waits longer while the node is behind under writes.
    A session may lower it for itself (`SET SESSION wsrep_sync_wait = 0`).
    """
    name: str = "cachegate"
    sync_wait: int = 1
    # The GTID domain of every replicated write (common to all nodes); node i's local domain is base + i.
    gtid_domain_id: int = 1
    local_gtid_domain_base: int = 100
    gcache_size: str = "64M"
    buffer_pool_size: str = "64M"
    binlog_expire_seconds: int = 7 * 86400


@dataclass(frozen=True)
class Position:
    """A node's place in the cluster history (uuid:seqno); seqno -1 means unknown (not stopped cleanly)."""
    uuid: str
    seqno: int

    def __str__(self) -> str:
        return f"{self.uuid}:{self.seqno}"

    @property
    def known(self) -> bool:
        return self.uuid != NO_UUID and self.seqno >= 0


@dataclass(frozen=True)
class GraState:
    """grastate.dat: the position Galera saved at a clean stop, and whether this node may bootstrap."""
    position: Position
    safe_to_bootstrap: bool


def cnf_safe(what: str, value: str) -> str:
    if not value or _CNF_UNSAFE.search(value):
        raise StackError(f"galera: {what} must be non-empty, without spaces, quotes, backslashes, '#' or ';'")
    return value


def render_cnf(index: int, folder: Path, peers: Sequence[NodeAddress], settings: ClusterSettings, *,
               sst: Account, pid_path: Path, log_path: Path) -> str:
    """The my.cnf of node `index` (0-based) of `peers`; every path in it lives under `folder` unless given."""
    me = peers[index]
    gcomm = ",".join(f"{p.host}:{p.gcomm_port}" for p in peers)
    provider_options = ";".join([
        f"gmcast.listen_addr=tcp://{me.host}:{me.gcomm_port}",
        # By default IST listens on the gcomm port + 1, which is the next node's gcomm port here.
        f"ist.recv_addr={me.host}:{me.ist_port}",
        f"gcache.size={settings.gcache_size}",
        # Keep the write-set cache across a restart, so a node behind the others still joins by IST.
        "gcache.recover=yes",
        EVS_OPTIONS])
    sst_auth = f"{cnf_safe('the SST user', sst.user)}:{cnf_safe('the SST password', sst.password)}"
    return f"""\
[client]
port={me.port}
socket={folder / "mysqld.sock"}
user=root

[mysqld]
user=root
datadir={folder / "data"}
socket={folder / "mysqld.sock"}
pid-file={pid_path}
log-error={log_path}
tmpdir={folder / "tmp"}
port={me.port}
bind-address={me.host}
skip-name-resolve
innodb_buffer_pool_size={settings.buffer_pool_size}
innodb_log_file_size=16M
innodb_flush_log_at_trx_commit=2
max_connections=500
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
default_storage_engine=InnoDB
innodb_autoinc_lock_mode=2
# Every node writes a row-based binary log of every write, its own and the replicated ones, with the
# cluster's GTIDs: a change-data-capture reader of any one node sees the writes of all.
server_id={index + 1}
log_bin=mariadb-bin
binlog_format=ROW
binlog_row_image=FULL
binlog_row_metadata=FULL
log_slave_updates=ON
binlog_expire_logs_seconds={settings.binlog_expire_seconds}
gtid_domain_id={settings.local_gtid_domain_base + index + 1}
wsrep_gtid_mode=ON
wsrep_gtid_domain_id={settings.gtid_domain_id}
wsrep_on=ON
wsrep_provider={PROVIDER}
wsrep_cluster_name={settings.name}
wsrep_cluster_address=gcomm://{gcomm}
wsrep_node_name=n{index + 1}
wsrep_node_address={me.host}:{me.gcomm_port}
wsrep_node_incoming_address={me.host}:{me.port}
wsrep_provider_options="{provider_options}"
wsrep_sync_wait={settings.sync_wait}
# A full state transfer is the fallback only (a node with no data while others run); mariabackup works
# as root, rsync does not.
wsrep_sst_method=mariabackup
wsrep_sst_receive_address={me.host}:{me.sst_port}
wsrep_sst_auth="{sst_auth}"

[sst]
sst-log-archive-dir={folder / "sst_log_archive"}
"""


def read_grastate(path: Path) -> GraState | None:
    """The saved state, or None when the node never ran in a cluster (no grastate.dat)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    fields = dict(_GRASTATE_LINE.findall(text))
    try:
        return GraState(Position(fields.get("uuid", NO_UUID), int(fields.get("seqno", "-1"))),
                        fields.get("safe_to_bootstrap", "0") == "1")
    except ValueError as exc:
        raise StackError(f"galera: {path} is not a grastate.dat: {exc}") from exc


def set_safe_to_bootstrap(path: Path, safe: bool) -> None:
    """Rewrite the flag in grastate.dat, the way the Galera documentation tells an operator to edit it."""
    text = path.read_text()
    flag = f"safe_to_bootstrap: {int(safe)}"
    if re.search(r"^safe_to_bootstrap:.*$", text, re.MULTILINE):
        text = re.sub(r"^safe_to_bootstrap:.*$", flag, text, flags=re.MULTILINE)
    else:
        text = text.rstrip("\n") + f"\n{flag}\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def parse_recovered(log: str) -> Position | None:
    """The last `Recovered position: uuid:seqno` that `mariadbd --wsrep-recover` wrote to its log."""
    found = re.findall(r"Recovered position:\s+([0-9a-f-]{36}):(-?\d+)", log)
    return Position(found[-1][0], int(found[-1][1])) if found else None
