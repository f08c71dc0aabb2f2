"""`GET /-/health` of a service, without a token: 200 when its database pool answers a query, else 503."""
from __future__ import annotations

import asyncio

import pymysql
from aiohttp import web

from backends.common.db import DB_POOL, fetch_one
from backends.common.errors import ApiError

PATH = "/-/health"
# Below the gateway's own check (proxy/ops.py CHECK_TIMEOUT, 1 s), so it hears "unavailable", not silence.
DB_TIMEOUT_S = 0.5
PUBLIC = frozenset({("GET", PATH), ("HEAD", PATH)})


async def health(request: web.Request) -> web.Response:
    """`SELECT 1` through the read path every handler uses (a dead pooled connection is tried again on a
    fresh one), bounded by DB_TIMEOUT_S."""
    try:
        async with asyncio.timeout(DB_TIMEOUT_S):
            await fetch_one(request.app[DB_POOL], "SELECT 1")
    except TimeoutError:
        return _unavailable(f"no answer from the database within {DB_TIMEOUT_S:g} s")
    except ApiError as exc:   # no usable node, or the database's own deadline passed
        return _unavailable(exc.code)
    except (pymysql.MySQLError, OSError) as exc:
        return _unavailable(f"database error: {type(exc).__name__}")
    return web.json_response({"status": "ok", "db": "ok"})


def _unavailable(why: str) -> web.Response:
    return web.json_response({"status": "unavailable", "db": why}, status=503)


routes = [web.get(PATH, health)]
