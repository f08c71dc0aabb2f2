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

COLUMNS = "id, login, first_name, last_name, email, title, version, token_version, created_at, updated_at"


def public(row: Mapping[str, Any]) -> dict[str, Any]:
    """A user as anyone may see it: no email, no login (half of the credentials), never the hash."""
    return {
        "id": row["id"],
        "first_name": row["first_name"],
        "last_name": row["last_name"],
        "title": row["title"],
        "version": row["version"],
        "created_at": iso(row["created_at"]),
        "updated_at": iso(row["updated_at"]),
    }


def private(row: Mapping[str, Any]) -> dict[str, Any]:
    """A user as the user itself sees it: the public profile, its login and its email."""
    return {**public(row), "login": row["login"], "email": row["email"]}


async def insert(pool: db.Database, fields: Mapping[str, Any], password_hash: str) -> db.Row:
    async def write(cur: aiomysql.DictCursor) -> db.Row:
        await cur.execute(
            "INSERT INTO users (login, password_hash, first_name, last_name, email, title,"
            " created_at, updated_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, UTC_TIMESTAMP(6), UTC_TIMESTAMP(6))",
            (fields["login"], password_hash, fields["first_name"], fields["last_name"], fields["email"],
             fields["title"]),
        )
        await cur.execute(f"SELECT {COLUMNS} FROM users WHERE id = %s", (cur.lastrowid,))
        return await cur.fetchone()

    try:
        return await db.transaction(pool, write)
    except pymysql.err.IntegrityError as exc:
        if db.is_duplicate_key(exc):
            raise conflict(f"login {fields['login']!r} is taken") from None
        raise


async def get(pool: db.Database, user_id: int) -> db.Row | None:
    return await db.fetch_one(pool, f"SELECT {COLUMNS} FROM users WHERE id = %s", (user_id,))


async def get_by_login(pool: db.Database, login: str) -> db.Row | None:
    return await db.fetch_one(pool, f"SELECT {COLUMNS} FROM users WHERE login = %s", (login,))


async def credentials(pool: db.Database, login: str) -> tuple[int, str, int] | None:
    """(id, password hash, token version) of a login, for the token endpoint only."""
    row = await db.fetch_one(pool, "SELECT id, password_hash, token_version FROM users WHERE login = %s",
                             (login,))
    return None if row is None else (row["id"], row["password_hash"], int(row["token_version"]))


async def search(pool: db.Database, first_name: str | None, last_name: str | None,
                 limit: int, offset: int) -> tuple[list[db.Row], bool]:
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
    return rows[:limit], len(rows) > limit


async def update(pool: db.Database, user_id: int, columns: Mapping[str, Any],
                 versions: list[int] | None) -> db.Row:
    """Apply the columns, bump the version and return the row as written (read under the same row lock).

    A new password also bumps the token version: every token issued before is void from this commit on."""
    async def write(cur: aiomysql.DictCursor) -> db.Row:
        await versioned.update(cur, "users", user_id, columns, versions, what="user")
        if "password_hash" in columns:
            await cur.execute("UPDATE users SET token_version = token_version + 1 WHERE id = %s", (user_id,))
        await cur.execute(f"SELECT {COLUMNS} FROM users WHERE id = %s", (user_id,))
        return await cur.fetchone()

    return await db.transaction(pool, write)


async def delete(pool: db.Database, user_id: int, versions: list[int] | None) -> tuple[int, int]:
    """(the version after the delete, the token version the row had); 404 when there is no row."""
    async def write(cur: aiomysql.DictCursor) -> tuple[int, int]:
        # Locked first, so no password change slips between this read and the delete.
        await cur.execute("SELECT token_version FROM users WHERE id = %s FOR UPDATE", (user_id,))
        row = await cur.fetchone()
        version = await versioned.delete(cur, "users", user_id, versions, what="user")  # 404 without a row
        return version, int(row["token_version"])

    return await db.transaction(pool, write)
