"""What every strategy shares: request, context and reply types, the Strategy template, the registry."""
from __future__ import annotations

import importlib
import logging
import random
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar, Mapping

from proxy.errors import ConfigError
from proxy.httpcache import cache_status
from proxy.metrics import Metrics

if TYPE_CHECKING:
    from proxy.config import CacheConfig, RouteConfig
    from proxy.store import CacheStore
    from proxy.upstream import Upstream, UpstreamResponse

log = logging.getLogger("cachegate.strategies")
ENTRY_POINT_GROUP = "cachegate.strategies"
UNAVAILABLE = "CACHE-UNAVAILABLE"


@dataclass(frozen=True, slots=True)
class Request:
    """What the proxy hands over; no aiohttp types, so strategies can be tested without an app."""
    method: str
    path: str                   # canonical (proxy/canonical.py), encoded exactly as it goes upstream
    query_string: str           # canonical too: the very string the key was rendered from
    headers: Mapping[str, str]  # case-insensitive (a multidict)
    body: bytes


@dataclass(frozen=True, slots=True)
class Context:
    request: Request
    route: RouteConfig
    route_name: str                 # label for metrics and logs, e.g. "GET /users/{id:int}"
    caller: str | None              # verified token subject; None on auth: none routes
    key: str | None                 # rendered key, e.g. "user:42"; None when the route has none
    invalidates: tuple[str, ...]    # rendered: "tag:user-lists" or plain keys such as "trip-members:7"
    bypass: str | None = None       # e.g. "CACHE-OFF": behave as passthrough


@dataclass(slots=True)
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes
    cache_status: str               # the whole Cache-Status value (RFC 9211)


class Strategy:
    """Template method: `handle` does the shared work (bypass, counting, replies); a strategy fills `_handle`.

    A strategy must answer even when Redis is not there: every CacheUnavailable is caught by the hook that
    called the store, at the point where it still knows whether the upstream has been asked already.
    """

    name: ClassVar[str]

    def __init__(self, *, store: CacheStore, upstream: Upstream, metrics: Metrics,
                 cache: CacheConfig) -> None:
        self.store = store
        self.upstream = upstream
        self.metrics = metrics
        self.cache = cache
        # labels() costs a few microseconds per call on the hot path; its children are few and reusable
        self._counters: dict[tuple[str, str, str], Any] = {}

    async def handle(self, ctx: Context) -> Reply:
        if ctx.bypass is not None:
            status = cache_status(fwd="bypass", detail=ctx.bypass)
            return await self.forward(ctx, status, "bypass", ctx.bypass)
        return await self._handle(ctx)

    async def _handle(self, ctx: Context) -> Reply:
        raise NotImplementedError

    async def close(self) -> None:
        """Stop background work at shutdown; nothing by default."""

    async def drain(self) -> None:
        """Let background work finish: a reload retired this instance while requests may still wait on it."""

    # -- helpers for the hooks ------------------------------------------------------------------------------

    async def forward(self, ctx: Context, status: str, outcome: str, reason: str = "") -> Reply:
        """Send the request upstream as it is and answer with what came back."""
        self.count(ctx, outcome, reason)
        return reply_from(await self.send(ctx), status)

    async def send(self, ctx: Context, request: Request | None = None) -> UpstreamResponse:
        return await self.upstream.send(ctx.route.upstream, request or ctx.request)

    def count(self, ctx: Context, outcome: str, reason: str = "") -> None:
        labels = (ctx.route_name, outcome, reason)
        counter = self._counters.get(labels)
        if counter is None:
            counter = self._counters[labels] = self.metrics.cache_outcomes.labels(*labels)
        counter.inc()

    def unavailable(self, ctx: Context) -> str:
        """Count a request that bypassed the cache because of Redis; the store logs the outage once."""
        self.count(ctx, "bypass", UNAVAILABLE)
        return cache_status(fwd="bypass", detail=UNAVAILABLE)

    def ttl(self, route: RouteConfig) -> float:
        return route.ttl if route.ttl is not None else self.cache.default_ttl

    def negative_ttl(self, route: RouteConfig) -> float:
        return route.negative_ttl if route.negative_ttl is not None else self.cache.negative_ttl

    def grace(self, route: RouteConfig) -> float:
        return route.grace if route.grace is not None else self.cache.grace

    def jittered(self, ttl: float) -> float:
        """Shorten (never lengthen) a TTL by up to cache.jitter, so hot keys do not expire together."""
        return ttl * (1.0 - random.uniform(0.0, self.cache.jitter))


def reply_from(response: UpstreamResponse, status: str) -> Reply:
    return Reply(response.status, list(response.headers.items()), response.body, status)


STRATEGIES: dict[str, type[Strategy]] = {}
# Imported on first use rather than by the package's __init__, so the registry is complete however this
# module was reached (in a test session, a tests/strategies folder on sys.path can shadow the package).
BUILTIN_MODULES = ("strategies.passthrough", "strategies.read_through", "strategies.write_through")


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    """Class decorator: make a strategy known by its `name`."""
    STRATEGIES[cls.name] = cls
    return cls


def get_strategy(name: str) -> type[Strategy]:
    """The class registered under `name`, looking at other packages' entry points if needed."""
    _load_builtins()
    if name not in STRATEGIES:
        _load_plugins()
    try:
        return STRATEGIES[name]
    except KeyError:
        raise ConfigError(f"unknown strategy {name!r}; known: {', '.join(sorted(STRATEGIES))}") from None


def known_strategies() -> dict[str, type[Strategy]]:
    """Every strategy registered so far, the built-in ones always included."""
    _load_builtins()
    return dict(STRATEGIES)


def _load_builtins() -> None:
    for module in BUILTIN_MODULES:
        importlib.import_module(module)


def _load_plugins() -> None:
    """Strategies of other packages, declared under [options.entry_points] cachegate.strategies.

    Looked up only for a name the registry does not know (config validation), so no flag is kept.
    """
    for point in entry_points(group=ENTRY_POINT_GROUP):
        if point.name in STRATEGIES:
            continue  # a plugin never replaces a built-in, or an earlier plugin
        plugin = f"{point.name!r} ({point.value})"
        try:
            cls = point.load()
        except Exception as exc:  # a broken plugin is a config problem, reported with its name
            raise ConfigError(f"strategy plugin {plugin} failed to load: {exc}") from exc
        is_strategy = isinstance(cls, type) and issubclass(cls, Strategy)
        if not is_strategy or getattr(cls, "name", None) != point.name:
            raise ConfigError(f"strategy plugin {plugin} is not a Strategy named {point.name!r}")
        STRATEGIES[point.name] = cls
