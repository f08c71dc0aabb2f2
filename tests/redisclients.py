"""Redis clients of the tests: as the gateway (what the code under test runs as) or as the admin (inspection)."""
from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from stack.redis import RedisServer
from stack.redis_acl import ADMIN_USER

NO_RETRY = Retry(NoBackoff(), 0)


def gateway_client(server: RedisServer, *, url: str | None = None, **options: Any) -> aioredis.Redis:
    """A client with the gateway's ACL user: a command the gateway lacks fails here as in production.

    `url` points it elsewhere (another database, another server with the same users, a dead port); the
    database number is the URL's, whatever the options say.
    """
    users = server.users
    assert users is not None
    return aioredis.Redis.from_url(url or server.url, username=users.gateway_user,
                                   password=users.gateway_password, **options)


def admin_client(server: RedisServer, *, url: str | None = None, **options: Any) -> aioredis.Redis:
    """A client with every right, for what only a test does: SCAN, MSET, CLIENT LIST, INFO, DEL."""
    users = server.users
    assert users is not None
    return aioredis.Redis.from_url(url or server.url, username=ADMIN_USER, password=users.admin_password,
                                   **options)
