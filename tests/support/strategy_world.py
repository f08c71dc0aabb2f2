"""Helpers of the strategy tests: a versioned backend that counts what it serves, contexts, routes."""
from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable, Mapping

from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from cachegate.routes import RouteConfig
from cachegate.settings import CacheConfig
from proxy.metrics import Metrics
from proxy.store import CacheStore
from proxy.upstream import Request, Upstream
from strategies.base import Context, Reply, Strategy
from strategies.registry import get_strategy

# RFC 9211: a member is the cache's name, then parameters (key or key=value), separated by "; ".
CACHE_STATUS = (r"^cachegate(; (hit|stored|collapsed|(fwd|detail)=[A-Za-z*][A-Za-z0-9_.:/*-]*"
                r"|(fwd-status|ttl)=-?\d+))*$")


class Backend:
    """Items with versions, like the real services: ETag "<version>", PUT bumps, DELETE answers version + 1.

    Counts every request by (method, path); `gate` holds GET answers back (computed before the wait, like a
    slow read that already has its rows), `write_gate` holds PUT/PATCH answers back after the version was
    bumped (a write committed, its answer slow), `fail_with` answers every request with that status,
    `extra_headers` are added to entity and search answers, `unversioned` answers entities without a version
    (no ETag, no "version" in the body).
    """

    def __init__(self) -> None:
        self.versions: dict[int, int] = {}
        self.deleted: set[int] = set()
        self.hits: Counter[tuple[str, str]] = Counter()
        self.gate: asyncio.Event | None = None
        self.write_gate: asyncio.Event | None = None
        self.fail_with: int | None = None
        self.extra_headers: dict[str, str] = {}
        self.unversioned = False
        self.stop = asyncio.Event()

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/items/{id:[0-9]+}", self.item)
        app.router.add_route("*", "/items", self.items)
        app.router.add_get("/search", self.search)
        app.router.add_route("*", "/slow", self.slow)
        return app

    def served(self, method: str, path: str) -> int:
        return self.hits[(method, path)]

    async def _enter(self, request: web.Request) -> web.Response | None:
        self.hits[(request.method, request.path)] += 1
        if self.fail_with is not None:
            return _error(self.fail_with, "failing on purpose")
        return None

    async def _hold(self, request: web.Request, response: web.Response) -> web.Response:
        if self.gate is not None and request.method == "GET":
            await asyncio.wait_for(self.gate.wait(), 10)
        return response

    def _entity(self, item: int, status: int = 200) -> web.Response:
        version = self.versions.setdefault(item, 1)
        if self.unversioned:
            return web.json_response({"id": item, "name": f"item {item}"}, status=status,
                                     headers=self.extra_headers)
        body = {"id": item, "version": version, "name": f"item {item}"}
        return web.json_response(body, status=status, headers={"ETag": f'"{version}"', **self.extra_headers})

    async def item(self, request: web.Request) -> web.Response:
        failed = await self._enter(request)
        if failed is not None:
            return failed
        item = int(request.match_info["id"])
        if item in self.deleted:
            return await self._hold(request, _error(404, f"no item {item}"))
        if request.method in ("GET", "HEAD"):
            return await self._hold(request, self._entity(item))
        if request.method in ("PUT", "PATCH"):
            self.versions[item] = self.versions.setdefault(item, 1) + 1
            answer = self._entity(item)
            if self.write_gate is not None:
                await asyncio.wait_for(self.write_gate.wait(), 10)
            return answer
        if request.method == "DELETE":
            version = self.versions.setdefault(item, 1) + 1
            self.deleted.add(item)
            return web.json_response({"id": item, "version": version, "deleted": True},
                                     headers={"ETag": f'"{version}"'})
        return _error(405, "method not allowed")

    async def items(self, request: web.Request) -> web.Response:
        failed = await self._enter(request)
        if failed is not None:
            return failed
        if request.method == "POST":
            item = max([0, *self.versions]) + 1
            self.versions[item] = 1
            return self._entity(item, status=201)
        return web.json_response([{"id": i, "version": v} for i, v in sorted(self.versions.items())])

    async def search(self, request: web.Request) -> web.Response:
        failed = await self._enter(request)
        if failed is not None:
            return failed
        found = [i for i in sorted(self.versions) if i not in self.deleted]
        return await self._hold(request, web.json_response({"q": request.query.get("q", ""), "ids": found},
                                                           headers=self.extra_headers))

    async def slow(self, request: web.Request) -> web.Response:
        self.hits[(request.method, request.path)] += 1
        try:
            await asyncio.wait_for(self.stop.wait(), 5)
        except TimeoutError:
            pass
        return web.json_response({"slow": True})


def _error(status: int, message: str) -> web.Response:
    return web.Response(status=status, content_type="application/json",
                        text=json.dumps({"error": {"code": "test", "message": message}}))


def cache_config(prefix: str, **changes: Any) -> CacheConfig:
    base = CacheConfig(enabled=True, prefix=prefix, default_ttl=60.0, negative_ttl=10.0, jitter=0.1,
                       grace=300.0, tombstone_ttl=30.0, fill_wait=2.0, write_fence=3.5)
    return replace(base, **changes)


def route(strategy: str, *, methods: tuple[str, ...] = ("GET",), path: str = "/items/{id:int}",
          upstream: str = "items", key: str | None = None, ttl: float | None = None,
          negative_ttl: float | None = None, grace: float | None = None, tags: tuple[str, ...] = (),
          invalidates: tuple[str, ...] = ()) -> RouteConfig:
    """A rule as config validation leaves it: lifetimes resolved by its strategy (cache_config's defaults)."""
    written = RouteConfig(index=0, methods=methods, path=path, upstream=upstream, strategy=strategy,
                          auth="none", key=key, ttl=ttl, negative_ttl=negative_ttl, grace=grace,
                          scope="shared", tags=tags, invalidates=invalidates)
    return get_strategy(strategy).lifetimes(written, cache_config("-"), None)


def context(strategy: str, method: str, path: str, *, key: str | None = None, query: str = "",
            headers: dict[str, str] | None = None, body: bytes = b"", invalidates: tuple[str, ...] = (),
            bypass: str | None = None, **route_options: Any) -> Context:
    request = Request(method, path, query, CIMultiDictProxy(CIMultiDict(headers or {})), body)
    cfg = route(strategy, methods=(method,), key=key, **route_options)
    return Context(request=request, route=cfg, route_name=f"{method} {cfg.path}", caller=None, key=key,
                   invalidates=invalidates, bypass=bypass)


def body_of(reply: Reply) -> dict[str, Any]:
    return json.loads(reply.body)


def header(reply: Reply, name: str) -> str | None:
    pairs = reply.headers.items() if isinstance(reply.headers, Mapping) else reply.headers
    return next((v for k, v in pairs if k.lower() == name.lower()), None)


@dataclass
class StrategyWorld:
    """One backend, one upstream client, one store: what a proxy process gives its strategies."""
    backend: Backend
    upstream: Upstream
    store: CacheStore
    metrics: Metrics
    prefix: str
    made: list[Strategy] = field(default_factory=list)

    def strategy(self, name: str, **cache_changes: Any) -> Strategy:
        made = get_strategy(name)(store=self.store, upstream=self.upstream, metrics=self.metrics,
                                  settings=cache_config(self.prefix, **cache_changes))
        self.made.append(made)
        return made

    def outcomes(self, outcome: str, reason: str = "") -> float:
        """Requests counted with this outcome (and reason, if given): cachegate_cache_requests_total."""
        return sum(count for (_, found, why), count in self.metrics.cache_requests.counts.items()
                   if found == outcome and (not reason or why == reason))

    def fills(self) -> float:
        return sum(s.value for m in self.metrics.fills.collect() for s in m.samples if s.name.endswith("_total"))

    def fills_refused(self, reason: str) -> float:
        return sum(s.value for m in self.metrics.fills_refused.collect() for s in m.samples
                   if s.name.endswith("_total") and s.labels["reason"] == reason)


WorldFactory = Callable[..., Awaitable[StrategyWorld]]
