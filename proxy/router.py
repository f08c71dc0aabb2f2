"""Route table compiled once: first rule whose method and whole-path template match; keys rendered here."""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping
from urllib.parse import quote

from proxy.config import Config, RouteConfig
from proxy.errors import MethodNotAllowed, NotFound

_PARAM = re.compile(r"\{([^{}]*)\}")
_PARAM_NAME = re.compile(r"^[a-z_][a-z0-9_]*$")
_PARAM_TYPES = {"int": r"[0-9]{1,18}", "str": r"[^/]+"}
_KEY_PLACEHOLDER = re.compile(r"^(?:[a-z_][a-z0-9_]*|query|query\.[A-Za-z0-9_.-]+|caller)$")
_KEY_TEXT = re.compile(r"^[A-Za-z0-9_.:/-]*$")


@dataclass(frozen=True, slots=True)
class PathTemplate:
    text: str
    params: tuple[str, ...]
    regex: re.Pattern[str] | None  # None for a static path, matched by equality

    def match(self, path: str) -> dict[str, str] | None:
        if self.regex is None:
            return {} if path == self.text else None
        m = self.regex.fullmatch(path)
        return m.groupdict() if m else None


def parse_path_template(text: str) -> PathTemplate:
    """'/users/{id:int}' -> a whole-path matcher. ValueError says what is wrong."""
    if not text.startswith("/"):
        raise ValueError(f'expected a path starting with /, got "{text}"')
    if "?" in text or "#" in text or "//" in text:
        raise ValueError(f'expected a path without ?, # or //, got "{text}"')
    pattern, params, pos = [], [], 0
    for m in _PARAM.finditer(text):
        literal = text[pos:m.start()]
        if "{" in literal or "}" in literal:
            raise ValueError(f'unbalanced braces in "{text}"')
        name, _, kind = m.group(1).partition(":")
        kind = kind or "str"
        if not _PARAM_NAME.match(name):
            raise ValueError(f'bad parameter name "{name}" in "{text}"')
        if kind not in _PARAM_TYPES:
            raise ValueError(f'unknown parameter type "{kind}" in "{text}" (known: int, str)')
        if name in params:
            raise ValueError(f'parameter "{name}" appears twice in "{text}"')
        before, after = text[m.start() - 1], text[m.end():m.end() + 1]
        if before != "/" or after not in ("", "/"):
            raise ValueError(f'a parameter must fill a whole path segment in "{text}"')
        pattern.append(re.escape(literal))
        pattern.append(f"(?P<{name}>{_PARAM_TYPES[kind]})")
        params.append(name)
        pos = m.end()
    tail = text[pos:]
    if "{" in tail or "}" in tail:
        raise ValueError(f'unbalanced braces in "{text}"')
    if not params:
        return PathTemplate(text, (), None)
    pattern.append(re.escape(tail))
    return PathTemplate(text, tuple(params), re.compile("".join(pattern)))


# render(path params, query in canonical form (proxy/canonical.py), caller) -> key
KeyRenderer = Callable[[Mapping[str, str], str, "str | None"], str]


def compile_key_template(text: str, path_params: Iterable[str]) -> tuple[KeyRenderer, frozenset[str]]:
    """'user-search:{query}' -> (render(params, query, caller), placeholders). ValueError says why.

    Rendering is on every request's path, so the template becomes one str.format call."""
    known = set(path_params)
    fmt: list[str] = []
    getters: list[Callable[[Mapping[str, str], str, str | None], str]] = []
    names: list[str] = []  # the path parameters, when they are the only placeholders
    used: set[str] = set()
    pos = 0
    for m in _PARAM.finditer(text):
        literal = text[pos:m.start()]
        _check_key_text(literal, text)
        fmt.append(literal)
        fmt.append("{}")
        name = m.group(1)
        if not _KEY_PLACEHOLDER.match(name):
            raise ValueError(f'bad placeholder "{{{name}}}" in key "{text}"')
        if name == "query":
            getters.append(lambda p, q, c: _all_query(q))
        elif name.startswith("query."):
            getters.append(lambda p, q, c, n=name[6:]: _one_query(q, n))
        elif name == "caller":
            getters.append(lambda p, q, c: _caller(c))
        elif name in known:
            getters.append(lambda p, q, c, n=name: _quote(p[n]))
            names.append(name)
        else:
            raise ValueError(f'placeholder "{{{name}}}" in key "{text}" is not a path parameter '
                             f'(known: {", ".join(sorted(known)) or "none"}; or query, query.NAME, caller)')
        used.add(name)
        pos = m.end()
    _check_key_text(text[pos:], text)
    fmt.append(text[pos:])
    template = "".join(fmt)
    if not getters:
        return (lambda p, q, c: template), frozenset()
    if len(names) == len(getters) == 1:
        only = names[0]
        return (lambda p, q, c: template.format(_quote(p[only]))), frozenset(used)
    return (lambda p, q, c: template.format(*[get(p, q, c) for get in getters])), frozenset(used)


def _quote(value: str) -> str:
    # Most values are plain ids; quoting only the rest keeps a value from forging a separator.
    return value if value.isascii() and value.isalnum() else quote(value, safe="")


def _check_key_text(literal: str, text: str) -> None:
    if "{" in literal or "}" in literal:
        raise ValueError(f'unbalanced braces in key "{text}"')
    if not _KEY_TEXT.match(literal):
        raise ValueError(f'key "{text}" may only use letters, digits and _ . : / - outside placeholders')


def _all_query(query: str) -> str:
    # Already sorted and escaped (proxy/canonical.py): ?a=1&b=2 and ?b=2&a=1 share one entry, no value can
    # forge a separator, and the key names exactly the query that goes upstream.
    return query


def _one_query(query: str, name: str) -> str:
    prefix = name + "="  # names in key templates are unreserved characters, the same escaped or not
    values = [part[len(prefix):] for part in query.split("&") if part.startswith(prefix)] if query else []
    # An absent parameter is not an empty one (?name=): a bare % never appears in an escaped value.
    return ",".join(values) if values else "%"


def _caller(caller: str | None) -> str:
    if caller is None:  # config validation forbids {caller} on auth: none routes; never key on "nobody"
        raise LookupError("a caller-scoped key needs a verified caller")
    return _quote(caller)


@dataclass(frozen=True, slots=True)
class Route:
    config: RouteConfig
    template: PathTemplate
    methods: frozenset[str]
    key: KeyRenderer | None
    invalidates: tuple[KeyRenderer | str, ...]  # "tag:NAME" stays a string; key templates are rendered
    key_query: frozenset[str] | None  # query parameters the key names; None when it takes them all ({query})

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

    def __init__(self, routes: Iterable[RouteConfig]) -> None:
        self.routes = tuple(compile_route(r) for r in routes)
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
            raise MethodNotAllowed(f"{method} is not allowed on {path}; allowed: {allow}", headers={"Allow": allow})
        raise NotFound(f"no route for {path}")


def compile_route(cfg: RouteConfig) -> Route:
    template = parse_path_template(cfg.path)
    key, key_query = None, frozenset()
    if cfg.key:
        key, used = compile_key_template(cfg.key, template.params)
        key_query = None if "query" in used else frozenset(u[6:] for u in used if u.startswith("query."))
    invalidates: list[KeyRenderer | str] = []
    for item in cfg.invalidates:
        invalidates.append(item if item.startswith("tag:") else compile_key_template(item, template.params)[0])
    return Route(cfg, template, frozenset(cfg.methods), key, tuple(invalidates), key_query)


def render_invalidations(route: Route, params: Mapping[str, str], query_string: str,
                         caller: str | None) -> tuple[str, ...]:
    return tuple(i if isinstance(i, str) else i(params, query_string, caller) for i in route.invalidates)


def describe(config: Config) -> str:
    """The compiled route table, as `cachegate check-config` prints it."""
    rows = [("#", "methods", "path", "upstream", "strategy", "auth", "key", "ttl", "tags / invalidates")]
    for r in config.routes:
        ttl = "" if r.strategy != "read-through" else f"{r.ttl if r.ttl is not None else config.cache.default_ttl:g}s"
        extra = " ".join([*(f"tag:{t}" for t in r.tags), *(f"drops {i}" for i in r.invalidates)])
        rows.append((str(r.index), ",".join(r.methods), r.path, r.upstream, r.strategy, r.auth,
                     (r.key or "") + (" (per caller)" if r.scope == "caller" else ""), ttl, extra))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    state = "on" if config.cache.enabled else "off"
    head = (f"{len(config.routes)} routes, cache {state}, default ttl {config.cache.default_ttl:g}s, "
            f"proxy {config.proxy.host}:{config.proxy.port}")
    return "\n".join([head, *lines])
