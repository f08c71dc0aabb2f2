"""Deterministic bulk seeding of users, plus known credentials for the load test.

User number i (1-based) always gets the same row content: login `user000001`..., names picked from
fixed lists by i, an email and a title. Ids come from AUTO_INCREMENT; the credentials file records them.

Passwords: scrypt costs ~70 ms per hash, so 100,000 hashes would take about two hours of CPU. The bulk
users therefore share ONE hash of one random bulk password, hashed once per run. The first KNOWN_USERS
users get random passwords of their own; their ids, logins and passwords go to
`<stack.data_dir>/seed-users.json` (mode 0600, `{"users": [{"id", "login", "password"}], "count": N}`)
for the load test. Hashes and passwords (random salts) are the only thing that differs between runs.

N is how many seeded users there should be in all: a run inserts what is missing in multi-row INSERTs, one
transaction per batch, and leaves every user that exists as it is. A known user keeps its password (and its
versions, so its tokens stay valid) as long as the credentials file holds it; only a known user whose
password nobody knows any more (the file lost, or made for another database) gets a new one, which voids its
older tokens like any password change. A run that finds all N users and a file that matches them does
nothing. Run it as `cachegate seed --users N`.
"""
from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiomysql

from backends.common.db import connect
from backends.users.passwords import hash_password
from cachegate.config import Config

KNOWN_USERS = 10
BATCH = 2_000
MAX_USERS = 999_999  # six digits in the login
FIRST_NAMES = ("Ada", "Alan", "Barbara", "Brian", "Claude", "Donald", "Edsger", "Frances", "Grace", "Guido",
               "Hedy", "Ivan", "John", "Ken", "Linus", "Margaret", "Niklaus", "Radia", "Shafi", "Tim")
LAST_NAMES = ("Lovelace", "Turing", "Liskov", "Kernighan", "Shannon", "Knuth", "Dijkstra", "Allen", "Hopper",
              "van Rossum", "Lamarr", "Sutherland", "McCarthy", "Thompson", "Torvalds", "Hamilton", "Wirth",
              "Perlman", "Goldwasser", "Berners-Lee", "Ritchie", "Backus", "Hoare", "Lamport", "Milner")
TITLES = ("Mr", "Ms", "Dr", "Prof", "")

# The rows of seeded users: logins user000001..userNNNNNN, no others (not "user000001x").
_SEEDED = "login BETWEEN %s AND %s AND login REGEXP %s"
_INSERT = ("INSERT INTO users (login, password_hash, first_name, last_name, email, title,"
           " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)")


@dataclass(frozen=True)
class SeedResult:
    requested: int
    present: int          # seeded users in the database after the run
    inserted: int
    skipped: bool         # True when everything was already there
    seconds: float
    credentials: Path


def login_of(i: int) -> str:
    return f"user{i:06d}"


def seed_row(i: int) -> tuple[str, str, str, str, str]:
    """(login, first_name, last_name, email, title) of seeded user number i."""
    login = login_of(i)
    first = FIRST_NAMES[i % len(FIRST_NAMES)]
    last = LAST_NAMES[(i // len(FIRST_NAMES)) % len(LAST_NAMES)]
    return login, first, last, f"{login}@example.com", TITLES[i % len(TITLES)]


def credentials_path(config: Config) -> Path:
    return config.stack.data_dir / "seed-users.json"


async def seed(config: Config, users: int = 10_000,
               progress: Callable[[int, int], None] | None = None) -> SeedResult:
    if not 1 <= users <= MAX_USERS:
        raise ValueError(f"users: expected 1..{MAX_USERS}, got {users}")
    started = time.perf_counter()
    path = credentials_path(config)
    conn = await connect(config.mariadb)
    try:
        async with conn.cursor() as cur:
            present = await _count_seeded(cur, users)
            remembered = await _remembered(cur, path)
            wanted = range(1, min(KNOWN_USERS, users) + 1)
            if present == users and _file_count(path) == users and all(i in remembered for i in wanted):
                return SeedResult(users, present, 0, True, time.perf_counter() - started, path)
            loop = asyncio.get_running_loop()
            known = [(i, remembered.get(i) or secrets.token_urlsafe(12)) for i in wanted]
            fresh = [(i, password) for i, password in known if i not in remembered]
            # The bulk hash and the new known users' hashes in parallel threads (hashlib releases the GIL).
            bulk_hash, *fresh_hashes = await asyncio.gather(
                *(loop.run_in_executor(None, hash_password, pw) for pw in [secrets.token_urlsafe(18)]
                  + [pw for _, pw in fresh]))
            now = datetime.now(timezone.utc).replace(tzinfo=None)
            if fresh:
                await _put_known(conn, cur, fresh, fresh_hashes, now)
            if progress is not None:
                progress(len(known), users)
            await _put_bulk(conn, cur, len(known) + 1, users, bulk_hash, now, progress)
            after = await _count_seeded(cur, users)
            await _write_credentials(cur, path, known, users)
    finally:
        conn.close()
    return SeedResult(users, after, after - present, False, time.perf_counter() - started, path)


def _seeded_args(users: int) -> tuple[str, str, str]:
    return login_of(1), login_of(users), "^user[0-9]{6}$"  # the range uses the login index


async def _count_seeded(cur: aiomysql.Cursor, users: int) -> int:
    await cur.execute(f"SELECT COUNT(*) FROM users WHERE {_SEEDED}", _seeded_args(users))
    (count,) = await cur.fetchone()
    return int(count)


async def seeded_ids(config: Config, users: int) -> list[int]:
    """Ids of seeded users 1..N, in seed order (the load test's Zipf script makes the first ones hottest)."""
    conn = await connect(config.mariadb)
    try:
        async with conn.cursor() as cur:
            await cur.execute(f"SELECT id FROM users WHERE {_SEEDED} ORDER BY login", _seeded_args(users))
            return [int(row[0]) for row in await cur.fetchall()]
    finally:
        conn.close()


def _file_count(path: Path) -> int | None:
    try:
        return int(json.loads(path.read_text())["count"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def _remembered(cur: aiomysql.Cursor, path: Path) -> dict[int, str]:
    """Seed number -> password of the known users the credentials file lists and the database still holds
    (the same id with the same login): their passwords are known, so they are kept."""
    try:
        entries = json.loads(path.read_text())["users"]
        listed = {int(u["id"]): (str(u["login"]), str(u["password"])) for u in entries}
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    if not listed:
        return {}
    await cur.execute(f"SELECT id, login FROM users WHERE id IN ({', '.join(['%s'] * len(listed))})",
                      tuple(listed))
    found = {int(i): login for i, login in await cur.fetchall()}
    by_number = {}
    for uid, (login, password) in listed.items():
        number = int(login[4:]) if login.startswith("user") and login[4:].isdigit() else 0
        if found.get(uid) == login == login_of(number) and password:
            by_number[number] = password
    return by_number


async def _put_known(conn: aiomysql.Connection, cur: aiomysql.Cursor, known: list[tuple[int, str]],
                     hashes: list[str], now: datetime) -> None:
    rows = [_values(i, h, now) for (i, _), h in zip(known, hashes)]
    # Only known users whose password nobody knows any more come here: one that exists gets the new password
    # (and a new version), and its older tokens are void, as after any password change.
    await _insert_batch(conn, cur, " ON DUPLICATE KEY UPDATE password_hash = VALUES(password_hash),"
                        " version = version + 1, token_version = token_version + 1,"
                        " updated_at = VALUES(updated_at)", rows)


async def _put_bulk(conn: aiomysql.Connection, cur: aiomysql.Cursor, first: int, last: int, bulk_hash: str,
                    now: datetime, progress: Callable[[int, int], None] | None) -> None:
    for start in range(first, last + 1, BATCH):
        end = min(start + BATCH - 1, last)
        rows = [_values(i, bulk_hash, now) for i in range(start, end + 1)]
        await _insert_batch(conn, cur, " ON DUPLICATE KEY UPDATE id = id", rows)
        if progress is not None:
            progress(end, last)


async def _insert_batch(conn: aiomysql.Connection, cur: aiomysql.Cursor, on_duplicate: str,
                        rows: list[tuple[Any, ...]]) -> None:
    """One transaction; pymysql turns executemany of one INSERT ... VALUES into multi-row INSERTs."""
    await conn.begin()
    try:
        await cur.executemany(_INSERT + on_duplicate, rows)
        await conn.commit()
    except BaseException:
        await conn.rollback()
        raise


def _values(i: int, password_hash: str, now: datetime) -> tuple[Any, ...]:
    login, first, last, email, title = seed_row(i)
    return login, password_hash, first, last, email, title, now, now


async def _write_credentials(cur: aiomysql.Cursor, path: Path, known: list[tuple[int, str]],
                             users: int) -> None:
    logins = [login_of(i) for i, _ in known]
    await cur.execute(f"SELECT login, id FROM users WHERE login IN ({', '.join(['%s'] * len(logins))})",
                      tuple(logins))
    ids = dict(await cur.fetchall())
    entries = [{"id": ids[login_of(i)], "login": login_of(i), "password": pw} for i, pw in known]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    # Written with 0600 from the start: the file holds passwords.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"users": entries, "count": users}, out, indent=2)
    os.replace(tmp, path)
