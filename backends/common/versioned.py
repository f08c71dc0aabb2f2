"""Versioned writes: every UPDATE bumps `version` in the same statement, guarded by If-Match when given.

The guard is part of the UPDATE's WHERE clause, so two concurrent writes with the same If-Match can not
both succeed: one gets the row, the other finds a newer version and answers 412.
Table and column names come from the services' code, never from a request.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import aiomysql

from backends.common.errors import not_found, precondition_failed


async def update(cur: aiomysql.Cursor, table: str, entity_id: int, columns: Mapping[str, Any],
                 versions: list[int] | None, *, what: str) -> None:
    """Set `columns` on row `entity_id` and bump its version; 404 when absent, 412 when If-Match fails."""
    sets = "".join(f"{column} = %s, " for column in columns)
    sql = f"UPDATE {table} SET {sets}version = version + 1, updated_at = UTC_TIMESTAMP(6) WHERE id = %s"
    args: list[Any] = [*columns.values(), entity_id]
    if versions is not None:
        # Versions start at 1: an If-Match of foreign ETags becomes IN (0), which matches nothing.
        accepted = versions or [0]
        sql += f" AND version IN ({', '.join(['%s'] * len(accepted))})"
        args.extend(accepted)
    await cur.execute(sql, args)
    if cur.rowcount == 0:
        await _explain_miss(cur, table, entity_id, what)


async def delete(cur: aiomysql.Cursor, table: str, entity_id: int, versions: list[int] | None,
                 *, what: str) -> int:
    """Delete row `entity_id`; return the version after the delete (the last one + 1) for the tombstone."""
    await cur.execute(f"SELECT version FROM {table} WHERE id = %s FOR UPDATE", (entity_id,))
    row = await cur.fetchone()
    if row is None:
        raise not_found(f"{what} {entity_id} not found")
    version = _version_of(row)
    if versions is not None and version not in versions:
        raise precondition_failed(f"{what} {entity_id} is at version {version}")
    await cur.execute(f"DELETE FROM {table} WHERE id = %s", (entity_id,))
    return version + 1


async def _explain_miss(cur: aiomysql.Cursor, table: str, entity_id: int, what: str) -> None:
    await cur.execute(f"SELECT version FROM {table} WHERE id = %s", (entity_id,))
    row = await cur.fetchone()
    if row is None:
        raise not_found(f"{what} {entity_id} not found")
    raise precondition_failed(f"{what} {entity_id} is at version {_version_of(row)}")


def _version_of(row: Any) -> int:
    return int(row["version"] if isinstance(row, dict) else row[0])
