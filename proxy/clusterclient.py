"""redis-py's Redis Cluster client as the gateway uses it: its start, lean lookups per node, failovers.

`make_cluster_client` builds redis-py's own client (no sharding of ours): no retries inside it (the store's
time-out decides, as for one Redis), and one that still starts while the first master of CLUSTER SLOTS is
dead (redis-py 8.1 asks that master for COMMAND and fails every command otherwise). `ClusterLookups` is the
hit path on a cluster: redis-py's slot map, and per node one pipelined connection (proxy/lookups.py) that
gets the node's GETs of a batch in one write, every node at once. `TopologyWatch` tells the store when the
masters of the slots changed (a failover), which it counts as writes that may have been lost.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any, Sequence

from redis.asyncio.cluster import ClusterNode, ClusterPipeline, RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.crc import key_slot
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from proxy.lookups import PipelinedLookups

log = logging.getLogger("cachegate.proxy")
# Connections of a node left to what neither a command nor a pipeline of this client takes (redis-py's
# own refresh of the slot map), so that they never meet a pool the calls have filled.
PIPELINE_ROOM = 4
REFRESH_EVERY = 0.1  # seconds: the least time between two slot-map reads the lookups ask for


class GatewayCluster(RedisCluster):
    """redis-py's RedisCluster, except that a dead first master does not stop it from starting, and that
    what its lazy start does wrong under concurrent first commands is a connection error, never a crash.

    redis-py 8.1, measured: without retries, or with `require_full_coverage=False`, commands issued at once
    before the client has read the slot map fail ("Connection closed by server", or an AttributeError
    from a connection not yet made). The proxy starts the client before serving (`await initialize()`);
    after a failover the map is read again lazily, and those failures are then the failover's bypass.

    Its pool of a node raises (MaxConnectionsError) past `max_connections` calls in flight to that node
    where a single Redis's blocking pool waits: the commands and pipelines of this client (each holds at
    most one connection of a node at a time) wait for one of at most `max_connections` - PIPELINE_ROOM in
    flight in all, so that no node is ever asked for more, and a burst waits (within the caller's
    time-out) instead of failing as a missed write.
    """

    def __init__(self, *args: Any, max_connections: int, **kwargs: Any) -> None:
        super().__init__(*args, max_connections=max_connections, **kwargs)
        self.in_flight = asyncio.Semaphore(max(1, max_connections - PIPELINE_ROOM))

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> ClusterPipeline:
        if shard_hint:
            raise RedisClusterException("shard_hint is deprecated in cluster mode")
        return _BoundedPipeline(self, transaction)

    async def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        async with self.in_flight:
            try:
                return await super().execute_command(*args, **kwargs)
            except (AttributeError, TypeError) as exc:
                raise RedisConnectionError(f"cluster client not ready: {exc}") from exc

    async def initialize(self, *args: Any, **kwargs: Any) -> GatewayCluster:
        try:
            await super().initialize(*args, **kwargs)
        except (RedisConnectionError, RedisTimeoutError):
            if not self._initialize:
                raise
            # The slot map was read, but COMMAND went to the first master, which is down: ask another.
            await self.nodes_manager.initialize()
            for node in self.nodes_manager.get_nodes_by_server_type("primary"):
                try:
                    await self.commands_parser.initialize(node)
                except (RedisConnectionError, RedisTimeoutError):
                    continue
                self.nodes_manager.default_node = node
                self._initialize = False
                return self
            raise
        return self


class _BoundedPipeline(ClusterPipeline):
    """A cluster pipeline that takes its place among the client's calls in flight (GatewayCluster)."""

    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        async with self.cluster_client.in_flight:
            return await super().execute(raise_on_error, allow_redirections)


def make_cluster_client(nodes: Sequence[tuple[str, int]], *, timeout: float, username: str | None,
                        password: str | None, max_connections: int) -> GatewayCluster:
    """The gateway's cluster client: bytes out, the redis.timeout on every socket, no retries of its own
    (a failed command raises at once and the slot map is read again before the next one)."""
    return GatewayCluster(startup_nodes=[ClusterNode(host, port) for host, port in nodes],
                          username=username, password=password, socket_timeout=timeout,
                          socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
                          max_connections=max_connections, require_full_coverage=False)


def _masters(client: RedisCluster) -> tuple:
    cache = client.nodes_manager.slots_cache
    return tuple(sorted({(nodes[0].name, slot) for slot, nodes in cache.items()
                         if slot == 0 or cache.get(slot - 1) is not nodes}))


class TopologyWatch:
    """Whether the master of any slot changed since the last look. Cheap when nothing changed: redis-py
    replaces its slot map by a new dict when it reads it again, so only a new dict is compared."""

    def __init__(self, client: RedisCluster) -> None:
        self._client = client
        self._cache: object = None
        self._masters: tuple | None = None

    def changed(self) -> bool:
        cache = self._client.nodes_manager.slots_cache
        if cache is self._cache:
            return False
        self._cache = cache
        if not cache:
            return False
        masters = _masters(self._client)
        before, self._masters = self._masters, masters
        return before is not None and masters != before


class ClusterLookups:
    """The store's batches on a cluster: each key to its slot's master, one pipelined write per node, all
    nodes at once; a node that fails fails its keys only (their places hold the error), and its failure or
    a MOVED reply makes the slot map be read again (at most every REFRESH_EVERY seconds)."""

    def __init__(self, client: RedisCluster, *, connect_timeout: float, username: str | None = None,
                 password: str | None = None) -> None:
        self._client = client
        self._options = {"connect_timeout": connect_timeout, "username": username, "password": password}
        self._nodes: dict[str, PipelinedLookups] = {}
        self._refreshing: asyncio.Task[None] | None = None
        self._refreshed = 0.0

    def _node(self, node: ClusterNode) -> PipelinedLookups:
        found = self._nodes.get(node.name)
        if found is None:
            found = self._nodes[node.name] = PipelinedLookups(f"redis://{node.host}:{node.port}/0",
                                                              **self._options)
        return found

    async def _ready(self) -> dict:
        cache = self._client.nodes_manager.slots_cache
        if not cache:
            await self._client.initialize()
            cache = self._client.nodes_manager.slots_cache
        return cache

    async def fetch(self, keys: list[str]) -> list:
        cache = await self._ready()
        groups: dict[str, tuple[ClusterNode, list[int]]] = {}
        found: list = [None] * len(keys)
        for at, key in enumerate(keys):
            nodes = cache.get(key_slot(key.encode()))
            if not nodes:
                found[at] = RedisConnectionError("slot not covered")
                continue
            group = groups.get(nodes[0].name)
            if group is None:
                group = groups[nodes[0].name] = (nodes[0], [])
            group[1].append(at)
        replies = await asyncio.gather(*(self._node(node).get_each([keys[at] for at in ats])
                                         for node, ats in groups.values()), return_exceptions=True)
        stale = False
        for (_, ats), reply in zip(groups.values(), replies):
            if isinstance(reply, BaseException):
                stale = True
                for at in ats:
                    found[at] = reply
                continue
            for at, value in zip(ats, reply):
                if isinstance(value, ResponseError):
                    stale = True  # MOVED or ASK: the slot has another master now
                found[at] = value
        if stale:
            self._refresh()
        return found

    async def set_absent(self, key: str, value: bytes, px: int) -> bytes | None:
        cache = await self._ready()
        nodes = cache.get(key_slot(key.encode()))
        if not nodes:
            raise RedisConnectionError("slot not covered")
        try:
            return await self._node(nodes[0]).set_absent(key, value, px)
        except (RedisError, RedisClusterException, OSError):
            self._refresh()
            raise

    def _refresh(self) -> None:
        loop = asyncio.get_running_loop()
        if (self._refreshing is not None and not self._refreshing.done()) or \
                loop.time() - self._refreshed < REFRESH_EVERY:
            return
        self._refreshed = loop.time()
        self._refreshing = loop.create_task(self._read_map())

    async def _read_map(self) -> None:
        try:
            await self._client.nodes_manager.initialize()
        except (RedisError, RedisClusterException, OSError):
            pass  # no node answered: the next failure asks again

    async def aclose(self) -> None:
        if self._refreshing is not None:
            self._refreshing.cancel()
        for node in self._nodes.values():
            await node.aclose()
        self._nodes.clear()


async def start_cluster_client(redis: object) -> None:
    """A cluster client reads the slot map before the first request (GatewayCluster says why); a
    cluster that does not answer yet is read lazily, and the cache bypassed until it does."""
    if isinstance(redis, RedisCluster):
        try:
            await asyncio.wait_for(redis.initialize(), 10.0)
        except (RedisError, RedisClusterException, OSError, TimeoutError) as exc:
            log.warning("the Redis Cluster does not answer yet (%s); bypassing the cache until it does", exc)
