"""The `routes:` section of config.yaml: each rule checked on its own, then the table as a whole."""
from __future__ import annotations

from dataclasses import replace
from typing import Any, Mapping

from proxy.config import HTTP_METHODS, CacheConfig, RouteConfig
from proxy.config_values import Section
from proxy.errors import ConfigError
from proxy.router import compile_key_template, parse_path_template

UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def read_routes(data: Any, label: str, upstreams: Mapping[str, str], cache: CacheConfig) -> tuple[RouteConfig, ...]:
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{label}: routes: expected a non-empty list of rules")
    routes = tuple(_read_route(item, i, label, upstreams) for i, item in enumerate(data))
    _refuse_duplicates(routes, label)
    _refuse_shared_caller_keys(routes, label)
    return tuple(_inherit_lifetime(r, routes) for r in routes)


def _inherit_lifetime(route: RouteConfig, routes: tuple[RouteConfig, ...]) -> RouteConfig:
    """A write rule stores the entity under the same key a read rule serves it from: unless it says
    otherwise, the entry it writes lives as long as one that read rule would have stored."""
    if route.strategy != "write-through" or route.key is None or route.ttl is not None:
        return route
    for reader in routes:
        if reader.strategy == "read-through" and reader.key == route.key:
            return replace(route, ttl=reader.ttl, grace=route.grace if route.grace is not None else reader.grace)
    return route


def _read_route(item: Any, index: int, label: str, upstreams: Mapping[str, str]) -> RouteConfig:
    s = Section(item, f"routes[{index}]", label)
    methods = s.value("methods", _methods, "a list of HTTP methods like [GET]", _required(s, "methods"))
    path = s.string("path", _required(s, "path"))
    try:
        template = parse_path_template(path)
    except ValueError as exc:
        s.fail(str(exc), "path")
    upstream = s.string("upstream", _required(s, "upstream"))
    if upstream not in upstreams:
        s.fail(f'unknown upstream "{upstream}" (known: {", ".join(sorted(upstreams))})', "upstream")
    strategy = s.string("strategy", _required(s, "strategy"))
    from strategies.base import get_strategy  # the registry lives with the strategies
    try:
        get_strategy(strategy)
    except ConfigError as exc:
        s.fail(exc.message, "strategy")
    route = RouteConfig(
        index=index, methods=methods, path=path, upstream=upstream, strategy=strategy,
        auth=s.choice("auth", ("required", "none"), "required"), key=s.string("key", None),
        ttl=s.duration("ttl", None), negative_ttl=s.duration("negative_ttl", None), grace=s.duration("grace", None),
        scope=s.choice("scope", ("shared", "caller"), "shared"), tags=s.names("tags"),
        invalidates=s.strings("invalidates"))
    s.done()
    _check_route(route, s, template.params)
    return route


def _required(s: Section, key: str) -> Any:
    if s.data.get(key) is None:
        s.fail("is required", key)
    return None


def _methods(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not v:
        raise ValueError
    out = []
    for m in v:
        if not isinstance(m, str) or m.upper() not in HTTP_METHODS or m.upper() in out:
            raise ValueError
        out.append(m.upper())
    return tuple(out)


def _check_route(r: RouteConfig, s: Section, params: tuple[str, ...]) -> None:
    """Combinations that would make a rule unsafe or meaningless are refused, not guessed at."""
    if r.key is not None:
        try:
            used = compile_key_template(r.key, params)[1]
        except ValueError as exc:
            s.fail(str(exc), "key")
        if "caller" in used and r.scope != "caller":
            s.fail('{caller} in the key needs scope: caller', "key")
        if r.scope == "caller" and "caller" not in used:
            s.fail("scope: caller needs {caller} in the key, so one caller's entry is never served to another", "key")
    for i, item in enumerate(r.invalidates):
        if item.startswith("tag:"):
            if not item[4:] or not item[4:].replace("-", "").replace("_", "").replace(".", "").isalnum():
                s.fail(f'expected "tag:NAME", got "{item}"', f"invalidates[{i}]")
            continue
        try:
            compile_key_template(item, params)
        except ValueError as exc:
            s.fail(str(exc), f"invalidates[{i}]")
    if r.scope == "caller" and r.auth == "none":
        s.fail("scope: caller needs an authenticated route (auth: required)", "scope")
    if r.strategy == "read-through":
        if set(r.methods) - {"GET", "HEAD"}:
            s.fail(f"read-through serves only GET and HEAD, got {', '.join(r.methods)}", "methods")
        if r.key is None:
            s.fail("read-through needs a key template", "key")
        if r.invalidates:
            s.fail("a read-through rule invalidates nothing; put invalidates on the write rule", "invalidates")
    elif r.strategy == "write-through":
        if not set(r.methods) <= UNSAFE:
            s.fail(f"write-through takes unsafe methods (POST, PUT, PATCH, DELETE), got {', '.join(r.methods)}",
                   "methods")
    elif r.strategy == "passthrough":
        for name in ("key", "ttl", "negative_ttl", "grace", "tags", "invalidates"):
            if getattr(r, name):
                s.fail("passthrough stores and drops nothing; remove it", name)
    if r.strategy == "write-through":
        for name in ("negative_ttl", "tags"):
            if getattr(r, name):
                s.fail(f"only read-through rules store entries with {name}", name)
        for name in ("ttl", "grace"):
            if getattr(r, name) is not None and r.key is None:
                s.fail(f"{name} is the lifetime of the entry stored under key; this rule has no key", name)
    if r.ttl is not None and r.ttl <= 0:
        s.fail("must be longer than 0s", "ttl")


def _refuse_duplicates(routes: tuple[RouteConfig, ...], label: str) -> None:
    """Two rules with the same path template and a shared method: the second could never match."""
    seen: dict[tuple[str, str], int] = {}
    for r in routes:
        for m in r.methods:
            first = seen.setdefault((m, r.path), r.index)
            if first != r.index:
                raise ConfigError(f"{label}: routes[{r.index}]: duplicates routes[{first}] ({m} {r.path}); "
                                  "the second rule could never match")


def _refuse_shared_caller_keys(routes: tuple[RouteConfig, ...], label: str) -> None:
    """A caller-scoped entry holds one caller's own view. Any other rule that may name the same keys must be
    caller-scoped with the very same template: a shared rule would serve that view to everyone (or store
    everyone's view where one caller reads it), and a write rule keyed by a path parameter would store what
    one caller's write returned under another caller's key."""
    for mine in routes:
        if mine.scope != "caller" or mine.key is None:
            continue
        for other in routes:
            if other is mine or other.key is None or not _may_render_alike(mine.key, other.key):
                continue
            if other.scope != "caller" or other.key != mine.key:
                raise ConfigError(
                    f'{label}: routes[{other.index}].key: "{other.key}" may name the entries of '
                    f'routes[{mine.index}] ("{mine.key}", scope: caller); give it scope: caller and the same '
                    'key, or a key of its own')


def _may_render_alike(a: str, b: str) -> bool:
    """Could two key templates render the same key? Unless their fixed text before the first placeholder
    already differs, assume they could."""
    head_a, head_b = a.split("{", 1)[0], b.split("{", 1)[0]
    if "{" not in a and "{" not in b:
        return a == b
    if "{" not in a:
        return a.startswith(head_b)
    if "{" not in b:
        return b.startswith(head_a)
    return head_a.startswith(head_b) or head_b.startswith(head_a)
