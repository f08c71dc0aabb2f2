"""Write-through: fence what a write changes, forward it, then store the returned entity (or a tombstone)."""
from __future__ import annotations

import time
from dataclasses import replace
from types import MappingProxyType

from cachegate.routes import UNSAFE, RouteConfig
from cachegate.settings import CacheConfig
from proxy.errors import CacheUnavailable, UpstreamError
from proxy.records import make_entry, new_writer
from proxy.store import FENCED, STORED
from proxy.upstream import UpstreamResponse
from strategies.base import UNAVAILABLE_OUTCOME, Context, Outcome, Reply, Strategy, reply_from
from strategies.httpcache import SAFE_METHODS, decide, stored_headers, version_of

SAFE = Outcome.bypass("method", detail="write-through")  # nothing to write: behave as passthrough
WRITE = "write"  # the outcome of every write; what it did to the cache is its reason


class WriteThrough(Strategy):
    """Before the write goes upstream its key and what it invalidates are fenced (a miss that refuses
    fills), so a gateway that dies at any point leaves a miss, never an older entry; the answer settles
    the fence: 2xx stores, a refusal or a 5xx drops, an unknown outcome leaves it to its deadline."""

    name = "write-through"
    methods = UNSAFE
    methods_rule = "takes unsafe methods (POST, PUT, PATCH, DELETE)"
    stores = True
    forbidden = MappingProxyType({option: f"only read-through rules store entries with {option}"
                                  for option in ("negative_ttl", "tags")})

    @classmethod
    def lifetimes(cls, route: RouteConfig, cache: CacheConfig, reader: RouteConfig | None) -> RouteConfig:
        """A write rule stores the entity under the same key a read rule serves it from: unless it says
        otherwise, the entry it writes lives as long as one that read rule would have stored. It never
        stores a 404 (negative_ttl 0)."""
        if route.key is None:
            return route
        if route.ttl is None and reader is not None:
            grace = route.grace if route.grace is not None else reader.grace
            return replace(route, ttl=reader.ttl, negative_ttl=0.0, grace=grace)
        return replace(super().lifetimes(route, cache, reader), negative_ttl=0.0)

    async def _handle(self, ctx: Context) -> Reply:
        if ctx.request.method in SAFE_METHODS:
            ctx.outcome = SAFE
            return await self.forward(ctx)
        writer = new_writer()
        await self._fence(ctx, writer)
        try:
            response = await self.send(ctx)
        except UpstreamError:
            # A timeout or a broken connection: the write may have happened, or may still happen.
            ctx.outcome = await self._forget(ctx, writer, "unknown-outcome", hold=True)
            raise
        if 200 <= response.status < 300:
            ctx.outcome = await self._apply(ctx, response, writer)
        else:  # refused (4xx, nothing changed) or failed (5xx): the fence ends, the keys stay misses
            ctx.outcome = await self._forget(ctx, writer, f"status-{response.status}", response.status)
        return reply_from(response)

    async def _fence(self, ctx: Context, writer: bytes) -> None:
        keys = [t for t in ctx.invalidates if not t.startswith("tag:")]
        if ctx.key is not None:
            keys.append(ctx.key)
        tags = [t[4:] for t in ctx.invalidates if t.startswith("tag:")]
        if not keys and not tags:
            return
        try:
            await self.store.fence(writer, keys, tags, lifetime=self.settings.write_fence,
                                   linger=self.settings.tombstone_ttl)
        except CacheUnavailable:
            pass  # the write still goes upstream; the store counted a missed write and moves the epoch

    async def _apply(self, ctx: Context, response: UpstreamResponse, writer: bytes) -> Outcome:
        version = version_of(response.headers, response.body)
        stored, detail = False, None
        try:
            if ctx.key is not None and ctx.request.method == "DELETE":
                outcome = await self.store.tombstone(ctx.key, version, ttl=self.settings.tombstone_ttl,
                                                     writer=writer)
                detail = "tombstone" if outcome == STORED else outcome
            elif ctx.key is not None:
                stored, detail = await self._store(ctx, response, version, writer)
            # The keys a write invalidates are views of the same entity (user:{id} beside user-me:{caller}):
            # dropped at its new version, so no fill of an older view lands there.
            await self._invalidate(ctx, writer, version=version)
        except CacheUnavailable:
            return UNAVAILABLE_OUTCOME
        return Outcome(WRITE, STORED if stored else detail or "not-stored", fwd="method",
                       fwd_status=response.status, stored=stored, detail=detail)

    async def _store(self, ctx: Context, response: UpstreamResponse, version: int,
                     writer: bytes) -> tuple[bool, str | None]:
        """The returned entity under the key, if it carries a version and may be cached; else drop the key."""
        assert ctx.key is not None
        route = ctx.route
        assert route.ttl is not None and route.grace is not None
        decision = decide(response.status, response.headers, ttl=route.ttl, negative_ttl=0.0)
        if not version or not decision.store:
            outcome = await self.store.drop(ctx.key, fence=self.settings.tombstone_ttl, writer=writer)
            return False, FENCED if outcome == FENCED else "dropped"
        tags = (*route.tags, *(t for t in response.tags if t not in route.tags))  # with the upstream's
        entry = make_entry(response.status, stored_headers(response.headers), response.body, version=version,
                           now=time.time(), ttl=self.jittered(decision.ttl), grace=route.grace, tags=tags)
        outcome = await self.store.write(ctx.key, entry, tags=tags, writer=writer,
                                         linger=self.settings.tombstone_ttl)
        return outcome == STORED, None if outcome == STORED else outcome

    async def _invalidate(self, ctx: Context, writer: bytes, *, hold: bool = False, version: int = 0) -> None:
        for target in ctx.invalidates:
            if target.startswith("tag:"):
                await self.store.invalidate_tag(target[4:], writer=writer, hold=hold,
                                                linger=self.settings.tombstone_ttl,
                                                recent=self.settings.write_fence)
            else:
                await self.store.drop(target, fence=self.settings.tombstone_ttl, writer=writer, hold=hold,
                                      version=version)

    async def _forget(self, ctx: Context, writer: bytes, reason: str, fwd_status: int | None = None, *,
                      hold: bool = False) -> Outcome:
        """Nothing to store: drop the key and everything the write would invalidate. With `hold` (the
        outcome is unknown) the write's fences stay until their deadline: the backend may still commit."""
        outcome = None
        try:
            if ctx.key is not None:
                outcome = await self.store.drop(ctx.key, fence=self.settings.tombstone_ttl, writer=writer,
                                                hold=hold)
            await self._invalidate(ctx, writer, hold=hold)
        except CacheUnavailable:
            return UNAVAILABLE_OUTCOME  # the store remembers the missed drop and moves the epoch later
        if outcome is None and not ctx.invalidates:  # nothing in the cache was touched
            return Outcome(WRITE, reason, fwd="method", fwd_status=fwd_status)
        detail = FENCED if outcome == FENCED else "dropped"
        return Outcome(WRITE, reason, fwd="method", fwd_status=fwd_status, detail=detail)
