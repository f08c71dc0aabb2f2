"""Redis clients of the tests (as the gateway, or as the admin to look) and the gateway user's refusals."""
from __future__ import annotations

from typing import Any

import redis
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


def gateway_denials(server: RedisServer) -> list[str]:
    """Commands, keys or channels the gateway's user was refused (Redis's ACL LOG), then the log is reset.

    A refusal is invisible from outside (the store turns it into a bypass), so the fixtures look here: a
    command the code sends but the ACL lacks fails the tests that used the server. Refused AUTH attempts
    are not counted: tests make those on purpose.
    """
    if server.users is None or not server.is_running():
        return []
    client = redis.Redis(host=server.host, port=server.port, username=ADMIN_USER,
                         password=server.users.admin_password, socket_timeout=5)
    try:
        entries = client.acl_log()
        client.acl_log_reset()
    except redis.RedisError:
        return []  # paused or killed by its test: nothing to read
    finally:
        client.close()
    return [f"{e['reason']} {e['object']}" for e in entries
            if e["username"] == server.users.gateway_user and e["reason"] != "auth"]
