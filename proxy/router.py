"""Route table compiled once: first rule whose method and whole-path template match; keys rendered here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

from cachegate.routes import SAFE, RouteConfig
from cachegate.templates import KeyRenderer, PathTemplate, compile_key_template, parse_path_template
from proxy.errors import MethodNotAllowed, NotFound


@dataclass(frozen=True, slots=True)
class Route:
    config: RouteConfig
    template: PathTemplate
    methods: frozenset[str]
    key: KeyRenderer | None
    invalidates: tuple[KeyRenderer | str, ...]  # "tag:NAME" stays a string; key templates are rendered
    key_query: frozenset[str] | None  # query parameters the key names; None when it takes them all ({query})
    invalidated: bool = False  # the invalidator's rules cover its entries (bypassed while it is behind)

    @property
    def name(self) -> str:
        return self.config.name

    def key_covers(self, query: str) -> bool:
        """Does the key tell this URL apart (query in canonical form)? A query parameter the key ignores
        could change the answer (or make the service refuse it): it must not share the plain URL's entry."""
        if not query or self.key_query is None:
            return True
        return all(part.partition("=")[0] in self.key_query for part in query.split("&"))


@dataclass(frozen=True, slots=True)
class Match:
    route: Route
    params: dict[str, str]


class Router:
    """Frozen after construction: a reload builds a new Router and swaps it in one assignment."""

    def __init__(self, routes: Iterable[RouteConfig], *, invalidated: frozenset[int] = frozenset()) -> None:
        self.routes = tuple(compile_route(r, invalidated=r.index in invalidated) for r in routes)
        self._static: dict[str, list[Route]] = {}
        for route in self.routes:
            if route.template.regex is None:
                self._static.setdefault(route.template.text, []).append(route)
        self._dynamic = tuple(r for r in self.routes if r.template.regex is not None)

    def resolve(self, method: str, path: str) -> Match:
        """First matching rule by config order; NotFound or MethodNotAllowed (with Allow) otherwise."""
        best: Match | None = None
        allowed: set[str] = set()
        lookup = "GET" if method == "HEAD" else method
        for route in self._static.get(path, ()):
            if lookup in route.methods:
                best = Match(route, {})
                break
            allowed |= route.methods
        for route in self._dynamic:
            if best is not None and route.config.index > best.route.config.index:
                break
            params = route.template.match(path)
            if params is None:
                continue
            if lookup in route.methods:
                best = Match(route, params)
                break
            allowed |= route.methods
        if best is not None:
            return best
        if allowed:
            allow = ", ".join(sorted(allowed | ({"HEAD"} if "GET" in allowed else set())))
            raise MethodNotAllowed(f"{method} is not allowed on {path}; allowed: {allow}",
                                   headers={"Allow": allow})
        raise NotFound(f"no route for {path}")


def compile_route(cfg: RouteConfig, *, invalidated: bool = False) -> Route:
    template = parse_path_template(cfg.path)
    key, key_query = None, frozenset()
    if cfg.key:
        key, used = compile_key_template(cfg.key, template.params)
        key_query = None if "query" in used else frozenset(u[6:] for u in used if u.startswith("query."))
    invalidates: list[KeyRenderer | str] = []
    for item in cfg.invalidates:
        is_tag = item.startswith("tag:")
        invalidates.append(item if is_tag else compile_key_template(item, template.params)[0])
    return Route(cfg, template, frozenset(cfg.methods), key, tuple(invalidates), key_query, invalidated)


def render_invalidations(route: Route, params: Mapping[str, str], query_string: str,
                         caller: str | None) -> tuple[str, ...]:
    return tuple(i if isinstance(i, str) else i(params, query_string, caller) for i in route.invalidates)


def cache_bypass(route: Route, method: str, query: str, cache_enabled: bool,
                 invalidator_behind: bool = False) -> str | None:
    """Why a request on `route` bypasses the cache (its Cache-Status detail), or None when it uses it."""
    if not cache_enabled:
        return "CACHE-OFF"
    if invalidator_behind and route.invalidated and method in SAFE:
        return "INVALIDATOR-BEHIND"  # a change made around the gateway may not be applied yet (lagwatch)
    if route.key is not None and query and method in SAFE and not route.key_covers(query):
        return "QUERY-NOT-IN-KEY"  # the key could not tell this URL from the plain one
    return None
