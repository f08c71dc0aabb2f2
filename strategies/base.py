"""What every strategy shares: context and reply types, what the cache did (Outcome), the template."""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar, Iterable, Mapping

from cachegate.routes import Fail, RouteConfig, default_lifetimes
from cachegate.settings import CacheConfig
from proxy.errors import UpstreamError
from proxy.metrics import Metrics
from proxy.store import CacheStore
from proxy.upstream import Request, Upstream, UpstreamResponse
from strategies.httpcache import UNAVAILABLE, cache_status


class Outcome:
    """What the cache did for one request: the count it makes (outcome, reason) and its Cache-Status."""

    __slots__ = ("outcome", "reason", "hit", "fwd", "fwd_status", "ttl", "stored", "collapsed", "detail")

    def __init__(self, outcome: str, reason: str = "", *, hit: bool = False, fwd: str | None = None,
                 fwd_status: int | None = None, ttl: float | None = None, stored: bool = False,
                 collapsed: bool = False, detail: str | None = None) -> None:
        self.outcome, self.reason = outcome, reason  # cachegate_cache_requests_total{outcome, reason}
        self.hit, self.fwd, self.fwd_status, self.ttl = hit, fwd, fwd_status, ttl
        self.stored, self.collapsed, self.detail = stored, collapsed, detail

    @classmethod
    def bypass(cls, reason: str, *, fwd: str = "bypass", detail: str | None = None) -> Outcome:
        """Forwarded as it is; `detail` (default: the reason) says why in Cache-Status."""
        return cls("bypass", reason, fwd=fwd, detail=detail if detail is not None else reason)

    def cache_status(self) -> str:
        return cache_status(hit=self.hit, fwd=self.fwd, fwd_status=self.fwd_status, ttl=self.ttl,
                            stored=self.stored, collapsed=self.collapsed, detail=self.detail)


UNAVAILABLE_OUTCOME = Outcome.bypass(UNAVAILABLE)  # Redis down, slow or behind an open breaker
# It waited on another request's fetch, which failed (the handler answers 502 or 504).
WAITED = Outcome("coalesced", "failed", fwd="miss", collapsed=True)


@dataclass(slots=True)
class Context:
    """One request as a strategy sees it; `outcome` is what its hook says the cache did, once it knows."""
    request: Request
    route: RouteConfig
    route_name: str                 # label for metrics and logs, e.g. "GET /users/{id:int}"
    caller: str | None              # verified token subject; None on auth: none routes
    key: str | None                 # rendered key, e.g. "user:42"; None when the route has none
    invalidates: tuple[str, ...]    # rendered: "tag:user-lists" or plain keys such as "trip-members:7"
    bypass: str | None = None       # e.g. "CACHE-OFF": behave as passthrough
    outcome: Outcome | None = None


@dataclass(slots=True)
class Reply:
    status: int
    # Pairs, or a response's own (shared, read-only) headers: the handler copies them once, into its answer.
    headers: Iterable[tuple[str, str]] | Mapping[str, str]
    body: bytes
    cache_status: str = ""           # the whole Cache-Status value (RFC 9211), from the outcome
    elapsed: float | None = None     # seconds this request's own upstream exchange took; None: it made none


def reply_from(response: UpstreamResponse, *, own: bool = True) -> Reply:
    """A reply with the upstream's answer; `own` is False when another request made the exchange."""
    return Reply(response.status, response.headers, response.body, elapsed=response.elapsed if own else None)


class Strategy(ABC):
    """Template method: `handle` serves bypasses, counts what the cache did (once per request) and writes it
    as Cache-Status; a strategy fills `_handle`, which sets `ctx.outcome` as soon as it knows it, so a request
    whose upstream then fails (the handler answers 502/504) is counted too. Fills are counted apart.

    A strategy must answer even when Redis is not there: every CacheUnavailable is caught by the hook that
    called the store, at the point where it still knows whether the upstream has been asked already.

    The class carries its own config rules (cachegate.routes.RouteRules): the methods a rule may take,
    whether it needs a key, what it stores, which options it refuses and how long what it stores lives. So
    a strategy of another package is validated like the built-in ones.
    """

    name: ClassVar[str]
    methods: ClassVar[frozenset[str] | None] = None  # the methods its rules may take; None: any
    methods_rule: ClassVar[str] = ""                 # ...as check-config says it: "serves only GET and HEAD"
    needs_key: ClassVar[bool] = False
    stores: ClassVar[bool] = False                   # puts entries under the rule's key
    forbidden: ClassVar[Mapping[str, str]] = MappingProxyType({})  # option -> why a rule may not set it

    def __init__(self, *, store: CacheStore, upstream: Upstream, metrics: Metrics,
                 settings: CacheConfig) -> None:
        self.store = store
        self.upstream = upstream
        self.metrics = metrics
        self.settings = settings

    # -- config rules (asked by cachegate.routes when the registry is handed in) -----------------------------

    @classmethod
    def check_route(cls, route: RouteConfig, fail: Fail) -> None:
        if cls.methods is not None and not set(route.methods) <= cls.methods:
            fail(f"{cls.name} {cls.methods_rule}, got {', '.join(route.methods)}", "methods")
        if cls.needs_key and route.key is None:
            fail(f"{cls.name} needs a key template", "key")
        for option, why in cls.forbidden.items():
            if getattr(route, option):
                fail(why, option)
        if route.key is None:
            for option in ("ttl", "grace"):
                if getattr(route, option) is not None:
                    fail(f"{option} is the lifetime of the entry stored under key; this rule has no key",
                         option)

    @classmethod
    def lifetimes(cls, route: RouteConfig, cache: CacheConfig, reader: RouteConfig | None) -> RouteConfig:
        """A rule that stores under its key gets the cache section's defaults where it says nothing."""
        if not cls.stores or route.key is None:
            return route
        return default_lifetimes(route, cache)

    # -- serving ---------------------------------------------------------------------------------------------

    async def handle(self, ctx: Context) -> Reply:
        try:
            if ctx.bypass is not None:
                ctx.outcome = Outcome.bypass(ctx.bypass)
                reply = await self.forward(ctx)
            else:
                reply = await self._handle(ctx)
        except UpstreamError:
            if ctx.outcome is None:  # it waited on another request's fetch, which failed
                ctx.outcome = WAITED
            self._count(ctx.route_name, ctx.outcome)
            raise
        outcome = ctx.outcome
        if outcome is None:
            raise AssertionError(f"strategy {self.name} answered without saying what the cache did")
        self._count(ctx.route_name, outcome)
        reply.cache_status = outcome.cache_status()
        return reply

    @abstractmethod
    async def _handle(self, ctx: Context) -> Reply:
        """Serve the request by the strategy's policy, setting `ctx.outcome`."""

    async def close(self) -> None:
        """Stop background work at shutdown; nothing by default."""

    async def drain(self) -> None:
        """Let background work finish: a reload retired this instance while requests may still wait on it."""

    def _count(self, route_name: str, outcome: Outcome) -> None:
        """Once per request: what the cache did (cachegate_cache_requests_total)."""
        self.metrics.count_outcome(route_name, outcome.outcome, outcome.reason)

    def _count_fill(self, route_name: str, fill: Outcome) -> None:
        """Once per fill, a request's own or a refresh in the background: stored, or why not."""
        self.metrics.count_fill(route_name, fill.outcome == "stored", fill.reason)

    # -- helpers for the hooks ------------------------------------------------------------------------------

    async def forward(self, ctx: Context, request: Request | None = None) -> Reply:
        """Send the request upstream (as it is, unless given another) and answer with what came back."""
        return reply_from(await self.send(ctx, request))

    async def send(self, ctx: Context, request: Request | None = None) -> UpstreamResponse:
        return await self.upstream.send(ctx.route.upstream, request or ctx.request)

    def jittered(self, ttl: float) -> float:
        """Shorten (never lengthen) a TTL by up to cache.jitter, so hot keys do not expire together."""
        return ttl * (1.0 - random.uniform(0.0, self.settings.jitter))


def is_strategy(found: Any, name: str) -> bool:
    """A plugin's entry point loaded `found`: is it a Strategy class registered under `name`?"""
    return isinstance(found, type) and issubclass(found, Strategy) and getattr(found, "name", None) == name
