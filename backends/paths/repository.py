"""SQL of the paths service."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiomysql

from backends.common import db
from backends.common.entities import iso
from backends.common.validation import like_prefix

COLUMNS = "id, owner_id, start_point, end_point, version, created_at, updated_at"


def to_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "owner_id": row["owner_id"],
        "start_point": row["start_point"],
        "end_point": row["end_point"],
        "version": row["version"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


async def insert(pool: db.Database, owner_id: int, start_point: str, end_point: str) -> dict[str, Any]:
    async def write(cur: aiomysql.DictCursor) -> dict[str, Any]:
        await cur.execute(
            "INSERT INTO paths (owner_id, start_point, end_point, created_at, updated_at)"
            " VALUES (%s, %s, %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
            (owner_id, start_point, end_point),
        )
        await cur.execute(f"SELECT {COLUMNS} FROM paths WHERE id = %s", (cur.lastrowid,))
        return to_json(await cur.fetchone())

    return await db.transaction(pool, write)


async def get(pool: db.Database, path_id: int) -> dict[str, Any] | None:
    row = await db.fetch_one(pool, f"SELECT {COLUMNS} FROM paths WHERE id = %s", (path_id,))
    return None if row is None else to_json(row)


async def search(pool: db.Database, start: str, limit: int,
                 offset: int) -> tuple[list[dict[str, Any]], bool]:
    rows = await db.fetch_all(
        pool,
        f"SELECT {COLUMNS} FROM paths WHERE start_point LIKE %s ESCAPE '!'"
        " ORDER BY start_point, id LIMIT %s OFFSET %s",
        (like_prefix(start), limit + 1, offset),
    )
    return [to_json(row) for row in rows[:limit]], len(rows) > limit
