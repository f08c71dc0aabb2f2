"""The binary log, read in threads of their own (python-mysql-replication and PyMySQL are synchronous).

`BinlogReader` follows one server as a replica from a GTID position and hands each whole transaction (its
row changes of the rules' tables, or none: every transaction moves the position) to the event loop in
order, waiting while the loop's queue is full. When its server fails it moves to the next of the config's
nodes, from the last transaction it handed over; Galera gives a transaction the same GTID on every node,
so nothing is lost or reordered. A server that no longer has the position (its binlog was purged) is
reported as `Lost`, once, and the reader stops. `Probe` reads the server's own position every interval,
which tells how far behind the reader is.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import HeartbeatLogEvent, MariadbGtidEvent, QueryEvent, XidEvent
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from cachegate.settings import DatabaseNode
from invalidator.changes import DELETE, INSERT, UPDATE, Change
from invalidator.positions import Gtid, Position, parse_gtid

log = logging.getLogger("cachegate.invalidator")

# MariaDB's "fatal error reading binlog": the position requested is not in the server's binary log (purged,
# or a GTID the server never had).
POSITION_LOST = 1236
RETRY_FIRST, RETRY_MAX = 0.1, 2.0  # seconds between attempts to reach a server, doubling
CATCH_UP_S = 5.0   # how long a node behind the position is given to apply what it has received
_STANDALONE = 0x01  # MariaDB GTID flag: a transaction of one statement with no COMMIT of its own (DDL)
_EVENTS = [MariadbGtidEvent, XidEvent, QueryEvent, WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent,
           HeartbeatLogEvent]


@dataclass(frozen=True, slots=True)
class Source:
    """Where and how the reader logs in: the nodes in order, the replication user, what it follows."""
    nodes: tuple[DatabaseNode, ...]
    user: str
    password: str = field(repr=False)
    server_id: int
    schema: str
    tables: tuple[str, ...]
    heartbeat: float
    connect_timeout: float

    def login(self, node: DatabaseNode) -> dict:
        # A read waits at most three heartbeats: a server that stopped answering is left then.
        return {"host": node.host, "port": node.port, "user": self.user, "passwd": self.password,
                "connect_timeout": max(1, int(self.connect_timeout)),
                "read_timeout": max(1, int(3 * self.heartbeat + 0.999))}


@dataclass(frozen=True, slots=True)
class Transaction:
    gtid: Gtid
    timestamp: int                 # the binlog's, in whole seconds
    changes: tuple[Change, ...]
    received: float                # time.time() when its end arrived


@dataclass(frozen=True, slots=True)
class Lost:
    """The server cannot continue from the position: the reader has stopped."""
    node: str
    position: str
    message: str


def server_position(source: Source, node: DatabaseNode) -> Position:
    """The server's binlog position now (@@gtid_binlog_pos: every transaction committed so far)."""
    conn = pymysql.connect(**source.login(node), ssl_disabled=True)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT @@GLOBAL.gtid_binlog_pos")
            return Position.parse(cur.fetchone()[0] or "")
    finally:
        conn.close()


class BinlogReader:
    """One thread following the binary log; `deliver` (blocking, from that thread) takes each item."""

    def __init__(self, source: Source, position: Position, deliver: Callable[[object], None], *,
                 on_connect: Callable[[DatabaseNode], None], on_failure: Callable[[DatabaseNode, str], None],
                 first_node: int = 0) -> None:
        self.source = source
        self.position = position.copy()  # of the last transaction handed over (this thread's own)
        self.node = source.nodes[first_node % len(source.nodes)]
        self._index = first_node
        self._deliver = deliver
        self._on_connect, self._on_failure = on_connect, on_failure
        self._stopping = threading.Event()
        self._stream: BinLogStreamReader | None = None
        self._thread = threading.Thread(target=self._run, name="binlog-reader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        stream = self._stream
        if stream is not None:
            try:
                stream.close()  # its blocking read fails at once
            except Exception:  # noqa: BLE001 - closing a socket another thread reads may fail either way
                pass
        self._thread.join(timeout)

    def _run(self) -> None:
        delay = RETRY_FIRST
        while not self._stopping.is_set():
            self.node = self.source.nodes[self._index % len(self.source.nodes)]
            try:
                self._follow(self.node)
                delay = RETRY_FIRST
            except pymysql.err.OperationalError as exc:
                if exc.args and exc.args[0] == POSITION_LOST and not self._stopping.is_set():
                    self._deliver(Lost(str(self.node), str(self.position), str(exc.args[-1])))
                    return
                self._failed(f"{type(exc).__name__}: {exc.args[-1] if exc.args else exc}")
            except Exception as exc:  # noqa: BLE001 - any failure of the link: move on, never die silently
                self._failed(f"{type(exc).__name__}: {exc}")
            finally:
                self._close()
            if self._stopping.wait(delay):
                return
            delay = min(RETRY_MAX, delay * 2)

    def _failed(self, why: str) -> None:
        if self._stopping.is_set():
            return
        self._on_failure(self.node, why)
        self._index += 1  # the next node (the same one again for a single server)

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close()
            except Exception:  # noqa: BLE001 - the link is gone already
                pass

    def _follow(self, node: DatabaseNode) -> None:
        server = server_position(self.source, node)
        start, dropped = self.position.within(server)
        # A Galera node applies the cluster's write-sets a moment after the node that certified them: one
        # behind our position gets them within a moment (asked for now, it would refuse the position).
        deadline = time.monotonic() + CATCH_UP_S
        while not server.covers(start) and time.monotonic() < deadline:
            if self._stopping.wait(0.05):
                return
            server = server_position(self.source, node)
        if dropped:
            log.warning("binlog: %s never wrote domain(s) %s; following it from %s", node,
                        ", ".join(str(g) for g in dropped), start)
        self.position = start
        src = self.source
        stream = self._stream = BinLogStreamReader(
            connection_settings=src.login(node), server_id=src.server_id, blocking=True, is_mariadb=True,
            auto_position=str(start), slave_heartbeat=src.heartbeat, only_events=_EVENTS,
            only_schemas=[src.schema], only_tables=list(src.tables), enable_logging=False)
        if self._stopping.is_set():
            return
        self._on_connect(node)
        gtid: Gtid | None = None
        stamp, standalone, changes = 0, False, []
        for event in stream:
            if self._stopping.is_set():
                return
            if isinstance(event, MariadbGtidEvent):
                if gtid is not None:  # a transaction without a COMMIT event of its own ended here
                    self._hand_over(stream, gtid, stamp, changes)
                gtid, stamp = parse_gtid(event.gtid), event.timestamp
                standalone, changes = bool(event.flags & _STANDALONE), []
            elif gtid is None:
                continue  # a heartbeat, or the tail of a transaction before the position
            elif isinstance(event, (WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent)):
                changes.extend(_changes(event))
            elif isinstance(event, XidEvent) or (
                    isinstance(event, QueryEvent) and (standalone or _is_commit(event.query))):
                self._hand_over(stream, gtid, stamp, changes)
                gtid, changes = None, []

    def _hand_over(self, stream: BinLogStreamReader, gtid: Gtid, stamp: int, changes: list[Change]) -> None:
        self._deliver(Transaction(gtid, stamp, tuple(changes), time.time()))
        self.position.advance(gtid)
        # python-mysql-replication reconnects by itself after a lost read: from here, not its first position.
        stream.auto_position = str(self.position)


def _is_commit(query: object) -> bool:
    text = query.decode("utf-8", "replace") if isinstance(query, bytes) else str(query)
    return text.strip().upper() in ("COMMIT", "XA COMMIT")


def _changes(event: WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent) -> list[Change]:
    table = event.table
    if isinstance(event, UpdateRowsEvent):
        return [Change(table, UPDATE, row["before_values"], row["after_values"]) for row in event.rows]
    if isinstance(event, WriteRowsEvent):
        return [Change(table, INSERT, None, row["values"]) for row in event.rows]
    return [Change(table, DELETE, row["values"], None) for row in event.rows]


class Probe:
    """Reads, every `interval` seconds, the binlog position of the node the reader follows; each (time the
    question was sent, position) goes to `deliver`: every transaction committed before that time is in
    the position, so once the invalidator has applied it, it is caught up as of that time.

    A node that cannot commit (a Galera node out of the Primary component) or does not answer is no proof
    of that: then every node is asked. When none can commit (each refuses the connection, no server
    there, or answers out of the Primary component) and at least one answers, their positions together
    are delivered: they hold every write-set certified before the cluster lost its quorum, and no commit
    can follow, so cached entries stay trustworthy while the database cannot change (issue 10: cached
    reads are served during a loss of quorum). A lone plain server that is down proves nothing: the
    changes it committed just before may not have reached the reader."""

    def __init__(self, source: Source, interval: float, node: Callable[[], DatabaseNode],
                 deliver: Callable[[float, Position], None]) -> None:
        self.source, self.interval, self._node, self._deliver = source, interval, node, deliver
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="binlog-probe", daemon=True)
        self._conn: pymysql.connections.Connection | None = None
        self._on: DatabaseNode | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stopping.wait(self.interval):
            sent = time.time()
            node = self._node()
            found = self._followed(node)
            if found is not None:
                self._deliver(sent, found)
                continue
            quiet = self._quiet()
            if quiet is not None:
                self._deliver(sent, quiet)
        self._drop()

    def _followed(self, node: DatabaseNode) -> Position | None:
        """The followed node's position when it can commit; None when it cannot or does not answer."""
        try:
            if self._conn is None or self._on != node:
                self._drop()
                self._conn, self._on = pymysql.connect(**self.source.login(node), ssl_disabled=True), node
            position, primary = _ask(self._conn)
            return position if primary else None
        except Exception:  # noqa: BLE001 - the reader reports the server's failures
            self._drop()
            return None

    def _quiet(self) -> Position | None:
        """Every node's position together, when no node can commit and one at least answers."""
        merged = Position()
        answered = False
        for node in self.source.nodes:
            try:
                conn = pymysql.connect(**self.source.login(node), ssl_disabled=True)
            except pymysql.err.OperationalError as exc:
                if "refused" in str(exc):  # nothing listens there: that node commits nothing
                    continue
                return None
            try:
                position, primary = _ask(conn)
            except Exception:  # noqa: BLE001 - an answer that is no proof
                return None
            finally:
                conn.close()
            if primary:
                return None  # it can commit: the reader moves to it, and its position is the proof
            answered = True
            for gtid in position:
                if gtid.seq > merged.seq(gtid.domain):
                    merged.advance(gtid)
        return merged if answered else None

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - the link is gone already
                pass


def _ask(conn: pymysql.connections.Connection) -> tuple[Position, bool]:
    """(the server's binlog position, whether it can commit). SHOW, not SELECT: a Galera node out of the
    Primary component answers SHOW only."""
    with conn.cursor() as cur:
        cur.execute("SHOW GLOBAL STATUS LIKE 'wsrep_cluster_status'")
        row = cur.fetchone()
        primary = row is None or row[1] == "Primary"  # a plain server has no wsrep status
        cur.execute("SHOW GLOBAL VARIABLES LIKE 'gtid_binlog_pos'")
        row = cur.fetchone()
        return Position.parse((row[1] if row else "") or ""), primary
