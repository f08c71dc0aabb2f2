"""Seeded users for the load test: seeding, ids, real tokens from POST /auth/token, the scripts' input files.

The files hold tokens and Basic credentials: they go to a private temporary folder (0700), never to results/.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pymysql

from backends import seed as seeding
from cachegate.config import Config
from loadtest.httpjson import CallError, call_json

# scrypt verification costs ~70 ms of CPU per token: two at a time keep both cores busy, no more.
TOKEN_PARALLELISM = 2
PROFILE_FIELDS = ("first_name", "last_name", "email", "title")


class CredentialsError(RuntimeError):
    """The seeded users or their credentials could not be obtained."""


@dataclass(frozen=True)
class Known:
    """A seeded user whose password we know, with the token obtained for it."""

    id: int
    login: str
    password: str
    token: str = ""
    profile: dict[str, Any] | None = None

    @property
    def basic(self) -> str:
        return "Basic " + base64.b64encode(f"{self.login}:{self.password}".encode()).decode()


def seed(config: Config, users: int, progress: Callable[[int, int], None]) -> seeding.SeedResult:
    try:
        return asyncio.run(seeding.seed(config, users, progress))
    except (ValueError, pymysql.MySQLError, OSError) as exc:
        raise CredentialsError(f"seeding {users} users failed: {exc}") from None


def seeded_ids(config: Config, users: int) -> list[int]:
    """Ids of seeded users 1..N, in seed order (the Zipf script makes the first ones the hottest)."""
    try:
        ids = asyncio.run(seeding.seeded_ids(config, users))
    except (pymysql.MySQLError, OSError) as exc:
        raise CredentialsError(f"cannot read the seeded ids: {exc}") from None
    if len(ids) != users:
        raise CredentialsError(f"expected {users} seeded users, found {len(ids)}")
    return ids


def known_users(config: Config) -> list[Known]:
    path = seeding.credentials_path(config)
    try:
        data = json.loads(path.read_text())
        return [Known(int(u["id"]), str(u["login"]), str(u["password"])) for u in data["users"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CredentialsError(f"cannot read the seeded credentials in {path}: {exc}") from None


def _call(method: str, url: str, *, body: dict[str, Any] | None = None,
          headers: dict[str, str] | None = None) -> dict[str, Any]:
    try:
        return call_json(method, url, body=body, headers=headers)
    except CallError as exc:
        raise CredentialsError(str(exc)) from None


def with_tokens(proxy_url: str, users: list[Known], progress: Callable[[int], None]) -> list[Known]:
    """A real token for each user, through the proxy's POST /auth/token, and the user's current profile."""
    done = 0

    def one(user: Known) -> Known:
        nonlocal done
        body = {"login": user.login, "password": user.password}
        token = _call("POST", f"{proxy_url}/auth/token", body=body)
        access = str(token["access_token"])
        # /users/me: the user's own view, the only one with the email a PUT must send back
        profile = _call("GET", f"{proxy_url}/users/me", headers={"Authorization": f"Bearer {access}"})
        done += 1
        progress(done)
        return Known(user.id, user.login, user.password, access, {k: profile[k] for k in PROFILE_FIELDS})

    with ThreadPoolExecutor(TOKEN_PARALLELISM) as pool:
        return list(pool.map(one, users))


@dataclass(frozen=True)
class ScriptFiles:
    ids: Path
    bearer: Path
    basic: Path


def write_files(folder: Path, ids: list[int], users: list[Known]) -> ScriptFiles:
    """ids.txt, bearer.tsv (with the mixed script's PUT and PATCH bodies) and basic.tsv, all mode 0600."""
    os.chmod(folder, 0o700)
    files = ScriptFiles(folder / "ids.txt", folder / "bearer.tsv", folder / "basic.tsv")
    _private(files.ids, "".join(f"{i}\n" for i in ids))
    lines = []
    for user in users:
        profile = user.profile or {}
        put = json.dumps({k: profile[k] for k in PROFILE_FIELDS}, ensure_ascii=True)
        patch = json.dumps({"title": profile["title"]}, ensure_ascii=True)
        lines.append(f"{user.id}\tBearer {user.token}\t{put}\t{patch}\n")
    _private(files.bearer, "".join(lines))
    _private(files.basic, "".join(f"{u.id}\t{u.basic}\n" for u in users))
    return files


def _private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
