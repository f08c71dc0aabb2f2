"""SQL of the trips service."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiomysql
import pymysql

from backends.common import db, versioned
from backends.common.entities import iso
from backends.common.errors import conflict, forbidden, not_found, unprocessable

COLUMNS = "id, owner_id, path_id, name, starts_at, finishes_at, member_count, version, created_at, updated_at"
_NO_PARENT_ROW = 1452  # ER_NO_REFERENCED_ROW_2: the foreign key found no such path


def to_json(row: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"],
        "owner_id": row["owner_id"],
        "path_id": row["path_id"],
        "name": row["name"],
        "starts_at": iso(row["starts_at"]),
        "finishes_at": iso(row["finishes_at"]),
        "member_count": row["member_count"],
        "version": row["version"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


async def insert(pool: db.Database, owner_id: int, fields: Mapping[str, Any]) -> dict[str, Any]:
    async def write(cur: aiomysql.DictCursor) -> dict[str, Any]:
        await cur.execute(
            "INSERT INTO trips (owner_id, path_id, name, starts_at, finishes_at, created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
            (owner_id, fields["path_id"], fields["name"], fields["starts_at"], fields["finishes_at"]),
        )
        await cur.execute(f"SELECT {COLUMNS} FROM trips WHERE id = %s", (cur.lastrowid,))
        return to_json(await cur.fetchone())

    try:
        return await db.transaction(pool, write)
    except pymysql.err.IntegrityError as exc:
        raise _unknown_path(exc, fields["path_id"]) from None


async def get(pool: db.Database, trip_id: int) -> dict[str, Any] | None:
    row = await db.fetch_one(pool, f"SELECT {COLUMNS} FROM trips WHERE id = %s", (trip_id,))
    return None if row is None else to_json(row)


async def by_owner(pool: db.Database, owner_id: int, limit: int,
                   offset: int) -> tuple[list[dict[str, Any]], bool]:
    rows = await db.fetch_all(
        pool, f"SELECT {COLUMNS} FROM trips WHERE owner_id = %s ORDER BY id LIMIT %s OFFSET %s",
        (owner_id, limit + 1, offset),
    )
    return [to_json(row) for row in rows[:limit]], len(rows) > limit


async def update(pool: db.Database, trip_id: int, caller: int, fields: Mapping[str, Any],
                 versions: list[int] | None) -> dict[str, Any]:
    """Replace a trip's fields; only its owner may (checked under the row lock, before If-Match)."""
    async def write(cur: aiomysql.DictCursor) -> dict[str, Any]:
        await cur.execute("SELECT owner_id FROM trips WHERE id = %s FOR UPDATE", (trip_id,))
        row = await cur.fetchone()
        if row is None:
            raise not_found(f"trip {trip_id} not found")
        if row["owner_id"] != caller:
            raise forbidden("only the trip's owner may change it")
        await versioned.update(cur, "trips", trip_id, fields, versions, what="trip")
        await cur.execute(f"SELECT {COLUMNS} FROM trips WHERE id = %s", (trip_id,))
        return to_json(await cur.fetchone())

    try:
        return await db.transaction(pool, write)
    except pymysql.err.IntegrityError as exc:
        raise _unknown_path(exc, fields["path_id"]) from None


async def join(pool: db.Database, trip_id: int, user_id: int) -> dict[str, Any]:
    """Add the user to the trip's members and bump the trip's version; return the trip as written."""
    async def write(cur: aiomysql.DictCursor) -> dict[str, Any]:
        await cur.execute("SELECT id FROM trips WHERE id = %s FOR UPDATE", (trip_id,))
        if await cur.fetchone() is None:
            raise not_found(f"trip {trip_id} not found")
        await cur.execute(
            "INSERT INTO trip_members (trip_id, user_id, joined_at) VALUES (%s, %s, UTC_TIMESTAMP(6))",
            (trip_id, user_id),
        )
        # Joining changes the trip (its member count): same version rule as any other write.
        await cur.execute(
            "UPDATE trips SET member_count = member_count + 1, version = version + 1,"
            " updated_at = UTC_TIMESTAMP(6) WHERE id = %s",
            (trip_id,),
        )
        await cur.execute(f"SELECT {COLUMNS} FROM trips WHERE id = %s", (trip_id,))
        return to_json(await cur.fetchone())

    try:
        return await db.transaction(pool, write)
    except pymysql.err.IntegrityError as exc:
        if db.is_duplicate_key(exc):
            raise conflict(f"user {user_id} is already a member of trip {trip_id}") from None
        raise


async def members(pool: db.Database, trip_id: int) -> tuple[int, list[dict[str, Any]]] | None:
    """(the trip's version, its members in joining order), read in one snapshot; None if no such trip."""
    async def read(cur: aiomysql.DictCursor) -> tuple[int, list[dict[str, Any]]] | None:
        await cur.execute("SELECT version FROM trips WHERE id = %s", (trip_id,))
        row = await cur.fetchone()
        if row is None:
            return None
        await cur.execute(
            "SELECT user_id, joined_at FROM trip_members WHERE trip_id = %s ORDER BY joined_at, user_id",
            (trip_id,),
        )
        items = [{"user_id": r["user_id"], "joined_at": iso(r["joined_at"])} for r in await cur.fetchall()]
        return row["version"], items

    return await db.transaction(pool, read, writes=False)


def _unknown_path(exc: pymysql.err.IntegrityError, path_id: int) -> Exception:
    if exc.args and exc.args[0] == _NO_PARENT_ROW:
        return unprocessable(f"path_id: path {path_id} does not exist")
    return exc
