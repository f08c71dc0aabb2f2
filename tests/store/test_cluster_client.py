"""The gateway's Redis Cluster client (proxy/clusterclient.py) against the session's real cluster."""
from __future__ import annotations

import asyncio

from redis.asyncio.cluster import ClusterNode
from redis.crc import key_slot

from proxy.clusterclient import PIPELINE_ROOM, ClusterLookups, GatewayCluster, TopologyWatch, make_cluster_client
from proxy.metrics import Metrics
from proxy.store import CacheStore
from tests.support.polling import poll
from tests.support.redisclients import cluster_gateway_client


async def test_a_burst_past_the_pool_waits_for_a_connection_instead_of_failing(redis_cluster):
    """redis-py's cluster pool of a node raises past max_connections; a single Redis's blocking pool waits.
    The store's batches (retire_many, purges, tag drops) send up to 48 calls at once and the invalidator's
    pool is smaller: every call must still land, never as a missed write."""
    users = redis_cluster.users
    client = make_cluster_client(redis_cluster.startup_nodes, timeout=5.0, username=users.gateway_user,
                                 password=users.gateway_password, max_connections=PIPELINE_ROOM + 2)
    await client.initialize()
    try:
        # Every key on one slot: its node alone gets the whole burst.
        found = await asyncio.gather(*(client.set(f"burst:{{one}}:{i}", i) for i in range(200)))
        assert found == [True] * 200
        store = CacheStore(client, prefix="burst", timeout=5.0, breaker_failures=100, breaker_reset=1.0,
                           metrics=Metrics(), retries_writes=True)
        outcomes = await store.retire_many([(f"user:{i}", 3, False) for i in range(300)], ttl=5.0)
        assert outcomes == ["absent"] * 300
    finally:
        await client.aclose()


async def test_concurrent_pipelines_past_the_pool_wait_too(redis_cluster):
    """The invalidator sends many batches at once (each a cluster pipeline: one connection per node)."""
    users = redis_cluster.users
    client = make_cluster_client(redis_cluster.startup_nodes, timeout=5.0, username=users.gateway_user,
                                 password=users.gateway_password, max_connections=PIPELINE_ROOM + 2)
    await client.initialize()
    try:
        store = CacheStore(client, prefix="burst2", timeout=5.0, breaker_failures=100, breaker_reset=1.0,
                           metrics=Metrics(), retries_writes=True)
        found = await asyncio.gather(*(store.retire_many([(f"user:{b}:{i}", 3, False) for i in range(20)],
                                                         ttl=5.0) for b in range(40)))
        assert found == [["absent"] * 20] * 40
    finally:
        await client.aclose()


def _swap(cluster, replica_address: str) -> None:
    """A manual failover (CLUSTER FAILOVER on a replica): it becomes its slots' master, no process dies."""
    node = next(n for n in cluster.nodes if n.address == replica_address)
    node.admin(timeout=5.0).execute_command("CLUSTER", "FAILOVER")


async def _until(condition, what: str) -> None:
    assert await poll(condition, 30), what


async def test_a_failover_moves_the_lookups_and_claims_to_the_new_master_and_is_seen_as_one(redis_cluster):
    """After a failover the old master answers MOVED: its keys' lookups fail (they bypass), the slot map
    is read again, and the next lookups and claims go to the new master; the store's TopologyWatch sees
    the change once (it moves the epoch for it)."""
    users = redis_cluster.users
    client = await cluster_gateway_client(redis_cluster, timeout=5.0)
    lookups = ClusterLookups(client, connect_timeout=5.0, username=users.gateway_user,
                             password=users.gateway_password)
    watch = TopologyWatch(client)
    key = "cg-failover:{moved}"
    master = redis_cluster.status().owner(key_slot(key.encode()))
    replica = redis_cluster.status().replicas_of(master)[0]
    try:
        assert watch.changed() is False  # the first look
        assert await lookups.set_absent(key, b"before", 60_000) is None  # set on the master
        assert await lookups.fetch([key]) == [b"before"]
        assert watch.changed() is False  # nothing moved
        await client.nodes_manager.initialize()  # the map read again, the same masters: no change
        assert watch.changed() is False
        _swap(redis_cluster, replica.address)

        async def promoted() -> bool:
            owner = redis_cluster.status().owner(key_slot(key.encode()))
            return owner is not None and owner.address == replica.address
        await _until(promoted, "the replica never took over its master's slots")
        seen: list = []

        async def served_again() -> bool:
            seen[:] = await lookups.fetch([key])  # MOVED first, then (the map read again) the value
            return seen == [b"before"]
        await _until(served_again, f"the lookups never followed the failover: {seen}")
        assert watch.changed() is True and watch.changed() is False  # one change, seen once
        # A claim goes to the new master too (SET NX there: the key exists, so its value comes back).
        assert await lookups.set_absent(key, b"again", 60_000) == b"before"
    finally:
        await lookups.aclose()
        await client.aclose()
        # Back as it was: the old master, once it follows its replica, takes its slots again (a manual
        # failover is asked for again until it happens: one asked before the link is up does nothing).
        async def restored() -> bool:
            status = redis_cluster.status()
            owner = status.owner(key_slot(key.encode()))
            if owner is not None and owner.address == master.address:
                return status.healthy
            if status.node(master.address).master_link == "up":
                _swap(redis_cluster, master.address)
            await asyncio.sleep(0.5)  # the failover takes a moment
            return False
        await _until(restored, "the first master never took its slots back")


async def test_the_client_never_holds_more_connections_of_a_node_than_its_bound(redis_cluster):
    """Commands and pipelines in flight stay below max_connections - PIPELINE_ROOM, seen from the node."""
    users = redis_cluster.users
    client = GatewayCluster(startup_nodes=[ClusterNode(h, p) for h, p in redis_cluster.startup_nodes],
                            username=users.gateway_user, password=users.gateway_password,
                            max_connections=PIPELINE_ROOM + 3, require_full_coverage=False)
    await client.initialize()
    key = "bound:{one}"
    owner = redis_cluster.status().owner(key_slot(key.encode()))
    node = next(n for n in redis_cluster.nodes if n.address == owner.address)
    admin = node.admin(timeout=5.0)
    earlier = {c["id"] for c in admin.client_list()}  # the session's other clients: not this one's
    try:
        await asyncio.gather(*(client.set(f"bound:{{one}}:{i}", i) for i in range(100)))
        ours = [c for c in admin.client_list() if c["user"] == users.gateway_user and c["id"] not in earlier]
        assert 1 <= len(ours) <= 3, ours
    finally:
        await client.aclose()


async def test_a_client_that_has_not_read_its_map_yet_has_no_change_to_report(redis_cluster):
    """A gateway started while the cluster did not answer has an empty slot map: that is no failover."""
    users = redis_cluster.users
    client = make_cluster_client(redis_cluster.startup_nodes, timeout=5.0, username=users.gateway_user,
                                 password=users.gateway_password, max_connections=8)
    try:
        assert not client.nodes_manager.slots_cache
        assert TopologyWatch(client).changed() is False
    finally:
        await client.aclose()
