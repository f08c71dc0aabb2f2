"""The aiomysql pool of a service (made in cleanup_ctx) and helpers that hold a connection per query only.

A connection is taken from the pool for one statement (or one short transaction) and given back
before the handler awaits anything else (password hashing, the client, ...), so a pool of
`pool_max` connections serves hundreds of concurrent requests without starving.
"""
from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

import aiomysql
import pymysql
from aiohttp import web

from cachegate.settings import MariaDBConfig

Row = dict[str, Any]
Args = Sequence[Any] | None

# CR_SERVER_GONE_ERROR, CR_SERVER_LOST, ER_CONNECTION_KILLED
_CONNECTION_LOST = frozenset({2006, 2013, 1927})

DB_POOL: web.AppKey[aiomysql.Pool] = web.AppKey("db_pool", aiomysql.Pool)


def _connect_args(db: MariaDBConfig) -> dict[str, Any]:
    return {
        "host": db.host,
        "port": db.port,
        "user": db.user,
        "password": db.password(),
        "db": db.database,
        "autocommit": True,
        "charset": "utf8mb4",
        "connect_timeout": db.connect_timeout,
        # Timestamps are written with UTC_TIMESTAMP() but compared with client values: sessions stay in UTC.
        "init_command": "SET time_zone = '+00:00'",
    }


async def connect(db: MariaDBConfig) -> aiomysql.Connection:
    """One connection, for tools that run a sequence of statements (migrate, seed)."""
    return await aiomysql.connect(**_connect_args(db))


async def create_pool(db: MariaDBConfig) -> aiomysql.Pool:
    """A pool in autocommit mode with utf8mb4 and UTC session time, sized from the config."""
    return await aiomysql.create_pool(
        minsize=db.pool_min,
        maxsize=db.pool_max,
        # Idle connections are what a server restart or a departed Galera node leaves dead: renew them.
        pool_recycle=300,
        **_connect_args(db),
    )


def pool_ctx(db: MariaDBConfig) -> Callable[[web.Application], AsyncIterator[None]]:
    """A cleanup_ctx that owns the app's pool for the app's lifetime."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        pool = await create_pool(db)
        app[DB_POOL] = pool
        try:
            yield
        finally:
            pool.close()
            await pool.wait_closed()

    return ctx


async def fetch_one(pool: aiomysql.Pool, sql: str, args: Args = None) -> Row | None:
    rows = await _read(pool, sql, args, one=True)
    return rows[0] if rows else None


async def fetch_all(pool: aiomysql.Pool, sql: str, args: Args = None) -> list[Row]:
    return await _read(pool, sql, args, one=False)


async def _read(pool: aiomysql.Pool, sql: str, args: Args, *, one: bool) -> list[Row]:
    """A read, tried a second time on a fresh connection when the pooled one turns out to be dead.

    Only reads are retried: they are idempotent. A write on a lost connection has an unknown outcome
    and surfaces as an error (503) for the client to decide.
    """
    try:
        return await _read_once(pool, sql, args, one=one)
    except (pymysql.err.OperationalError, pymysql.err.InterfaceError) as exc:
        if not connection_lost(exc):
            raise
    # One dead connection usually means the server restarted: its idle siblings are dead as well.
    await pool.clear()
    return await _read_once(pool, sql, args, one=one)


async def _read_once(pool: aiomysql.Pool, sql: str, args: Args, *, one: bool) -> list[Row]:
    async with pool.acquire() as conn, conn.cursor(aiomysql.DictCursor) as cur:
        await cur.execute(sql, args)
        if one:
            row = await cur.fetchone()
            return [] if row is None else [row]
        return list(await cur.fetchall())


def connection_lost(exc: Exception) -> bool:
    """The connection died (server restart, node gone, killed): the statement may be tried elsewhere."""
    if isinstance(exc, pymysql.err.InterfaceError):
        return True
    return bool(exc.args) and exc.args[0] in _CONNECTION_LOST


@asynccontextmanager
async def transaction(pool: aiomysql.Pool) -> AsyncIterator[aiomysql.DictCursor]:
    """A cursor inside BEGIN ... COMMIT (ROLLBACK on any error). Await only SQL inside it."""
    async with pool.acquire() as conn:
        await conn.begin()
        try:
            async with conn.cursor(aiomysql.DictCursor) as cur:
                yield cur
            await conn.commit()
        except BaseException:
            try:
                await conn.rollback()
            except Exception:
                # A broken connection can not roll back; closing it makes the server do it.
                conn.close()
            raise


def is_duplicate_key(exc: Exception) -> bool:
    """True for MariaDB's ER_DUP_ENTRY (1062): a unique key already holds the value."""
    return bool(exc.args) and exc.args[0] == 1062
