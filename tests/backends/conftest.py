"""Fixtures of the service tests: the three apps on one migrated database, and users with tokens."""
from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiohttp.test_utils import TestClient

from backends.paths.app import create_app as paths_app
from backends.trips.app import create_app as trips_app
from backends.users.app import create_app as users_app
from cachegate.config import Config
from cachegate.tokens import TokenIssuer
from tests.support.services import Account, profile

_logins = itertools.count(1)


@pytest.fixture
async def users(aiohttp_client: Callable[..., Awaitable[TestClient]], db_config: Config) -> TestClient:
    return await aiohttp_client(users_app(db_config))


@pytest.fixture
async def paths(aiohttp_client: Callable[..., Awaitable[TestClient]], db_config: Config) -> TestClient:
    return await aiohttp_client(paths_app(db_config))


@pytest.fixture
async def trips(aiohttp_client: Callable[..., Awaitable[TestClient]], db_config: Config) -> TestClient:
    return await aiohttp_client(trips_app(db_config))


@pytest.fixture
def register(users: TestClient, db_config: Config) -> Callable[..., Awaitable[Account]]:
    """Register a user through the API (unique login unless given) and sign a token for it.

    The token is signed with the service's own key instead of a POST /auth/token, which would cost a
    second scrypt per user; the token endpoint has tests of its own.
    """
    issuer = TokenIssuer(db_config.auth)

    async def make(login: str | None = None, **overrides: Any) -> Account:
        login = login or f"user{next(_logins):04d}x"
        resp = await users.post("/users", json=profile(login, **overrides))
        assert resp.status == 201, await resp.text()
        user = await resp.json()
        return Account(user, issuer.issue(user["id"], 1).access_token)  # a new user's token version is 1

    return make


@pytest.fixture
async def account(register: Callable[..., Awaitable[Account]]) -> Account:
    return await register()
