"""Reading the test database directly, to check what a request did (or did not) write."""
from __future__ import annotations

from typing import Any

from backends.common.db import connect
from cachegate.config import Config


async def fetch_rows(config: Config, sql: str, args: Any = None) -> list[tuple]:
    conn = await connect(config.mariadb)
    try:
        async with conn.cursor() as cur:
            await cur.execute(sql, args)
            return list(await cur.fetchall())
    finally:
        conn.close()
