"""Migrations apply once and in order; the seed is deterministic, idempotent and its credentials work."""
from __future__ import annotations

import asyncio
import json
import stat

from backends.migrate import SCHEMA_DIR, migrate, statements
from backends.seed import KNOWN_USERS, seed, seed_row
from backends.users.app import create_app as users_app
from tests.support.dbrows import fetch_rows

ROWS = "SELECT login, first_name, last_name, email, title FROM users ORDER BY login"


async def query(config, sql, args=None):
    return await fetch_rows(config, sql, args)


def test_statements_split_on_line_ends_and_drop_comments():
    sql = ("-- a comment; not a statement\nCREATE TABLE a (x INT);\n\n"
           "  -- another\nCREATE TABLE b (\n y INT\n);")
    assert statements(sql) == ["CREATE TABLE a (x INT)", "CREATE TABLE b (\n y INT\n)"]
    assert len(statements((SCHEMA_DIR / "001_init.sql").read_text())) == 4


async def test_migrate_applies_once_even_when_run_concurrently(make_config):
    config = make_config()
    first, second = await asyncio.gather(migrate(config), migrate(config))
    assert sorted([first, second]) == [[], ["001_init.sql", "002_token_version.sql"]]
    assert await migrate(config) == []
    tables = {name for (name,) in await query(config, "SHOW TABLES")}
    assert tables == {"schema_migrations", "users", "paths", "trips", "trip_members"}
    applied = [name for (name,) in await query(config, "SELECT name FROM schema_migrations ORDER BY name")]
    assert applied == ["001_init.sql", "002_token_version.sql"]
    engines = await query(config, "SELECT table_name, engine, table_collation FROM information_schema.tables"
                                   " WHERE table_schema = %s", (config.mariadb.database,))
    assert all(engine == "InnoDB" and collation.startswith("utf8mb4") for _, engine, collation in engines)


async def test_migrate_applies_new_files_in_order(make_config, tmp_path):
    config = make_config()
    schema = tmp_path / "schema"
    schema.mkdir()
    (schema / "001_init.sql").write_text((SCHEMA_DIR / "001_init.sql").read_text())
    assert await migrate(config, schema_dir=schema) == ["001_init.sql"]
    (schema / "003_later.sql").write_text("ALTER TABLE paths ADD COLUMN note2 VARCHAR(10) NULL AFTER note;\n")
    (schema / "002_note.sql").write_text("-- a note\nALTER TABLE paths ADD COLUMN note VARCHAR(10) NULL;\n")
    assert await migrate(config, schema_dir=schema) == ["002_note.sql", "003_later.sql"]
    assert await migrate(config, schema_dir=schema) == []


async def test_seed_is_deterministic_idempotent_and_its_credentials_work(make_config, aiohttp_client):
    config = make_config()
    await migrate(config)
    seen = []
    result = await seed(config, users=25, progress=lambda done, total: seen.append((done, total)))
    assert (result.present, result.inserted, result.skipped) == (25, 25, False)
    assert seen[-1] == (25, 25) and all(total == 25 for _, total in seen)

    rows = await query(config, ROWS)
    assert rows == [seed_row(i) for i in range(1, 26)]
    assert rows[0][0] == "user000001" and rows[-1][0] == "user000025"

    # The same N on another database gives the same rows.
    other = make_config()
    await migrate(other)
    await seed(other, users=25)
    assert await query(other, ROWS) == rows

    creds = json.loads(result.credentials.read_text())
    assert result.credentials == config.stack.data_dir / "seed-users.json"
    assert stat.S_IMODE(result.credentials.stat().st_mode) == 0o600
    assert creds["count"] == 25 and len(creds["users"]) == KNOWN_USERS
    assert [u["login"] for u in creds["users"]] == [f"user{i:06d}" for i in range(1, KNOWN_USERS + 1)]
    client = await aiohttp_client(users_app(config))
    for known in creds["users"][:3]:
        resp = await client.post("/auth/token", json={"login": known["login"], "password": known["password"]})
        assert resp.status == 200
        token = (await resp.json())["access_token"]
        me = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert (await me.json())["id"] == known["id"]
    # Bulk users share one hash of a password nobody was told.
    hashes = await query(config, "SELECT COUNT(DISTINCT password_hash) FROM users")
    assert hashes == [(KNOWN_USERS + 1,)]

    again = await seed(config, users=25)
    assert (again.skipped, again.inserted, again.present) == (True, 0, 25)
    assert json.loads(result.credentials.read_text()) == creds

    grown = await seed(config, users=40)
    assert (grown.skipped, grown.inserted, grown.present) == (False, 15, 40)
    assert json.loads(grown.credentials.read_text())["count"] == 40
    assert await query(config, "SELECT COUNT(*) FROM users") == [(40,)]


async def test_seed_without_its_credentials_file_gives_known_users_new_passwords(make_config, aiohttp_client):
    config = make_config()
    await migrate(config)
    first = await seed(config, users=12)
    old = json.loads(first.credentials.read_text())["users"][0]
    first.credentials.unlink()
    again = await seed(config, users=12)
    assert (again.skipped, again.inserted, again.present) == (False, 0, 12)
    new = json.loads(again.credentials.read_text())["users"][0]
    assert new["id"] == old["id"] and new["password"] != old["password"]
    client = await aiohttp_client(users_app(config))
    for creds, status in ((new, 200), (old, 401)):
        resp = await client.post("/auth/token", json={"login": creds["login"], "password": creds["password"]})
        assert resp.status == status


async def test_seeding_again_keeps_the_passwords_and_tokens_of_the_users_it_made(make_config, aiohttp_client):
    """Regression: every seed with another N gave the known users new passwords and voided their tokens."""
    config = make_config()
    await migrate(config)
    first = await seed(config, users=12)
    known = json.loads(first.credentials.read_text())["users"]
    client = await aiohttp_client(users_app(config))
    resp = await client.post("/auth/token", json={"login": known[0]["login"], "password": known[0]["password"]})
    token = (await resp.json())["access_token"]
    before = await query(config, "SELECT id, password_hash, version, token_version FROM users ORDER BY id")
    grown = await seed(config, users=30)
    assert (grown.skipped, grown.inserted) == (False, 18)
    after = await query(config, "SELECT id, password_hash, version, token_version FROM users ORDER BY id")
    assert after[:12] == before  # not one column of an existing user changed
    assert json.loads(grown.credentials.read_text())["users"] == known
    me = await client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status == 200  # the token of before still works
    smaller = await seed(config, users=5)
    assert (smaller.skipped, smaller.inserted) == (False, 0)
    assert json.loads(smaller.credentials.read_text())["users"] == known[:5]
    assert await query(config, "SELECT id, password_hash, version, token_version FROM users ORDER BY id") == after


def test_seed_with_zero_users_is_a_usage_error_not_a_traceback():
    import subprocess
    import sys
    for bad in ("0", "-3", "many", "1000000"):
        done = subprocess.run([sys.executable, "-m", "cachegate", "seed", "--users", bad], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
        assert "--users: expected" in done.stderr
