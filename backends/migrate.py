"""Apply the SQL files of backends/schema/ that the `schema_migrations` table does not list yet, in order.

Run it as `cachegate db migrate`. Several processes may start at once (the launcher,
tests): a MariaDB named lock makes them take turns, so each file is applied exactly once.
"""
from __future__ import annotations

import re
from pathlib import Path

import aiomysql

from backends.common.db import connect
from cachegate.config import Config

SCHEMA_DIR = Path(__file__).with_name("schema")
LOCK_NAME = "cachegate.migrate"
LOCK_WAIT_S = 60
# Statements end with `;` at the end of a line; the schema files hold no procedures or triggers.
_STATEMENT_END = re.compile(r";\s*$", re.MULTILINE)


def statements(sql: str) -> list[str]:
    """The statements of a schema file, without full-line `--` comments."""
    lines = [line for line in sql.splitlines() if not line.lstrip().startswith("--")]
    return [stmt.strip() for stmt in _STATEMENT_END.split("\n".join(lines)) if stmt.strip()]


def pending(applied: set[str], schema_dir: Path = SCHEMA_DIR) -> list[Path]:
    return [path for path in sorted(schema_dir.glob("*.sql")) if path.name not in applied]


async def migrate(config: Config, *, schema_dir: Path = SCHEMA_DIR) -> list[str]:
    """Apply what is pending; return the names of the files applied now (empty when up to date)."""
    conn = await connect(config.mariadb)
    try:
        async with conn.cursor() as cur:
            await cur.execute("SELECT GET_LOCK(%s, %s)", (LOCK_NAME, LOCK_WAIT_S))
            (locked,) = await cur.fetchone()
            if locked != 1:
                raise RuntimeError(f"another migration held the lock {LOCK_NAME!r} for {LOCK_WAIT_S}s")
            try:
                return await _apply_pending(cur, schema_dir)
            finally:
                await cur.execute("SELECT RELEASE_LOCK(%s)", (LOCK_NAME,))
    finally:
        conn.close()


async def _apply_pending(cur: aiomysql.Cursor, schema_dir: Path) -> list[str]:
    # Asked first rather than CREATE ... IF NOT EXISTS, which warns on every run but the first.
    await cur.execute("SHOW TABLES LIKE 'schema_migrations'")
    if not await cur.fetchall():
        await cur.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " name VARCHAR(255) NOT NULL PRIMARY KEY, applied_at DATETIME(6) NOT NULL"
            ") ENGINE=InnoDB DEFAULT CHARSET=utf8mb4"
        )
    await cur.execute("SELECT name FROM schema_migrations")
    applied = {name for (name,) in await cur.fetchall()}
    done = []
    for path in pending(applied, schema_dir):
        for statement in statements(path.read_text(encoding="utf-8")):
            await cur.execute(statement)
        await cur.execute("INSERT INTO schema_migrations (name, applied_at) VALUES (%s, UTC_TIMESTAMP(6))",
                          (path.name,))
        done.append(path.name)
    return done
