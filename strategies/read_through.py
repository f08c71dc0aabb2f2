"""Read-through: answer from the cache; on a miss one request per key goes upstream and is stored."""
from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from proxy.errors import CacheUnavailable, UpstreamError
from proxy.records import Entry, Lookup, make_entry
from proxy.store import FULL, OPEN, STORED, CacheFull
from proxy.upstream import UpstreamResponse
from strategies.base import UNAVAILABLE_OUTCOME, Context, Outcome, Reply, Strategy, reply_from
from strategies.flights import Flights
from strategies.httpcache import (NEGATIVE_STATUSES, NOT_MODIFIED_HEADERS, SAFE_METHODS, UNAVAILABLE, decide,
                                  etag_matches, stored_headers, unconditional, version_of)

MAX_REMEMBERED_FAILURES = 10_000
# While another process holds the lease of a cold key, this process looks again for its entry: first after
# LEASE_POLL seconds, the wait doubling up to LEASE_POLL_MAX, within cache.fill_wait. One request per key and
# process polls (the others wait on its flight), so a wait costs a lookup each time, shared with the tick's.
LEASE_POLL, LEASE_POLL_MAX = 0.005, 0.05
METHOD = Outcome.bypass("method", fwd="method", detail="")
NO_KEY = Outcome.bypass("no-key")


@dataclass(frozen=True, slots=True)
class Fetched:
    response: UpstreamResponse | None  # None when another process's fill answered (`entry`)
    fill: Outcome               # stored, or not_stored and why (also the detail of the answer's Cache-Status)
    entry: Entry | None = None  # what another process's fill stored while this one waited on its lease

    @property
    def stored(self) -> bool:
        return self.fill.outcome == STORED


class ReadThrough(Strategy):
    name = "read-through"
    methods = SAFE_METHODS
    methods_rule = "serves only GET and HEAD"
    needs_key = True
    stores = True
    forbidden = MappingProxyType({
        "invalidates": "a read-through rule invalidates nothing; put invalidates on the write rule"})

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
            ctx.outcome = METHOD
            return await self.forward(ctx)
        if ctx.key is None:
            ctx.outcome = NO_KEY
            return await self.forward(ctx)
        try:
            seen = await self.store.lookup(ctx.key, ctx.route.tags)
        except CacheUnavailable:
            ctx.outcome = UNAVAILABLE_OUTCOME
            return await self.forward(ctx)
        entry, now = seen.entry, time.time()
        if entry is None or now >= entry.stale_until:
            return await self._miss(ctx, seen)
        if now < entry.fresh_until:
            return self._serve(ctx, entry, now, Outcome("hit", hit=True, ttl=entry.fresh_until - now))
        return self._serve_stale(ctx, seen, entry, now)

    def _serve_stale(self, ctx: Context, seen: Lookup, entry: Entry, now: float) -> Reply:
        """Within grace: answer at once and let one background fetch refresh the entry."""
        failed = self._failures.get(ctx.key)
        if ctx.request.method == "GET":
            self.flights.start(ctx.key, seen.state, lambda states: self._fill(ctx, seen, states))
        ttl = entry.fresh_until - now
        if failed is not None:
            outcome = Outcome("stale_error", hit=True, ttl=ttl, fwd_status=failed, detail="stale-if-error")
        else:
            outcome = Outcome("stale", "revalidate", hit=True, ttl=ttl, detail="stale-while-revalidate")
        return self._serve(ctx, entry, now, outcome)

    def _serve(self, ctx: Context, entry: Entry, now: float, outcome: Outcome) -> Reply:
        age = ("Age", str(entry.age(now)))
        etag = next((value for name, value in entry.headers if name == "ETag"), None)
        if entry.status == 200 and etag_matches(ctx.request.headers.get("If-None-Match"), etag):
            outcome.outcome, outcome.reason = "revalidated", ""
            ctx.outcome = outcome
            validators = [(n, v) for n, v in entry.headers if n in NOT_MODIFIED_HEADERS]
            return Reply(304, [*validators, age], b"")
        ctx.outcome = outcome
        return Reply(entry.status, [*entry.headers, age], entry.body)

    async def _miss(self, ctx: Context, seen: Lookup) -> Reply:
        key = ctx.key
        assert key is not None
        running = self.flights.running(key, seen.state)
        if running is not None:
            try:
                fetched = await asyncio.wait_for(asyncio.shield(running), self.settings.fill_wait)
            except TimeoutError:
                ctx.outcome = Outcome("miss", fwd="miss")
                # The fill in flight is too slow: go upstream ourselves (the store arbitrates fills).
                fetched = await self._fill(ctx, seen, set())
            except UpstreamError:
                # The fetch we waited on failed: its client has its answer, we try once more, coalesced
                # again (the first of us to get here leads), rather than all fail with it.
                ctx.outcome = Outcome("miss", "retry", fwd="miss")
                fetched = await asyncio.shield(
                    self.flights.start(key, seen.state, lambda states: self._fill(ctx, seen, states)))
            else:
                if fetched.entry is not None:
                    return self._leased(ctx, fetched.entry)
                assert fetched.response is not None
                ctx.outcome = Outcome("coalesced", fwd="miss", fwd_status=fetched.response.status,
                                      collapsed=True)
                return self._answer(ctx, fetched, own=False)
        elif ctx.request.method == "HEAD":  # no body to store; a GET will fill
            ctx.outcome = Outcome("miss", fwd="miss")
            return await self.forward(ctx)
        else:
            ctx.outcome = Outcome("miss", fwd="miss")
            fetched = await asyncio.shield(
                self.flights.start(key, seen.state, lambda states: self._fill(ctx, seen, states)))
        if fetched.entry is not None:
            return self._leased(ctx, fetched.entry)
        assert fetched.response is not None
        ctx.outcome = Outcome("miss", ctx.outcome.reason, fwd="miss", fwd_status=fetched.response.status,
                              stored=fetched.stored, detail=None if fetched.stored else fetched.fill.reason)
        return self._answer(ctx, fetched)

    def _leased(self, ctx: Context, entry: Entry) -> Reply:
        """Answered by the entry another gateway process's fill stored while this one waited on its lease."""
        now = time.time()
        outcome = Outcome("coalesced", "lease", hit=True, ttl=entry.fresh_until - now, collapsed=True)
        return self._serve(ctx, entry, now, outcome)

    def _answer(self, ctx: Context, fetched: Fetched, *, own: bool = True) -> Reply:
        response = fetched.response
        assert response is not None
        if response.status == 200 and etag_matches(ctx.request.headers.get("If-None-Match"),
                                                   response.headers.get("ETag")):
            validators = [(n, response.headers[n]) for n in NOT_MODIFIED_HEADERS if n in response.headers]
            return Reply(304, validators, b"", elapsed=response.elapsed if own else None)
        return reply_from(response, own=own)

    async def _fill(self, ctx: Context, seen: Lookup, states: set) -> Fetched:
        """One fetch and fill (a request's own, or a refresh in the background); counts what it stored.
        `states` gets the records this fetch writes itself, so that lookups which see them may share it."""
        fetched = await self._fetch(ctx, seen, states)
        if fetched.entry is None:
            self._count_fill(ctx.route_name, fetched.fill)
        return fetched

    async def _fetch(self, ctx: Context, seen: Lookup, states: set) -> Fetched:
        """GET the full entity (no validators, so never a 304) and store it if the rules allow."""
        key, route = ctx.key, ctx.route
        assert key is not None and route.ttl is not None and route.negative_ttl is not None
        refused, own = None, False
        for waited in (False, True):
            if not seen.token:  # an empty key: take a lease on it first, which a marker written since voids
                try:
                    seen = await self.store.claim(key, seen, lifetime=self.settings.write_fence)
                    own = not seen.token or not seen.leased
                    states.add(seen.state)
                except CacheFull:
                    refused = FULL
                except CacheUnavailable:
                    refused = UNAVAILABLE
            if not seen.leased or waited or refused is not None:
                break
            # Another gateway process holds the key's lease: wait for its fill (once, within fill_wait); if
            # none comes, go upstream ourselves and fill against what the key holds then.
            entry, seen = await self._wait_for_fill(key, route.tags, seen)
            states.add(seen.state)  # what this fetch fills against from now on
            if entry is not None:
                return Fetched(None, Outcome("not_stored", "lease"), entry)
        own = own and not seen.leased
        if seen.fenced and refused is None:
            # A write is or was in flight: fill only with what is read after it has ended.
            try:
                refused, seen = await self.store.reopen(key, seen)
                states.add(seen.state)
            except CacheFull:
                refused = FULL
            except CacheUnavailable:
                refused = UNAVAILABLE
            refused = None if refused == OPEN else refused
        request = dataclasses.replace(ctx.request, method="GET", headers=unconditional(ctx.request.headers))
        try:
            response = await self.send(ctx, request)
        except UpstreamError as exc:
            self._remember(key, exc.status)
            if own:
                await self._release(key, seen)
            raise
        if response.status >= 500:
            self._remember(key, response.status)
        else:
            self._failures.pop(key, None)
        decision = decide(response.status, response.headers, ttl=route.ttl, negative_ttl=route.negative_ttl)
        if not decision.store or refused is not None:
            why = decision.reason if not decision.store else refused
            if own:
                await self._release(key, seen)
            return Fetched(response, Outcome("not_stored", why))
        negative = response.status in NEGATIVE_STATUSES  # a 404 gets no grace: it must not outlive a create
        named = tuple(t for t in response.tags if t not in route.tags)  # the upstream's Cache-Tag
        entry = make_entry(response.status, stored_headers(response.headers), response.body,
                           version=version_of(response.headers, response.body), now=time.time(),
                           ttl=self.jittered(decision.ttl), grace=0.0 if negative else route.grace or 0.0,
                           tags=(*route.tags, *named))
        try:
            outcome = await self.store.fill(key, entry, seen=seen, tags=route.tags, upstream_tags=named)
        except CacheUnavailable:
            outcome = UNAVAILABLE
        if outcome == STORED:
            return Fetched(response, Outcome(STORED))
        if own:
            await self._release(key, seen)
        return Fetched(response, Outcome("not_stored", outcome))

    async def _wait_for_fill(self, key: str, tags: tuple[str, ...],
                             seen: Lookup) -> tuple[Entry | None, Lookup]:
        """Look again until the lease `seen` found turns into a servable entry (returned), or ends without
        one, or cache.fill_wait passes (None and what was seen last)."""
        loop = asyncio.get_running_loop()
        deadline, delay = loop.time() + self.settings.fill_wait, LEASE_POLL
        while (left := deadline - loop.time()) > 0:
            await asyncio.sleep(min(delay, left))  # the lease holder's fetch is under way elsewhere
            delay = min(2 * delay, LEASE_POLL_MAX)
            try:
                now = await self.store.lookup(key, tags)
            except CacheUnavailable:
                return None, seen
            if now.entry is not None and time.time() < now.entry.fresh_until:
                return now.entry, now
            if now.token != seen.token:
                return None, now   # the lease ended without a fresh entry (given back, replaced, dropped)
        return None, seen

    async def _release(self, key: str, seen: Lookup) -> None:
        try:
            await self.store.release(key, seen)
        except CacheUnavailable:
            pass  # it expires by itself; the waiting processes go upstream after fill_wait

    def _remember(self, key: str, status: int) -> None:
        if len(self._failures) >= MAX_REMEMBERED_FAILURES:
            self._failures.clear()  # a long outage over many keys: forgetting only loses a detail label
        self._failures[key] = status
