"""Redis clients of the tests (as the gateway, or as the admin to look) and the gateway user's refusals."""
from __future__ import annotations

from typing import Any

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from redis.asyncio.cluster import ClusterNode
from redis.asyncio.cluster import RedisCluster as ClusterClient

from proxy.clusterclient import GatewayCluster, make_cluster_client
from stack.redis import RedisServer
from stack.redis_acl import ADMIN_USER
from stack.redis_cluster import RedisCluster

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


async def cluster_gateway_client(cluster: RedisCluster, *, timeout: float = 2.0) -> GatewayCluster:
    """The cluster client as the proxy makes it (proxy/clusterclient.py), logged in as the gateway's user,
    started (the slot map read) as the proxy starts it."""
    users = cluster.users
    client = make_cluster_client(cluster.startup_nodes, timeout=timeout, username=users.gateway_user,
                                 password=users.gateway_password, max_connections=64)
    await client.initialize()
    return client


def cluster_admin_client(cluster: RedisCluster, **options: Any) -> ClusterClient:
    """redis-py's cluster client with every right: SCAN over every master, DEL, INFO."""
    return ClusterClient(startup_nodes=[ClusterNode(h, p) for h, p in cluster.startup_nodes],
                         username=ADMIN_USER, password=cluster.users.admin_password, **options)


def cluster_denials(cluster: RedisCluster) -> list[str]:
    """gateway_denials on every running node of the cluster."""
    return [f"{node.port}: {d}" for node in cluster.nodes for d in gateway_denials(node)]
