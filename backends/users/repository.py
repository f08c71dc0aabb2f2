"""SQL of the users service; every value goes in as a parameter."""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiomysql
import pymysql

from backends.common import db, versioned
from backends.common.entities import iso
from backends.common.errors import conflict
from backends.common.validation import like_prefix

COLUMNS = "id, login, first_name, last_name, email, title, version, created_at, updated_at"


def to_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A user as the API shows it: never the password hash."""
    return {
        "id": row["id"],
        "login": row["login"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "email": row["email"],
        "title": row["title"],
        "version": row["version"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


async def insert(pool: aiomysql.Pool, fields: Mapping[str, Any], password_hash: str) -> dict[str, Any]:
    try:
        async with db.transaction(pool) as cur:
            await cur.execute(
                "INSERT INTO users (login, password_hash, first_name, last_name, email, title,"
                " created_at, updated_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
                (fields["login"], password_hash, fields["first_name"], fields["last_name"], fields["email"],
                 fields["title"]),
            )
            await cur.execute(f"SELECT {COLUMNS} FROM users WHERE id = %s", (cur.lastrowid,))
            return to_json(await cur.fetchone())
    except pymysql.err.IntegrityError as exc:
        if db.is_duplicate_key(exc):
            raise conflict(f"login {fields['login']!r} is taken") from None
        raise


async def get(pool: aiomysql.Pool, user_id: int) -> dict[str, Any] | None:
    row = await db.fetch_one(pool, f"SELECT {COLUMNS} FROM users WHERE id = %s", (user_id,))
    return None if row is None else to_json(row)


async def get_by_login(pool: aiomysql.Pool, login: str) -> dict[str, Any] | None:
    row = await db.fetch_one(pool, f"SELECT {COLUMNS} FROM users WHERE login = %s", (login,))
    return None if row is None else to_json(row)


async def credentials(pool: aiomysql.Pool, login: str) -> tuple[int, str] | None:
    """(id, password hash) of a login, for the token endpoint only."""
    row = await db.fetch_one(pool, "SELECT id, password_hash FROM users WHERE login = %s", (login,))
    return None if row is None else (row["id"], row["password_hash"])


async def search(pool: aiomysql.Pool, first_name: str | None, last_name: str | None,
                 limit: int, offset: int) -> tuple[list[dict[str, Any]], bool]:
    """Users whose names start with the given masks; (page, whether more follow)."""
    conditions, args = [], []
    if last_name:
        conditions.append("last_name LIKE %s ESCAPE '!'")
        args.append(like_prefix(last_name))
    if first_name:
        conditions.append("first_name LIKE %s ESCAPE '!'")
        args.append(like_prefix(first_name))
    # Order along the index that serves the masks, so a page is an index range scan.
    order = "last_name, first_name, id" if last_name else "first_name, id"
    rows = await db.fetch_all(
        pool,
        f"SELECT {COLUMNS} FROM users WHERE {' AND '.join(conditions)} ORDER BY {order} LIMIT %s OFFSET %s",
        (*args, limit + 1, offset),
    )
    return [to_json(row) for row in rows[:limit]], len(rows) > limit


async def update(pool: aiomysql.Pool, user_id: int, columns: Mapping[str, Any],
                 versions: list[int] | None) -> dict[str, Any]:
    """Apply the columns, bump the version and return the row as written (read under the same row lock)."""
    async with db.transaction(pool) as cur:
        await versioned.update(cur, "users", user_id, columns, versions, what="user")
        await cur.execute(f"SELECT {COLUMNS} FROM users WHERE id = %s", (user_id,))
        return to_json(await cur.fetchone())


async def delete(pool: aiomysql.Pool, user_id: int, versions: list[int] | None) -> int:
    async with db.transaction(pool) as cur:
        return await versioned.delete(cur, "users", user_id, versions, what="user")
