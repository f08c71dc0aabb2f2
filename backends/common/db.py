"""A service's database (one server or a Galera cluster) and the two ways handlers reach it.

`fetch_one`/`fetch_all` run one read; `transaction(db, body)` runs `body(cursor)` between BEGIN and COMMIT.
Either is one operation with one deadline (`mariadb.query_timeout`, from taking a connection to the
answer), on the first usable node (backends/common/nodes.py); a connection is held for that operation only,
so `pool.max` connections serve hundreds of concurrent requests. What may go wrong, and what follows:

- The node cannot be reached, broke the connection, or has no quorum (1047) before COMMIT was sent:
  nothing was committed, so the operation runs again on a fresh connection (a restarted server leaves
  every pooled connection dead), then on the next node; the node is left until its probe says otherwise.
- A Galera certification conflict, or an InnoDB deadlock (1213 on any statement or on COMMIT): the
  transaction was rolled back, and is run again, up to `mariadb.conflict_retries` times (then 409
  `write_conflict`). Every body here is SQL only, so running it again is what the client would do.
- The connection broke, or the deadline passed, after COMMIT was sent: the write may or may not be
  committed. Never run again, never reported as done: 503 `write_outcome_unknown`.
- No usable node, or the deadline passed before COMMIT: 503 `database_unavailable`, at once.

In a cluster each session has `wsrep_sync_wait = mariadb.sync_wait` (1): a read (and BEGIN) first waits
until the node has applied every write the cluster committed before it, so a read through any node sees a
write acknowledged through another. It costs one group round trip per read statement (the load test
measures it: performance.md, cluster section).
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import aiomysql
import pymysql
from aiohttp import web

from backends.common.errors import database_unavailable, write_conflict, write_outcome_unknown
from backends.common.nodes import Node, Nodes
from cachegate.settings import MariaDBConfig

Row = dict[str, Any]
Args = Sequence[Any] | None
T = TypeVar("T")
Body = Callable[[aiomysql.DictCursor], Awaitable[T]]

# CR_CONNECTION_ERROR, CR_CONN_HOST_ERROR, CR_SERVER_GONE_ERROR, CR_SERVER_LOST, ER_CONNECTION_KILLED
_CONNECTION_LOST = frozenset({2002, 2003, 2006, 2013, 1927})
NOT_READY = 1047  # ER_UNKNOWN_COM_ERROR: "WSREP has not yet prepared node for application use"
DEADLOCK = 1213   # ER_LOCK_DEADLOCK: an InnoDB deadlock, or a Galera certification conflict


def _connect_args(db: MariaDBConfig) -> dict[str, Any]:
    # Timestamps are written with UTC_TIMESTAMP() but compared with client values: sessions stay in UTC.
    init = "SET time_zone = '+00:00'"
    if db.cluster:
        init += f", SESSION wsrep_sync_wait = {int(db.sync_wait)}"  # in the same round trip
    return {"user": db.user, "password": db.password(), "db": db.database, "autocommit": True,
            "charset": "utf8mb4", "connect_timeout": db.connect_timeout, "init_command": init}


@dataclass
class _Attempt:
    committing: bool = False  # COMMIT was sent and its answer has not come


class Database:
    """What a service holds: the nodes, their pools and probes (see the module docstring for the rules)."""

    def __init__(self, db: MariaDBConfig) -> None:
        self.config = db
        self.nodes = Nodes(db, _connect_args(db))
        self.conflicts = 0  # transactions run again after a conflict (1213), for tests and logs

    async def start(self) -> None:
        await self.nodes.start()

    async def close(self) -> None:
        await self.nodes.close()

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[aiomysql.Connection]:
        """A pooled connection on the preferred usable node, as it is (no deadline, no retry): for tests."""
        node = self.nodes.pick()
        if node is None:
            raise database_unavailable()
        async with (await self.nodes.pool(node)).acquire() as conn:
            yield conn

    async def run(self, body: Body[T], *, transaction: bool, writes: bool) -> T:
        """`body` as one operation: within the deadline, on the first usable node, retried as above."""
        attempt, tried, refreshed, conflicts = _Attempt(), set[Node](), set[Node](), 0
        try:
            async with asyncio.timeout(self.config.query_timeout):
                while True:
                    node = self.nodes.pick(tried)
                    if node is None:
                        raise database_unavailable()
                    attempt = _Attempt()
                    try:
                        return await self._once(node, body, transaction, attempt)
                    except (pymysql.MySQLError, OSError) as exc:
                        code = error_code(exc)
                        if attempt.committing and writes and code != DEADLOCK:
                            raise write_outcome_unknown() from None
                        if code == DEADLOCK:
                            conflicts += 1
                            self.conflicts += 1
                            if conflicts > self.config.conflict_retries:
                                raise write_conflict(conflicts) from None
                            # Apart, so that two writers of one row do not meet again at once.
                            await asyncio.sleep(random.uniform(0.002, 0.01) * conflicts)
                        elif connection_lost(exc) and node not in refreshed:
                            refreshed.add(node)  # one dead connection: its idle siblings are dead too
                            if node.pool is not None:
                                await node.pool.clear()
                        elif connection_lost(exc) or code == NOT_READY:
                            self.nodes.leave(node, _describe(exc))
                            tried.add(node)
                        else:
                            raise
        except TimeoutError:
            if attempt.committing and writes:
                raise write_outcome_unknown() from None
            raise database_unavailable(f"no answer from the database within {self.config.query_timeout:g}s; "
                                       "retry later") from None

    async def _once(self, node: Node, body: Body[T], transaction: bool, attempt: _Attempt) -> T:
        pool = await self.nodes.pool(node)
        conn = await pool.acquire()
        try:
            if transaction:
                await conn.begin()
            async with conn.cursor(aiomysql.DictCursor) as cur:
                result = await body(cur)
            if transaction:
                attempt.committing = True
                await conn.commit()
                attempt.committing = False
            return result
        except Exception as exc:
            if conn.closed or connection_lost(exc) or attempt.committing:
                conn.close()  # its state is unknown: the pool must not hand it out again
            elif transaction:
                try:
                    await conn.rollback()
                except Exception:
                    conn.close()  # the server rolls back what a closed connection left open
                except asyncio.CancelledError:
                    conn.close()
                    raise
            raise
        except asyncio.CancelledError:  # the deadline, or the client went away: mid-exchange
            conn.close()
            raise
        finally:
            pool.release(conn)


DB_POOL: web.AppKey[Database] = web.AppKey("db_pool", Database)


def pool_ctx(db: MariaDBConfig) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx that owns the app's Database (pools and probes) for the app's lifetime."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        database = Database(db)
        await database.start()
        app[DB_POOL] = database
        try:
            yield
        finally:
            await database.close()

    return ctx


async def create_pool(db: MariaDBConfig) -> Database:
    """A started Database (its first probe round done); close() it when done."""
    database = Database(db)
    await database.start()
    return database


async def fetch_one(database: Database, sql: str, args: Args = None) -> Row | None:
    rows = await fetch_all(database, sql, args)
    return rows[0] if rows else None


async def fetch_all(database: Database, sql: str, args: Args = None) -> list[Row]:
    """A read in autocommit: run again elsewhere when the node fails, it changes nothing."""
    async def read(cur: aiomysql.DictCursor) -> list[Row]:
        await cur.execute(sql, args)
        return list(await cur.fetchall())
    return await database.run(read, transaction=False, writes=False)


async def transaction(database: Database, body: Body[T], *, writes: bool = True) -> T:
    """`await body(cursor)` inside BEGIN ... COMMIT (ROLLBACK on any error); it may run more than once, so
    it must do SQL only. `writes=False` for a read in one snapshot: its COMMIT can lose nothing."""
    return await database.run(body, transaction=True, writes=writes)


async def connect(db: MariaDBConfig) -> aiomysql.Connection:
    """One connection to the first node that answers, for tools that run statements in order (migrate,
    seed); a node without quorum (1047) is passed over."""
    args = _connect_args(db)
    failure: Exception | None = None
    for node in db.nodes:
        try:
            conn = await aiomysql.connect(host=node.host, port=node.port, **args)
        except pymysql.MySQLError as exc:
            failure = exc
            continue
        try:
            async with conn.cursor() as cur:
                await cur.execute("SELECT 1")
            return conn
        except pymysql.MySQLError as exc:
            conn.close()
            failure = exc
    assert failure is not None
    raise failure


def error_code(exc: BaseException) -> int | None:
    """The MariaDB error number of a driver error (None for anything else)."""
    if isinstance(exc, pymysql.MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def connection_lost(exc: BaseException) -> bool:
    """The connection died or never came (server restart, node gone, killed): try it fresh, or elsewhere."""
    if isinstance(exc, (pymysql.err.InterfaceError, ConnectionError)):
        return True
    if isinstance(exc, pymysql.err.InternalError) and error_code(exc) is None:
        return True  # the protocol broke ("Packet sequence number wrong"): the driver closed the connection
    return error_code(exc) in _CONNECTION_LOST


def is_duplicate_key(exc: Exception) -> bool:
    """True for MariaDB's ER_DUP_ENTRY (1062): a unique key already holds the value."""
    return bool(exc.args) and exc.args[0] == 1062


def _describe(exc: BaseException) -> str:
    code = error_code(exc)
    return f"{code} {exc.args[1]}" if code is not None and len(exc.args) > 1 else type(exc).__name__
