"""The database nodes a service uses: a pool per node, which nodes are usable now, and their probes.

Every query goes to the first usable node of `mariadb.nodes` (pin and fail over, not spread): with Galera
every node takes writes, but two writes of one row committed on two nodes at once make one of them lose
certification (a deadlock error at COMMIT), so writers of a row are best kept on one node; and a read on the
node that took the write sees it without waiting for the cluster. Every process given the same list picks
the same node, goes to the next one when it is left, and comes back when the probe sees it usable again.

A node is left when a request could not reach it, when it refused for want of quorum (error 1047), or when
its probe failed: every `probe.interval` each node is asked, with `probe.timeout` for the whole exchange,
whether it answers (a plain server) or is ready, Primary and Synced or Donor (a Galera node). The probe
asks with `wsrep_sync_wait = 0`, so a cluster stalled by a dead peer is not taken for dead itself. A left
node gets no request until a probe finds it usable again: one connection attempt per interval, never one
per request.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

import aiomysql
import pymysql

from cachegate.settings import DatabaseNode, MariaDBConfig

log = logging.getLogger("backends.nodes")

_WSREP_STATUS = ("SHOW GLOBAL STATUS WHERE Variable_name IN "
                 "('wsrep_ready', 'wsrep_cluster_status', 'wsrep_local_state_comment')")
_SERVING_STATES = frozenset({"Synced", "Donor/Desynced"})


@dataclass(eq=False)
class Node:
    """One node as this process sees it: usable or not (and why), and its pool once one is needed."""
    address: DatabaseNode
    usable: bool = True
    reason: str = ""
    left_at: float = 0.0  # monotonic; a probe that began before it says nothing about the node now
    pool: aiomysql.Pool | None = None
    opening: asyncio.Lock = field(default_factory=asyncio.Lock)

    def __str__(self) -> str:
        return str(self.address)


class Nodes:
    """The nodes of `mariadb.nodes` in order of preference, with their pools and their probe tasks."""

    def __init__(self, db: MariaDBConfig, connect_args: dict[str, Any]) -> None:
        self.db = db
        self.nodes = [Node(address) for address in db.nodes]
        self._connect_args = connect_args
        self._probes: list[asyncio.Task[None]] = []
        self._chores: set[asyncio.Task[None]] = set()  # referenced until done, or the loop may drop them

    def pick(self, avoid: set[Node] | frozenset[Node] = frozenset()) -> Node | None:
        """The first usable node not in `avoid` (None: none, and no request should try one)."""
        for node in self.nodes:
            if node.usable and node not in avoid:
                return node
        return None

    async def pool(self, node: Node) -> aiomysql.Pool:
        """The node's pool, opened when a query first needs the node (with pool.min connections)."""
        if node.pool is None:
            async with node.opening:
                if node.pool is None:
                    node.pool = await aiomysql.create_pool(
                        minsize=self.db.pool_min, maxsize=self.db.pool_max,
                        # Idle connections are what a restarted server or a departed node leaves dead.
                        pool_recycle=300, host=node.address.host, port=node.address.port,
                        **self._connect_args)
        return node.pool

    def leave(self, node: Node, reason: str) -> None:
        """No more requests to `node` until a probe finds it usable again."""
        node.left_at = time.monotonic()
        if node.usable:
            node.usable, node.reason = False, reason
            log.warning("database node %s left: %s", node, reason)
        if node.pool is not None:
            # Its idle connections are as dead as the one that failed (or about to be).
            chore = asyncio.get_running_loop().create_task(node.pool.clear())
            self._chores.add(chore)
            chore.add_done_callback(self._chores.discard)

    async def start(self) -> None:
        """One probe round (at most probe.timeout), then the probes go on in the background."""
        await asyncio.gather(*(self._probe(node, None) for node in self.nodes))
        self._probes = [asyncio.get_running_loop().create_task(self._watch(node)) for node in self.nodes]

    async def close(self) -> None:
        for task in self._probes:
            task.cancel()
        await asyncio.gather(*self._probes, return_exceptions=True)
        for node in self.nodes:
            if node.pool is not None:
                node.pool.close()
                await node.pool.wait_closed()

    async def _watch(self, node: Node) -> None:
        conn: aiomysql.Connection | None = None
        try:
            while True:
                await asyncio.sleep(self.db.probe_interval)  # the probe's schedule, not a synchronisation
                try:
                    conn = await self._probe(node, conn)
                except Exception:  # a bug here must not freeze the node's state: say it, leave the node
                    log.exception("probe of database node %s failed", node)
                    if conn is not None:
                        conn.close()
                    conn = None
                    self.leave(node, "probe failed")
        finally:
            if conn is not None:
                conn.close()

    async def _probe(self, node: Node, conn: aiomysql.Connection | None) -> aiomysql.Connection | None:
        """Ask the node whether it serves; mark it so. Returns the probe's connection to reuse, if alive."""
        began = time.monotonic()
        try:
            async with asyncio.timeout(self.db.probe_timeout):
                if conn is None or conn.closed:
                    conn = await self._probe_connection(node)
                reason = await self._serving(conn)
        except (pymysql.MySQLError, OSError, TimeoutError) as exc:
            if conn is not None:
                conn.close()
            conn, reason = None, f"probe: {_describe(exc)}"
        if reason is not None:
            self.leave(node, reason)
        elif not node.usable and began > node.left_at:
            node.usable, node.reason = True, ""
            log.warning("database node %s is usable again", node)
        return conn

    async def _probe_connection(self, node: Node) -> aiomysql.Connection:
        args = {**self._connect_args, "connect_timeout": self.db.probe_timeout}
        # A status query must neither wait for the cluster (wsrep_sync_wait) nor count as a request's.
        args["init_command"] = "SET SESSION wsrep_sync_wait = 0" if self.db.cluster else None
        return await aiomysql.connect(host=node.address.host, port=node.address.port, **args)

    async def _serving(self, conn: aiomysql.Connection) -> str | None:
        """None when the node serves queries; else why not."""
        async with conn.cursor() as cur:
            if not self.db.cluster:
                await cur.execute("SELECT 1")
                await cur.fetchall()
                return None
            await cur.execute(_WSREP_STATUS)
            found = {str(name).lower(): str(value) for name, value in await cur.fetchall()}
        if found.get("wsrep_ready", "").upper() != "ON":
            return "not ready (wsrep_ready=OFF)"
        if found.get("wsrep_cluster_status") != "Primary":
            return f"no quorum (cluster status {found.get('wsrep_cluster_status')})"
        state = found.get("wsrep_local_state_comment", "")
        return None if state in _SERVING_STATES else f"not synced ({state})"


def _describe(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    if isinstance(exc, pymysql.MySQLError) and len(exc.args) > 1:
        return f"{exc.args[0]} {exc.args[1]}"
    return type(exc).__name__
