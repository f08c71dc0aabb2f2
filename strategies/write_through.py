"""Write-through: fence what a write changes, forward it, then store the returned entity (or a tombstone)."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from proxy.errors import CacheUnavailable, UpstreamError
from proxy.httpcache import SAFE_METHODS, cache_status, decide, stored_headers, version_of
from proxy.store import FENCED, STORED, make_entry, new_writer
from strategies.base import Context, Reply, Strategy, register_strategy, reply_from

if TYPE_CHECKING:
    from proxy.upstream import UpstreamResponse


@register_strategy
class WriteThrough(Strategy):
    """Before the write goes upstream its key and what it invalidates are fenced (a miss that refuses
    fills), so a gateway that dies at any point leaves a miss, never an older entry; the answer settles
    the fence: 2xx stores, a refusal or a 5xx drops, an unknown outcome leaves it to its deadline."""

    name = "write-through"

    async def _handle(self, ctx: Context) -> Reply:
        if ctx.request.method in SAFE_METHODS:  # nothing to write: behave as passthrough
            status = cache_status(fwd="bypass", detail="write-through")
            return await self.forward(ctx, status, "bypass", "method")
        writer = new_writer()
        await self._fence(ctx, writer)
        try:
            response = await self.send(ctx)
        except UpstreamError:
            # A timeout or a broken connection: the write may have happened, or may still happen.
            await self._forget(ctx, writer, "unknown-outcome", hold=True)
            raise
        if 200 <= response.status < 300:
            status = await self._apply(ctx, response, writer)
        else:  # refused (4xx, nothing changed) or failed (5xx): the fence ends, the keys stay misses
            status = await self._forget(ctx, writer, f"status-{response.status}", response.status)
        return reply_from(response, status)

    async def _fence(self, ctx: Context, writer: bytes) -> None:
        keys = [t for t in ctx.invalidates if not t.startswith("tag:")]
        if ctx.key is not None:
            keys.append(ctx.key)
        tags = [t[4:] for t in ctx.invalidates if t.startswith("tag:")]
        if not keys and not tags:
            return
        try:
            await self.store.fence(writer, keys, tags, lifetime=self.cache.write_fence,
                                   linger=self.cache.tombstone_ttl)
        except CacheUnavailable:
            pass  # the write still goes upstream; the store counted a missed write and moves the epoch

    async def _apply(self, ctx: Context, response: UpstreamResponse, writer: bytes) -> str:
        version = version_of(response.headers, response.body)
        stored, detail = False, None
        try:
            if ctx.key is not None and ctx.request.method == "DELETE":
                outcome = await self.store.tombstone(ctx.key, version, ttl=self.cache.tombstone_ttl,
                                                     writer=writer)
                detail = "tombstone" if outcome == STORED else outcome
            elif ctx.key is not None:
                stored, detail = await self._store(ctx, response, version, writer)
            # The keys a write invalidates are views of the same entity (user:{id} beside user-me:{caller}):
            # dropped at its new version, so no fill of an older view lands there.
            await self._invalidate(ctx, writer, version=version)
        except CacheUnavailable:
            return self.unavailable(ctx)
        self.count(ctx, "stored" if stored else "not_stored", detail or "")
        return cache_status(fwd="method", fwd_status=response.status, stored=stored, detail=detail)

    async def _store(self, ctx: Context, response: UpstreamResponse, version: int,
                     writer: bytes) -> tuple[bool, str | None]:
        """The returned entity under the key, if it carries a version and may be cached; else drop the key."""
        assert ctx.key is not None
        decision = decide(response.status, response.headers, ttl=self.ttl(ctx.route), negative_ttl=0.0)
        if not version or not decision.store:
            outcome = await self.store.drop(ctx.key, fence=self.cache.tombstone_ttl, writer=writer)
            return False, FENCED if outcome == FENCED else "dropped"
        entry = make_entry(response.status, stored_headers(response.headers), response.body, version=version,
                           now=time.time(), ttl=self.jittered(decision.ttl), grace=self.grace(ctx.route))
        outcome = await self.store.write(ctx.key, entry, tags=ctx.route.tags, writer=writer,
                                         linger=self.cache.tombstone_ttl)
        return outcome == STORED, None if outcome == STORED else outcome

    async def _invalidate(self, ctx: Context, writer: bytes, *, hold: bool = False, version: int = 0) -> None:
        for target in ctx.invalidates:
            if target.startswith("tag:"):
                await self.store.invalidate_tag(target[4:], writer=writer, hold=hold,
                                                linger=self.cache.tombstone_ttl)
            else:
                await self.store.drop(target, fence=self.cache.tombstone_ttl, writer=writer, hold=hold,
                                      version=version)

    async def _forget(self, ctx: Context, writer: bytes, reason: str, fwd_status: int | None = None, *,
                      hold: bool = False) -> str:
        """Nothing to store: drop the key and everything the write would invalidate. With `hold` (the
        outcome is unknown) the write's fences stay until their deadline: the backend may still commit."""
        outcome = None
        try:
            if ctx.key is not None:
                outcome = await self.store.drop(ctx.key, fence=self.cache.tombstone_ttl, writer=writer,
                                                hold=hold)
            await self._invalidate(ctx, writer, hold=hold)
        except CacheUnavailable:
            return self.unavailable(ctx)  # the store remembers the missed drop and moves the epoch later
        self.count(ctx, "not_stored", reason)
        if outcome is None and not ctx.invalidates:
            return cache_status(fwd="method", fwd_status=fwd_status)  # nothing in the cache was touched
        detail = FENCED if outcome == FENCED else "dropped"
        return cache_status(fwd="method", fwd_status=fwd_status, detail=detail)
