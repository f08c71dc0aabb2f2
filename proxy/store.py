"""The Redis cache store, on one Redis or a Redis Cluster: batched lookups, one-slot Lua scripts, epochs."""
from __future__ import annotations

import asyncio
import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Awaitable, Callable, Sequence, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import NoScriptError, OutOfMemoryError, RedisClusterException, RedisError

from proxy.breaker import CircuitBreaker
from proxy.errors import CacheUnavailable
from proxy.clusterclient import ClusterLookups, TopologyWatch
from proxy.lookups import PipelinedLookups
from proxy.metrics import Metrics
from proxy.records import (DROPPED, FORMAT, LEASE, PREFIX, TOMBSTONE, WRITING, Entry, Lookup, Record,
                           decode, encode_tail, lua_prelude, read_record)

log = logging.getLogger("cachegate.store")
T = TypeVar("T")

STORED, FENCED, OPEN = "stored", "fenced", "open"
FULL, BUSY = "full", "busy"  # fills refused: Redis out of memory (maxmemory), no Redis connection free
# RedisClusterException is not a RedisError: redis-py's cluster client raises it for what it refuses itself.
_FAILURES = (RedisError, RedisClusterException, OSError, TimeoutError)
# Fills take at most this many of the pool's connections at once, so the fences and writes of write-through
# (whose failure moves the epoch) always find one during a burst of fills.
FILL_SLOTS = 48
FULL_QUIET = 5.0  # seconds without a refused write before "Redis accepts writes again" is logged
_LUA = Path(__file__).with_name("lua")
PURGE_FENCE = 30.0  # seconds an admin purge keeps refusing fills that started before it
ADMIN_TIMEOUT = 10.0  # seconds one Redis call of an admin purge or inspection may take (a page of keys)
SCAN_COUNT = 500     # keys per SCAN page and per pipeline of purges
_Found = tuple[int, list["bytes | None"]]  # (epoch, values): what a batched lookup hands each one
_Waiter = tuple[tuple[str, ...], "asyncio.Future[_Found]"]


def _ms(seconds: float) -> int:
    return max(1, math.ceil(seconds * 1000))


def _raise_first(found: list) -> list:
    """A pipeline's replies, or the first error among them raised."""
    failed = next((r for r in found if isinstance(r, BaseException)), None)
    if failed is not None:
        raise failed
    return found


def _glob_escape(text: str) -> str:
    """`text` matched literally by SCAN's MATCH pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in text)


@dataclass(frozen=True, slots=True)
class Inspected:
    """What the store holds for one key (CacheStore.inspect)."""
    record: Record | None
    expires_in: float | None  # seconds until Redis drops the record (None: no record, or no expiry)
    epoch: int                # the current key epoch
    redis_ms: int             # Redis's clock
    generations: tuple[int, ...]


class CacheFull(CacheUnavailable):
    """Redis refused a write for want of memory: it answers, so lookups go on, but nothing was written."""


class CacheStore:
    """Every Redis call of the cache. Any failure, timeout or open breaker raises CacheUnavailable.

    The client (redis-py's, for one Redis or a Redis Cluster: one code path) must return bytes (no
    decode_responses). Every key of an entity shares its hash tag (`{prefix}:e:{KEY}`), every key of a tag
    its own (`{prefix}:g:{TAG}` ...), so each Lua script touches one hash slot. Lookups issued in the same
    event-loop tick go out as one round trip (per node, in parallel, on a cluster) together with the epoch
    key; an entry is served only when the epoch stamped in it is the one read with it. Writes that may have
    missed Redis are remembered (on a cluster, a change of the slots' masters counts as one: a promoted
    replica may lack the last writes of its master), and the first call that reaches Redis again moves the
    key namespace to a new epoch before anything else runs (docs/architecture.md, "Redis Cluster").
    """

    def __init__(self, redis: aioredis.Redis, *, prefix: str, timeout: float, breaker_failures: int,
                 breaker_reset: float, metrics: Metrics,
                 lookups: PipelinedLookups | ClusterLookups | None = None,
                 retries_writes: bool = False) -> None:
        self._redis = redis
        # The invalidator applies each change until it lands (its actions are idempotent): a write that failed
        # is not a write lost, so it needs no epoch move (which would empty the whole cache).
        self._retries_writes = retries_writes
        self._lookups = lookups  # the hit path's lean connection(s); redis-py's client when None
        self._cluster = isinstance(redis, RedisCluster)
        # On a cluster, whether the slots' masters changed since the last call (a failover): see _call.
        self._topology = TopologyWatch(redis) if isinstance(redis, RedisCluster) else None
        self._prefix = prefix
        self._timeout = timeout
        self._metrics = metrics
        self._breaker = CircuitBreaker(failures=breaker_failures, reset=breaker_reset,
                                       on_change=metrics.set_breaker)
        metrics.set_breaker(self._breaker.state)
        self._epoch_key = f"{prefix}:epoch"
        # The layout's numbers (proxy/records.py) and the helpers every script shares, then its own part.
        record = lua_prelude() + (_LUA / "record.lua").read_text()
        self._scripts = {name: redis.register_script(record + (_LUA / f"{name}.lua").read_text())
                         for name in ("fill", "tagfill", "index", "write", "mark", "fence", "reopen",
                                      "invalidate", "drop", "purge", "epoch", "inspect", "release", "retire")}
        self._batch: list[_Waiter] = []
        self._senders: set[asyncio.Task[None]] = set()
        self._missed = 0    # writes that may not have reached Redis...
        self._settled = 0   # ...of which this many are covered by an epoch move
        self._epoch_lock = asyncio.Lock()
        self._healthy = True
        self._full = False
        self._full_at = 0.0  # loop time of the last write refused for want of memory
        self._fill_slots = asyncio.Semaphore(FILL_SLOTS)
        self.epoch = 0  # the key epoch the last call that read or moved it saw (the status page shows it)

    @property
    def breaker_state(self) -> str:
        return self._breaker.state

    # The name in braces is the key's hash tag: a cluster puts every key of one entity (or of one tag) in
    # one slot, and a single Redis ignores the braces. A `}` inside a name only shortens its tag.
    def entry_key(self, key: str) -> str:
        return f"{self._prefix}:e:{{{key}}}"

    def generation_key(self, tag: str) -> str:
        return f"{self._prefix}:g:{{{tag}}}"

    def index_key(self, tag: str) -> str:
        return f"{self._prefix}:t:{{{tag}}}"

    def writers_key(self, tag: str) -> str:
        return f"{self._prefix}:w:{{{tag}}}"

    def recent_key(self, tag: str) -> str:
        return f"{self._prefix}:r:{{{tag}}}"

    def _tag_keys(self, tag: str) -> list[str]:
        return [self.generation_key(tag), self.index_key(tag), self.writers_key(tag), self.recent_key(tag)]

    # -- reads -------------------------------------------------------------------------------------------

    async def lookup(self, key: str, tags: Sequence[str] = ()) -> Lookup:
        """One round trip, shared with every other lookup of this loop tick (auto-pipelining)."""
        names = (self.entry_key(key), *(self.generation_key(t) for t in tags))
        loop = asyncio.get_running_loop()
        future: asyncio.Future[_Found] = loop.create_future()
        if not self._batch:
            loop.call_soon(self._send_batch)
        self._batch.append((names, future))
        epoch, values = await future
        entry, token, kind = decode(values[0], epoch)
        return Lookup(entry, token, epoch, tuple(int(v or 0) for v in values[1:]), kind == WRITING,
                      kind == LEASE)

    def _send_batch(self) -> None:
        batch, self._batch = self._batch, []
        task = asyncio.get_running_loop().create_task(self._mget(batch))
        self._senders.add(task)
        task.add_done_callback(self._senders.discard)

    async def _mget(self, batch: list[_Waiter]) -> None:
        names = list(dict.fromkeys(name for wanted, _ in batch for name in wanted))
        failure: BaseException = CacheUnavailable("lookup abandoned")
        try:
            keys = [self._epoch_key, *names]
            if self._lookups is not None:
                fetch = self._lookups.fetch
            else:
                fetch = self._redis.mget_nonatomic if self._cluster else self._redis.mget
            values = await self._call("mget", lambda: fetch(keys))
            if self._cluster:
                values = self._partial(values)
            epoch = self.epoch = int(values[0] or 0)
            found = dict(zip(names, values[1:]))
            for wanted, future in batch:
                if not future.done():
                    got = [found[name] for name in wanted]
                    if self._cluster and any(isinstance(v, BaseException) for v in got):
                        future.set_exception(CacheUnavailable("lookup failed on its node"))
                    else:
                        future.set_result((epoch, got))
        except Exception as exc:  # handed to every waiter, none of whom may hang
            failure = exc
        finally:
            for _, future in batch:
                if not future.done():
                    future.set_exception(failure)

    def _partial(self, values: list) -> list:
        """A cluster batch some of whose nodes failed: those keys' lookups fail (they bypass), the others
        go on; without the epoch nothing may be served. Counted, never against the breaker: one master down
        must not send every key upstream."""
        failed = next((v for v in values if isinstance(v, BaseException)), None)
        if failed is not None:
            self._metrics.redis_errors.labels("node-mget").inc()
            if isinstance(values[0], BaseException):
                raise CacheUnavailable(f"Redis mget failed: the epoch's node ({values[0]})")
        return values

    async def ping(self) -> bool:
        try:
            return bool(await self._call("ping", self._redis.ping))
        except CacheUnavailable:
            return False

    # -- writes ------------------------------------------------------------------------------------------

    async def claim(self, key: str, seen: Lookup, *, lifetime: float) -> Lookup:
        """Before a miss on an empty key goes upstream: the key gets a lease, a record with a token of this
        fill's own, unless something is there by now; the Lookup to fill with (`leased` when what is there
        is another fill's lease: another process is fetching this key).

        A fill is then refused once its record is gone (proxy/lua/fill.lua), whether it expired or Redis
        evicted it: an evicted tombstone or write fence can never let an older read be stored. One SET on
        the lookups' connection, on a miss only; the lease lives `lifetime` seconds (the longest fetch).
        """
        token = os.urandom(8)
        record = PREFIX.pack(FORMAT, LEASE, seen.epoch, 0, token)
        name = self.entry_key(key)
        if self._lookups is not None:
            set_absent = self._lookups.set_absent
            claim = lambda: set_absent(name, record, _ms(lifetime))  # noqa: E731
        else:
            claim = lambda: self._redis.set(name, record, nx=True, px=_ms(lifetime), get=True)  # noqa: E731
        try:
            found = await self._call("claim", claim)
        except CacheFull:
            self._judge(FULL)  # the fill it was for is refused: counted as one
            raise
        if found is None:
            return Lookup(None, token, seen.epoch, seen.generations)
        entry, token, kind = decode(found, seen.epoch)  # someone was first: fill against what it wrote
        return Lookup(entry, token, seen.epoch, seen.generations, kind == WRITING, kind == LEASE)

    async def release(self, key: str, seen: Lookup) -> None:
        """A fill that will not store gives its lease back at once (rather than at its expiry), so the
        processes waiting on it go upstream now; a lease replaced since is left alone."""
        await self._call("release", self._script("release", [self.entry_key(key)], [seen.token]))

    async def fill(self, key: str, entry: Entry, *, seen: Lookup, tags: Sequence[str] = (),
                   upstream_tags: Sequence[str] = ()) -> str:
        """Store a read-through response unless anything moved since `seen`: 'stored' or why not ('full'
        when Redis is out of memory, 'busy' when the fills in flight hold their share of connections). The
        entry is indexed under the rule's `tags` (whose generations `seen` holds) and the `upstream_tags`
        its answer named (refused only while one of them is fenced or was invalidated recently)."""
        if seen.epoch != self.epoch:
            return self._judge("epoch")  # the epoch moved since (an entry stamped with it is never served)
        name, ttl = self.entry_key(key), _ms(entry.stale_until - entry.stored_at)
        checks = [(self._tag_keys(tag), [name, g, ttl]) for tag, g in zip(tags, seen.generations)]
        checks += [(self._tag_keys(tag), [name, "", ttl]) for tag in upstream_tags]
        args = [seen.epoch, seen.token, os.urandom(8), entry.version, ttl, encode_tail(entry)]
        try:
            async with asyncio.timeout(self._timeout):
                await self._fill_slots.acquire()
        except TimeoutError:
            return self._judge(BUSY)  # the proxy's own congestion: no Redis call made, nothing to count
        try:
            # Each tag first, on its own slot (proxy/lua/tagfill.lua: refused while fenced, else the key is
            # indexed), then the entry on its slot: an invalidation in between changes the entry's token.
            if checks:
                found = await asyncio.gather(*(self._call("fill", self._script("tagfill", keys, tag_args))
                                               for keys, tag_args in checks))
                if any(outcome != b"ok" for outcome in found):
                    return self._judge("fenced")
            return self._judge(await self._call("fill", self._script("fill", [name], args)))
        except CacheFull:
            return self._judge(FULL)
        finally:
            self._fill_slots.release()

    def _script(self, name: str, keys: list, args: list) -> Callable[[], Awaitable]:
        script = self._scripts[name]
        return lambda: script(keys=keys, args=args)

    async def reopen(self, key: str, seen: Lookup) -> tuple[str, Lookup]:
        """After a lookup found a write fence, before going upstream: ('open', a Lookup to fill with) once
        every write behind it has ended, else ('fenced' or 'raced', `seen`): then nothing may be filled."""
        keys, args = [self.entry_key(key)], [seen.token, os.urandom(8)]
        found = await self._call("reopen", lambda: self._scripts["reopen"](keys=keys, args=args))
        outcome = found[0].decode()
        if outcome != OPEN:
            self._metrics.store_rejected.labels(outcome).inc()
            return outcome, seen
        return OPEN, Lookup(None, found[1], seen.epoch, seen.generations)

    async def fence(self, writer: bytes, keys: Sequence[str], tags: Sequence[str], *, lifetime: float,
                    linger: float) -> None:
        """Before a write goes upstream: each key it changes becomes a miss that refuses fills, and each tag
        it invalidates refuses fills under it, until the write settles or `lifetime` seconds pass (its
        gateway died). The marks outlive that by `linger` seconds, so fills that looked before them still
        see them. A script per key or tag (each touches only that key's or tag's keys), all sent at once."""
        calls = [self._fence_key(key, writer, lifetime, linger) for key in keys]
        calls += [self._tag(tag, writer, "fence", lifetime, linger) for tag in tags]
        for result in await asyncio.gather(*calls, return_exceptions=True):
            if isinstance(result, BaseException):
                raise result

    async def _fence_key(self, key: str, writer: bytes, lifetime: float, linger: float) -> None:
        args = [writer, _ms(lifetime), os.urandom(8), _ms(linger), self.epoch]
        await self._call("fence", self._script("fence", [self.entry_key(key)], args), writes=True)

    async def write(self, key: str, entry: Entry, *, tags: Sequence[str] = (), writer: bytes = b"",
                    linger: float = PURGE_FENCE) -> str:
        """Store the entity a write returned and end that write's fence: 'stored', 'older'/'deleted' when
        the key saw newer, 'fenced' while another write to it is in flight (the key stays a miss)."""
        name, ttl = self.entry_key(key), _ms(entry.stale_until - entry.stored_at)
        # The tags' indexes first (each on its own slot), so an invalidation never misses the entry.
        await asyncio.gather(*(self._call("write", self._script("index", [self.index_key(t)], [name, ttl]),
                                          writes=True) for t in tags))
        args = [os.urandom(8), entry.version, ttl, encode_tail(entry), writer, _ms(linger), self.epoch]
        return self._judge(await self._call("write", self._script("write", [name], args), writes=True))

    async def tombstone(self, key: str, version: int, *, ttl: float, writer: bytes = b"") -> str:
        """After a DELETE: nothing older than `version` may be stored under `key` for `ttl` seconds.
        'stored', or 'fenced' while another write to the key is in flight."""
        outcome = await self._mark(key, TOMBSTONE, version, ttl, writer, hold=False)
        if outcome == STORED:
            self._metrics.tombstones.inc()
        return outcome

    async def drop(self, key: str, *, fence: float, writer: bytes = b"", hold: bool = False,
                   version: int = 0) -> str:
        """Forget `key`, and refuse for `fence` seconds any fill that started before now (or, given a version,
        any fill older than it). On behalf of a write its fence ends, unless `hold` keeps it to its deadline.
        'stored', or 'fenced' if a fence stays."""
        return await self._mark(key, DROPPED, version, fence, writer, hold=hold)

    async def _mark(self, key: str, kind: int, version: int, ttl: float, writer: bytes, *, hold: bool) -> str:
        args = [kind, os.urandom(8), version, _ms(ttl), writer, "1" if hold else "0", self.epoch]
        outcome = await self._call("mark", self._script("mark", [self.entry_key(key)], args), writes=True)
        return outcome.decode()

    async def retire(self, key: str, version: int, *, deleted: bool, ttl: float) -> str:
        """A change the database's binary log reported (the invalidator): nothing older than `version` is
        served or stored under `key` any more ('stored', 'fenced' when a write fence stays); an entry or a
        marker as new or newer is left alone ('current'), an empty key too ('absent'). `deleted`: the row is
        gone, a tombstone at `version`; else a drop marker. Markers live `ttl` seconds (lua/retire.lua)."""
        return (await self.retire_many([(key, version, deleted)], ttl=ttl))[0]

    async def retire_many(self, changes: Sequence[tuple[str, int, bool]], *, ttl: float) -> list[str]:
        """`retire` for many keys (key, version, deleted) in one round trip per node, each call touching its
        own key only (one slot). The outcomes, in order."""
        calls = [([self.entry_key(key)], [TOMBSTONE if deleted else DROPPED, os.urandom(8), version, _ms(ttl),
                                          self.epoch])
                 for key, version, deleted in changes]
        return [outcome.decode() for outcome in await self._each("retire", calls, timeout=None)]

    async def read_note(self, name: str, *, timeout: float | None = None) -> bytes | None:
        """A small value of the process that keeps it (the invalidator's position), under the prefix."""
        return await self._call("note", lambda: self._redis.get(f"{self._prefix}:n:{name}"), timeout=timeout)

    async def write_note(self, name: str, value: bytes | str) -> None:
        """Set a note; no TTL, so an evicting Redis (volatile-*) never drops it."""
        await self._call("note", lambda: self._redis.set(f"{self._prefix}:n:{name}", value))

    async def invalidate_tag(self, tag: str, *, writer: bytes = b"", hold: bool = False,
                             linger: float = PURGE_FENCE, recent: float = 0.0) -> int:
        """Bump the tag's generation and drop the entries indexed under it; returns the new generation.
        On behalf of a write its fence on the tag ends, unless `hold` keeps it to its deadline. Fills that
        carry the tag only because their upstream named it are refused for `recent` seconds."""
        return (await self._invalidate(tag, writer, "hold" if hold else "release", 0.0, linger, recent))[0]

    async def _tag(self, tag: str, writer: bytes, mode: str, lifetime: float, linger: float) -> int:
        return (await self._invalidate(tag, writer, mode, lifetime, linger, 0.0))[0]

    async def _invalidate(self, tag: str, writer: bytes, mode: str, lifetime: float, linger: float,
                          recent: float, *, timeout: float | None = None) -> tuple[int, int]:
        """(the tag's new generation, the entries dropped): the tag's script on its slot, then a drop of each
        entry it indexed, pipelined (on a cluster: per node, in parallel). The generation moves first, so
        fills under way are refused; a drop that fails is a missed write (the epoch moves)."""
        args = [writer, mode, _ms(lifetime), _ms(recent) if recent > 0 else 0]
        found = await self._call("invalidate", self._script("invalidate", self._tag_keys(tag), args),
                                 writes=True, timeout=timeout)
        members = [m.decode() for m in found[1:]]
        dropped = await self._each("drop", [([m], [os.urandom(8), _ms(linger)]) for m in members],
                                   timeout=timeout) if members else []
        return int(found[0]), sum(int(n) for n in dropped)

    # -- admin purges: each a drop with a fence, each says how many entries it removed -----------------------

    async def purge_key(self, key: str) -> int:
        """Drop `key` (1 if it held an entry, else 0); fills that looked before are refused, its version
        floor, a write fence and a tombstone stay (proxy/lua/purge.lua)."""
        return await self._purge_keys([self.entry_key(key)])

    async def purge_tag(self, tag: str, *, fence: float) -> int:
        """Drop every entry indexed under `tag`: its generation moves (fills of rules with the tag that
        looked before are refused), and fills whose upstream names the tag are refused for `fence` seconds,
        as long as a fill already upstream may take to come back (cache.write_fence)."""
        found = await self._invalidate(tag, b"", "release", 0.0, PURGE_FENCE, fence, timeout=ADMIN_TIMEOUT)
        return found[1]

    async def purge_prefix(self, prefix: str) -> int:
        """Drop every key that starts with `prefix`, found by SCAN (redis-py's cluster client scans every
        primary), purged like purge_key in batches of SCAN_COUNT."""
        match = f"{self._prefix}:e:{{{_glob_escape(prefix)}*"
        found = self._redis.scan_iter(match=match, count=SCAN_COUNT)

        async def page() -> list[bytes]:
            keys: list[bytes] = []
            try:
                while len(keys) < SCAN_COUNT:
                    keys.append(await found.__anext__())
            except StopAsyncIteration:
                pass
            return keys

        removed = 0
        while keys := await self._call("scan", page, timeout=ADMIN_TIMEOUT):
            removed += await self._purge_keys([k.decode() for k in keys])
        return removed

    async def _purge_keys(self, keys: Sequence[str]) -> int:
        calls = [([key], [os.urandom(8), _ms(PURGE_FENCE), self.epoch]) for key in keys]
        return sum(int(n) for n in await self._each("purge", calls, timeout=ADMIN_TIMEOUT))

    async def _each(self, name: str, calls: list[tuple[list, list]], *, timeout: float | None) -> list:
        """One script over many keys of many slots, in one pipeline (on a cluster redis-py's cluster pipeline
        sends each node its part, in parallel)."""
        script = self._scripts[name]
        if self._cluster:
            # redis-py's cluster pipeline refuses EVALSHA but takes EVAL: the script's text goes with each
            # call (Redis keeps it compiled by its digest), which costs a client about a fifth of the CPU
            # of concurrent single calls (measured: 55 against 254 us a key over 256 keys).
            async def each() -> list:
                pipe = self._redis.pipeline()
                for keys, args in calls:
                    pipe.eval(script.script, len(keys), *keys, *args)
                return _raise_first(await pipe.execute(raise_on_error=False))
            return await self._call(name, each, writes=True, timeout=timeout)

        # EVALSHA, never a pipeline of Script calls: those would ask SCRIPT EXISTS, which the gateway's ACL
        # does not grant. A NOSCRIPT (Redis restarted) loads the script and runs the pipeline again.
        async def run() -> list:
            for attempt in range(2):
                pipe = self._redis.pipeline(transaction=False)
                for keys, args in calls:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                found = await pipe.execute(raise_on_error=False)
                if attempt == 0 and any(isinstance(r, NoScriptError) for r in found):
                    await self._redis.script_load(script.script)
                    continue
                return _raise_first(found)
            raise AssertionError("unreachable")
        return await self._call(name, run, writes=True, timeout=timeout)

    async def inspect(self, key: str, tags: Sequence[str] = ()) -> Inspected:
        """What the store holds for `key` now, read whole: the record, its time left, the current epoch, the
        generation of each of `tags`, and Redis's clock (fence deadlines are in it)."""
        async def gets(names: list[str]) -> list:
            if self._cluster:
                return await self._redis.mget_nonatomic(names)
            pipe = self._redis.pipeline(transaction=False)  # GETs, never an MGET: that is the hit path's
            for name in names:
                pipe.get(name)
            return await pipe.execute()

        async def run() -> list:
            names = [self._epoch_key, *(self.generation_key(tag) for tag in tags)]
            return await asyncio.gather(self._scripts["inspect"](keys=[self.entry_key(key)], args=[]),
                                        gets(names))
        (raw, pttl, now), (epoch, *generations) = await self._call("inspect", run, timeout=ADMIN_TIMEOUT)
        return Inspected(read_record(raw) if raw is not None else None, pttl / 1000 if pttl >= 0 else None,
                         int(epoch or 0), int(now), tuple(int(g or 0) for g in generations))

    async def new_epoch(self) -> int:
        """Move the whole key namespace to a new epoch: every entry stored before becomes a miss."""
        epoch = self.epoch = int(await self._call("epoch", self._script("epoch", [self._epoch_key], []),
                                                  writes=True))
        self._metrics.epoch_bumps.inc()
        return epoch

    def _judge(self, outcome: bytes | str) -> str:
        result = outcome.decode() if isinstance(outcome, bytes) else outcome
        if result != STORED:
            self._metrics.store_rejected.labels(result).inc()
        return result

    # -- every call goes through here ----------------------------------------------------------------------

    async def _call(self, op: str, make: Callable[[], Awaitable[T]], *, writes: bool = False,
                    timeout: float | None = None) -> T:
        """Breaker, timeout (redis.timeout unless given: an admin call may take longer), epoch settling and
        error mapping for one Redis call."""
        writes = writes and not self._retries_writes
        if not self._breaker.allow():
            if writes:
                self._missed += 1
            raise CacheUnavailable("Redis is unavailable (circuit breaker open)")
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            async with asyncio.timeout(timeout or self._timeout):
                if self._topology is not None and self._topology.changed():
                    self._missed += 1  # a failover: the promoted replica may lack its master's last writes
                if self._missed != self._settled:
                    await self._settle_epoch()
                result = await make()
        except asyncio.CancelledError:
            self._breaker.abandon()
            if writes:  # the outcome of a cancelled write is unknown
                self._missed += 1
            raise
        except OutOfMemoryError as exc:
            # Redis answered: full is not down, so the breaker stays closed and lookups go on hitting. What
            # was refused is counted by the caller (a fill: store_rejected "full"); a refused write is a
            # missed one, like any.
            self._breaker.success()
            if writes:
                self._missed += 1
            self._full_at = loop.time()
            if not self._full:
                self._full = True
                log.warning("Redis refuses writes: out of memory (maxmemory); fills are not stored")
            raise CacheFull(f"Redis {op} refused: out of memory") from exc
        except _FAILURES as exc:
            if writes:
                self._missed += 1
            late = isinstance(exc, TimeoutError) and loop.time() - started > 2 * (timeout or self._timeout)
            busy = isinstance(exc, RedisConnectionError) and str(exc).startswith("No connection available")
            self._metrics.redis_errors.labels(("late-" if late else "busy-" if busy else "") + op).inc()
            if late or busy:
                # The timer itself ran late (this loop was too busy to read the answer, which may well have
                # been waiting in the socket), or every pooled connection was taken: the proxy's overload,
                # not Redis's failure, so it must not open the breaker (which would send every read to the
                # backends at the worst time).
                self._breaker.abandon()
            else:
                self._breaker.failure()
            if self._healthy:
                self._healthy = False
                log.warning("Redis unavailable (%s: %s); bypassing the cache until it answers again",
                            type(exc).__name__, exc)
            raise CacheUnavailable(f"Redis {op} failed ({type(exc).__name__})") from exc
        finally:
            self._metrics.redis_call(op, loop.time() - started)
            if self._topology is not None and self._topology.changed():
                self._missed += 1
        self._breaker.success()
        if not self._healthy:
            self._healthy = True
            log.warning("Redis answers again; cache back in use")
        if self._full and (writes or op in ("fill", "claim")) and loop.time() - self._full_at > FULL_QUIET:
            self._full = False  # an episode ends once writes have gone through for a while
            log.warning("Redis accepts writes again")
        return result

    async def _settle_epoch(self) -> None:
        """Writes may have missed Redis: no entry written before now may be served, so start a new epoch."""
        async with self._epoch_lock:
            missed = self._missed
            if missed == self._settled:
                return
            epoch = self.epoch = int(await self._scripts["epoch"](keys=[self._epoch_key], args=[]))
            count, self._settled = missed - self._settled, missed
            self._metrics.epoch_bumps.inc()
            log.warning("cache epoch moved to %s: %d write(s) may have missed Redis", epoch, count)
