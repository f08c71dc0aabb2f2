"""Read-through: answer from the cache; on a miss one request per key goes upstream and is stored."""
from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from proxy.errors import CacheUnavailable, UpstreamError
from proxy.httpcache import (NEGATIVE_STATUSES, NOT_MODIFIED_HEADERS, SAFE_METHODS, cache_status, decide,
                             etag_matches, stored_headers, unconditional, version_of)
from proxy.store import OPEN, STORED, Entry, Lookup, make_entry
from strategies.base import UNAVAILABLE, Context, Reply, Strategy, register_strategy, reply_from
from strategies.flights import Flights

if TYPE_CHECKING:
    from proxy.upstream import UpstreamResponse

MAX_REMEMBERED_FAILURES = 10_000


@dataclass(frozen=True, slots=True)
class Fetched:
    response: UpstreamResponse
    stored: bool
    detail: str | None = None  # why it was not stored


@register_strategy
class ReadThrough(Strategy):
    name = "read-through"

    def __init__(self, **clients: Any) -> None:
        super().__init__(**clients)
        self.flights: Flights[Fetched] = Flights()  # one fetch per key in this process
        # key -> status of its last failed fetch, so stale answers can say they are stale-if-error
        self._failures: dict[str, int] = {}

    async def close(self) -> None:
        await self.flights.close()

    async def drain(self) -> None:
        await self.flights.wait()

    async def _handle(self, ctx: Context) -> Reply:
        if ctx.request.method not in SAFE_METHODS:
            return await self.forward(ctx, cache_status(fwd="method"), "bypass", "method")
        if ctx.key is None:
            return await self.forward(ctx, cache_status(fwd="bypass", detail="no-key"), "bypass", "no-key")
        try:
            seen = await self.store.lookup(ctx.key, ctx.route.tags)
        except CacheUnavailable:
            return reply_from(await self.send(ctx), self.unavailable(ctx))
        entry, now = seen.entry, time.time()
        if entry is None or now >= entry.stale_until:
            return await self._miss(ctx, seen)
        if now < entry.fresh_until:
            return self._serve(ctx, entry, now, cache_status(hit=True, ttl=entry.fresh_until - now), "hit")
        return self._serve_stale(ctx, seen, entry, now)

    def _serve_stale(self, ctx: Context, seen: Lookup, entry: Entry, now: float) -> Reply:
        """Within grace: answer at once and let one background fetch refresh the entry."""
        failed = self._failures.get(ctx.key)
        if ctx.request.method == "GET":
            self.flights.start(ctx.key, lambda: self._fetch(ctx, seen))
        ttl = entry.fresh_until - now
        if failed is not None:
            return self._serve(ctx, entry, now, cache_status(hit=True, ttl=ttl, fwd_status=failed,
                                                             detail="stale-if-error"), "stale_error")
        return self._serve(ctx, entry, now, cache_status(hit=True, ttl=ttl, detail="stale-while-revalidate"),
                           "stale", "revalidate")

    def _serve(self, ctx: Context, entry: Entry, now: float, status: str, outcome: str,
               reason: str = "") -> Reply:
        age = ("Age", str(entry.age(now)))
        etag = next((value for name, value in entry.headers if name == "ETag"), None)
        if entry.status == 200 and etag_matches(ctx.request.headers.get("If-None-Match"), etag):
            self.count(ctx, "revalidated")
            validators = [(n, v) for n, v in entry.headers if n in NOT_MODIFIED_HEADERS]
            return Reply(304, [*validators, age], b"", status)
        self.count(ctx, outcome, reason)
        return Reply(entry.status, [*entry.headers, age], entry.body, status)

    async def _miss(self, ctx: Context, seen: Lookup) -> Reply:
        key = ctx.key
        assert key is not None
        running = self.flights.running(key)
        if running is not None:
            try:
                fetched = await asyncio.wait_for(asyncio.shield(running), self.cache.fill_wait)
            except TimeoutError:
                pass  # the fill in flight is too slow: go upstream ourselves (the store arbitrates fills)
            else:
                self.count(ctx, "coalesced")
                return self._answer(ctx, fetched, cache_status(fwd="miss", fwd_status=fetched.response.status,
                                                               collapsed=True))
            self.count(ctx, "miss")
            fetched = await self._fetch(ctx, seen)
        elif ctx.request.method == "HEAD":  # no body to store; a GET will fill
            return await self.forward(ctx, cache_status(fwd="miss"), "miss")
        else:
            self.count(ctx, "miss")
            fetched = await asyncio.shield(self.flights.start(key, lambda: self._fetch(ctx, seen)))
        return self._answer(ctx, fetched, cache_status(fwd="miss", fwd_status=fetched.response.status,
                                                       stored=fetched.stored, detail=fetched.detail))

    def _answer(self, ctx: Context, fetched: Fetched, status: str) -> Reply:
        response = fetched.response
        if response.status == 200 and etag_matches(ctx.request.headers.get("If-None-Match"),
                                                   response.headers.get("ETag")):
            validators = [(n, response.headers[n]) for n in NOT_MODIFIED_HEADERS if n in response.headers]
            return Reply(304, validators, b"", status)
        return reply_from(response, status)

    async def _fetch(self, ctx: Context, seen: Lookup) -> Fetched:
        """GET the full entity (no validators, so never a 304) and store it if the rules allow."""
        key, route = ctx.key, ctx.route
        assert key is not None
        refused = None
        if seen.fenced:  # a write is or was in flight: fill only with what is read after it has ended
            try:
                refused, seen = await self.store.reopen(key, seen)
            except CacheUnavailable:
                refused = UNAVAILABLE
            refused = None if refused == OPEN else refused
        request = dataclasses.replace(ctx.request, method="GET", headers=unconditional(ctx.request.headers))
        try:
            response = await self.send(ctx, request)
        except UpstreamError as exc:
            self._remember(key, exc.status)
            raise
        if response.status >= 500:
            self._remember(key, response.status)
        else:
            self._failures.pop(key, None)
        decision = decide(response.status, response.headers, ttl=self.ttl(route),
                          negative_ttl=self.negative_ttl(route))
        if not decision.store or refused is not None:
            reason = decision.reason if not decision.store else refused
            self.count(ctx, "not_stored", reason)
            return Fetched(response, False, reason)
        negative = response.status in NEGATIVE_STATUSES  # a 404 gets no grace: it must not outlive a create
        entry = make_entry(response.status, stored_headers(response.headers), response.body,
                           version=version_of(response.headers, response.body), now=time.time(),
                           ttl=self.jittered(decision.ttl), grace=0.0 if negative else self.grace(route))
        try:
            outcome = await self.store.fill(key, entry, seen=seen, tags=route.tags)
        except CacheUnavailable:
            outcome = UNAVAILABLE
        if outcome == STORED:
            self.count(ctx, "stored")
            return Fetched(response, True)
        self.count(ctx, "not_stored", outcome)
        return Fetched(response, False, outcome)

    def _remember(self, key: str, status: int) -> None:
        if len(self._failures) >= MAX_REMEMBERED_FAILURES:
            self._failures.clear()  # a long outage over many keys: forgetting only loses a detail label
        self._failures[key] = status
