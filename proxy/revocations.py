"""Revoked tokens shared by every gateway process: a Redis sorted set, announced on a channel, kept in a dict.

The users service signals a revocation on the answer to the DELETE or password change that caused it
(cachegate.tokens.REVOCATION_HEADER). The gateway that forwarded it records it here before it answers: in its
own dict at once, then in Redis (`<prefix>:revoked`, members `<sub>:<below>` scored by the time they may be
forgotten, token_ttl + 2 x leeway later, when every token they void has expired) and on the channel
`<prefix>:revocations`. Every process subscribes, and reads the whole set again after each (re)connect and
every RESYNC seconds, so a lost message costs at most that long. Per request the check is one dict lookup.

On a Redis Cluster the same code runs on redis-py's cluster client: the record and its announcement are one
Lua script on the set's slot (a PUBLISH reaches every node's subscribers, so one script serves both
topologies; sharded pub/sub would tie the channel to the set's master and its failover), and the
subscription is redis-py's cluster pub/sub, on the node of the channel's slot, made again when it fails.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable

import redis.asyncio as aioredis
from multidict import CIMultiDict
from redis.exceptions import RedisClusterException, RedisError

from cachegate.tokens import REVOCATION_HEADER, parse_revocation

log = logging.getLogger("cachegate.revocations")

RESYNC = 5.0   # seconds between full reads of the set: the bound for a message lost on a live connection
RETRY = 0.5    # seconds between attempts to subscribe again after Redis went away
# The set's member, trimmed of what has expired (no TTL: an evicting Redis never drops the set), announced.
_RECORD = """redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
return redis.call('PUBLISH', ARGV[4], ARGV[5])"""
_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)


class Revocations:
    """One per gateway process. `below` maps a user id to the lowest token version still valid.

    It needs a Redis client of its own: the subscription holds a connection, and a failure resets the pool."""

    def __init__(self, redis: aioredis.Redis, *, prefix: str, lifetime: float, timeout: float,
                 resync: float = RESYNC, retry: float = RETRY,
                 clock: Callable[[], float] = time.time) -> None:
        self._redis = redis
        self._record = redis.register_script(_RECORD)
        self.key = f"{prefix}:revoked"
        self.channel = f"{prefix}:revocations"
        self._lifetime = lifetime
        self._timeout = timeout
        self._resync = resync
        self._retry = retry
        self._clock = clock
        # Changed in place only (the Authenticator holds this very dict) and only ever raised: a revocation
        # never needs undoing, it expires with the last token it voids.
        self.below: dict[str, int] = {}
        self._until: dict[str, float] = {}
        self._unsent: dict[tuple[str, int], float] = {}  # recorded while Redis was unreachable
        self._healthy = True
        self._stopping = False
        self.connected = asyncio.Event()  # set while subscribed and in step with the set
        self._pubsub: Any = None  # the subscription of the moment (stop() closes its connection)

    # -- the users service's answers -------------------------------------------------------------------------

    async def absorb(self, headers: CIMultiDict[str]) -> None:
        """Record the revocations an upstream answer announces, and take them out of its headers."""
        values = headers.popall(REVOCATION_HEADER, None)
        if values is None:
            return
        for value in values:
            parsed = parse_revocation(value)
            if parsed is None:
                log.warning("ignored a malformed %s header: %.80r", REVOCATION_HEADER, value)
            else:
                await self.record(*parsed)

    async def record(self, sub: str, below: int) -> None:
        """Refuse the user's tokens older than `below` here at once, and tell every other process."""
        until = self._clock() + self._lifetime
        self._apply(sub, below, until)
        try:
            await self._send(sub, below, until)
        except _FAILURES as exc:
            # Redis is away, so no process can serve a cache hit now; the record goes out on reconnect.
            self._unsent[(sub, below)] = until
            self._unhealthy(exc)

    async def publish(self, sub: str, below: int) -> None:
        """Record a revocation learnt elsewhere (the invalidator, from the binary log) and tell every gateway
        process; a Redis failure is raised, for the caller to try again."""
        await self._send(sub, below, self._clock() + self._lifetime)

    async def _send(self, sub: str, below: int, until: float) -> None:
        member = f"{sub}:{below}"
        async with asyncio.timeout(self._timeout):
            await self._record(keys=[self.key], args=[until, member, self._clock(), self.channel,
                                                      f"{member}:{until:.3f}"])

    def _apply(self, sub: str, below: int, until: float) -> None:
        if until <= self._clock():
            return
        if below > self.below.get(sub, 0):
            self.below[sub] = below
        if until > self._until.get(sub, 0.0):
            self._until[sub] = until

    # -- every process: the subscription ---------------------------------------------------------------------

    async def run(self) -> None:
        """Follow the channel until stop(); after every (re)subscription, send what is unsent and re-read."""
        loop = asyncio.get_running_loop()
        while not self._stopping:
            try:
                async with self._redis.pubsub(ignore_subscribe_messages=True) as pubsub:
                    self._pubsub = pubsub
                    async with asyncio.timeout(self._timeout):
                        await pubsub.subscribe(self.channel)
                    await self._flush_unsent()
                    await self.resync()  # after subscribing: nothing published meanwhile is missed
                    self._recovered()
                    self.connected.set()
                    next_read = loop.time() + self._resync
                    while not self._stopping:
                        message = await pubsub.get_message(timeout=max(0.0, next_read - loop.time()))
                        if message is not None and message.get("type") == "message":
                            self._on_message(message["data"])
                        if loop.time() >= next_read:
                            await self.resync()
                            next_read = loop.time() + self._resync
            except _FAILURES as exc:
                self.connected.clear()
                if self._stopping:
                    return
                self._unhealthy(exc)
                # The client is this module's own: its idle connections died with the server, and the next
                # attempt must not spend itself on one of them.
                await self._disconnect()
            if not self._stopping:
                await asyncio.sleep(self._retry)  # between reconnect attempts, not a synchronisation

    async def stop(self, follower: asyncio.Task[None]) -> None:
        """End run(). A cancel alone can be lost inside redis-py's pubsub read, so the connections are closed
        too: the read fails, and run() sees it is stopping."""
        self._stopping = True
        follower.cancel()
        if self._pubsub is not None:
            # A cluster's pub/sub has a connection of its own, which closing the client leaves open.
            await self._pubsub.aclose()
        await self._disconnect()
        await asyncio.gather(follower, return_exceptions=True)

    async def _disconnect(self) -> None:
        pool = getattr(self._redis, "connection_pool", None)
        if pool is not None:
            await pool.disconnect()
        else:  # a cluster client: its nodes' connections close, and the slot map is read again on next use
            await self._redis.aclose()

    async def resync(self) -> None:
        """Merge the whole set into the dict, and forget what has expired."""
        now = self._clock()
        async with asyncio.timeout(self._timeout):
            found = await self._redis.zrangebyscore(self.key, now, "+inf", withscores=True)
        held: dict[str, int] = {}
        for member, until in found:
            parsed = _member(member)
            if parsed is not None:
                held[parsed[0]] = max(held.get(parsed[0], 0), parsed[1])
                self._apply(parsed[0], parsed[1], float(until))
        for sub in [sub for sub, until in self._until.items() if until <= now]:
            del self._until[sub]
            self.below.pop(sub, None)
        # A Redis that lost its data (a restart without persistence) gets back what this process still knows,
        # so a gateway started afterwards learns it too.
        lost = {f"{sub}:{below}": self._until[sub]
                for sub, below in self.below.items() if held.get(sub, 0) < below}
        if lost:
            async with asyncio.timeout(self._timeout):
                await self._redis.zadd(self.key, lost)

    def _on_message(self, data: bytes | str) -> None:
        text = data.decode("ascii", "replace") if isinstance(data, bytes) else data
        member, _, until = text.rpartition(":")
        parsed = _member(member)
        try:
            seconds = float(until)
        except ValueError:
            return
        if parsed is not None:
            self._apply(parsed[0], parsed[1], seconds)

    async def _flush_unsent(self) -> None:
        for (sub, below), until in list(self._unsent.items()):
            if until > self._clock():
                await self._send(sub, below, until)
            del self._unsent[(sub, below)]

    def _unhealthy(self, exc: BaseException) -> None:
        if self._healthy:
            self._healthy = False
            log.warning("revocations: Redis unavailable (%s: %s); the cache is bypassed meanwhile, and the "
                        "services refuse revoked tokens themselves", type(exc).__name__, exc)

    def _recovered(self) -> None:
        if not self._healthy:
            self._healthy = True
            log.warning("revocations: subscribed again and in step with Redis")


def _member(raw: bytes | str) -> tuple[str, int] | None:
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    sub, _, below = text.partition(":")
    if not (sub.isdigit() and below.isdigit() and 0 < len(sub) <= 18 and 0 < len(below) <= 10):
        return None
    if sub[0] == "0":
        return None
    return sub, int(below)
