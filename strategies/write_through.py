"""Write-through: forward; on 2xx store the returned entity (or a tombstone), drop what it invalidates."""
from __future__ import annotations

import time
from typing import TYPE_CHECKING

from proxy.errors import CacheUnavailable, UpstreamError
from proxy.httpcache import SAFE_METHODS, cache_status, decide, stored_headers, version_of
from proxy.store import STORED, make_entry
from strategies.base import Context, Reply, Strategy, register_strategy, reply_from

if TYPE_CHECKING:
    from proxy.upstream import UpstreamResponse


@register_strategy
class WriteThrough(Strategy):
    name = "write-through"

    async def _handle(self, ctx: Context) -> Reply:
        if ctx.request.method in SAFE_METHODS:  # nothing to write: behave as passthrough
            status = cache_status(fwd="bypass", detail="write-through")
            return await self.forward(ctx, status, "bypass", "method")
        try:
            response = await self.send(ctx)
        except UpstreamError:
            # A timeout or a broken connection: the write may have happened. Drop, never keep.
            await self._forget(ctx, "unknown-outcome")
            raise
        if response.status >= 500:
            status = await self._forget(ctx, f"status-{response.status}", response.status)
        elif 200 <= response.status < 300:
            status = await self._apply(ctx, response)
        else:  # refused (4xx): nothing changed upstream, so the cache stays as it is
            self.count(ctx, "not_stored", f"status-{response.status}")
            status = cache_status(fwd="method", fwd_status=response.status)
        return reply_from(response, status)

    async def _apply(self, ctx: Context, response: UpstreamResponse) -> str:
        version = version_of(response.headers, response.body)
        stored, detail = False, None
        try:
            if ctx.key is not None and ctx.request.method == "DELETE":
                await self.store.tombstone(ctx.key, version, ttl=self.cache.tombstone_ttl)
                detail = "tombstone"
            elif ctx.key is not None:
                stored, detail = await self._store(ctx, response, version)
            # The keys a write invalidates are views of the same entity (user:{id} beside user-me:{caller}):
            # dropped at its new version, so no fill of an older view lands there.
            await self._invalidate(ctx, version)
        except CacheUnavailable:
            return self.unavailable(ctx)
        self.count(ctx, "stored" if stored else "not_stored", detail or "")
        return cache_status(fwd="method", fwd_status=response.status, stored=stored, detail=detail)

    async def _store(self, ctx: Context, response: UpstreamResponse, version: int) -> tuple[bool, str | None]:
        """The returned entity under the key, if it carries a version and may be cached; else drop the key."""
        assert ctx.key is not None
        decision = decide(response.status, response.headers, ttl=self.ttl(ctx.route), negative_ttl=0.0)
        if not version or not decision.store:
            await self.store.drop(ctx.key, fence=self.cache.tombstone_ttl)
            return False, "dropped"
        entry = make_entry(response.status, stored_headers(response.headers), response.body, version=version,
                           now=time.time(), ttl=self.jittered(decision.ttl), grace=self.grace(ctx.route))
        outcome = await self.store.write(ctx.key, entry, tags=ctx.route.tags)
        return outcome == STORED, None if outcome == STORED else outcome

    async def _invalidate(self, ctx: Context, version: int = 0) -> None:
        for target in ctx.invalidates:
            if target.startswith("tag:"):
                await self.store.invalidate_tag(target[4:])
            else:
                await self.store.drop(target, fence=self.cache.tombstone_ttl, version=version)

    async def _forget(self, ctx: Context, reason: str, fwd_status: int | None = None) -> str:
        """The outcome is unknown: drop the key and everything the write would invalidate."""
        try:
            if ctx.key is not None:
                await self.store.drop(ctx.key, fence=self.cache.tombstone_ttl)
            await self._invalidate(ctx)
        except CacheUnavailable:
            return self.unavailable(ctx)  # the store remembers the missed drop and moves the epoch later
        self.count(ctx, "not_stored", reason)
        return cache_status(fwd="method", fwd_status=fwd_status, detail="dropped")
