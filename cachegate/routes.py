"""The `routes:` section of config.yaml: each rule checked on its own, then the table as a whole.

What a rule may say beyond its structure depends on its strategy, and the strategy itself says it: whoever
loads the config for the proxy hands the registry in (`strategies`), and each strategy class checks its
rules and resolves their lifetimes (RouteRules). Without a registry (services, launcher, load test) only
the structure is checked and lifetimes stay as written.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping, NoReturn, Protocol

from cachegate.errors import ConfigError
from cachegate.located import place_of
from cachegate.settings import CacheConfig
from cachegate.templates import compile_key_template, covers, parse_path_template
from cachegate.values import REQUIRED, Section

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
SAFE = frozenset({"GET", "HEAD"})
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# The options a rule may set beyond its structure; a strategy may forbid any of them.
OPTIONS = ("key", "ttl", "negative_ttl", "grace", "tags", "invalidates")
# An entry is kept in Redis for its ttl plus its grace: clients choose keys (every distinct search is an
# entry), so the grace may not make that more than twice the ttl. cache.grace is clamped to each rule's ttl;
# a rule's own grace above its ttl is refused.
MAX_GRACE_RATIO = 1.0


@dataclass(frozen=True, slots=True)
class RouteConfig:
    index: int
    methods: tuple[str, ...]
    path: str
    upstream: str
    strategy: str
    auth: str  # "required" | "none"
    key: str | None
    # Seconds; with a registry each rule that stores under its key has all three (its strategy's defaults
    # resolved once, at load), and a rule that stores nothing has None.
    ttl: float | None
    negative_ttl: float | None
    grace: float | None
    scope: str  # "shared" | "caller"
    tags: tuple[str, ...]
    invalidates: tuple[str, ...]
    name: str = field(init=False, compare=False)  # "GET|HEAD /users/{id:int}": the label of metrics and logs

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", f"{'|'.join(self.methods)} {self.path}")


Fail = Callable[[str, str], NoReturn]  # fail(reason, key of the rule): a ConfigError naming the place


class RouteRules(Protocol):
    """What config validation asks of a strategy class (strategies/base.py: Strategy answers it)."""
    name: str
    stores: bool  # stores entries under the rule's key (so the rule is a read rule when it serves GET)

    def check_route(self, route: RouteConfig, fail: Fail) -> None:
        """Refuse, through `fail`, what this strategy cannot do with the rule."""

    def lifetimes(self, route: RouteConfig, cache: CacheConfig, reader: RouteConfig | None) -> RouteConfig:
        """The rule with its ttl, negative_ttl and grace resolved; `reader` is the resolved read rule of the
        same key template, if there is one."""


def read_routes(data: Any, label: str, upstreams: Mapping[str, str], cache: CacheConfig,
                strategies: Mapping[str, RouteRules] | None = None, *,
                place: str | None = None) -> tuple[RouteConfig, ...]:
    """`place`: where the section is (config.yaml:63); each rule's errors start with the rule's own line."""
    if not isinstance(data, list) or not data:
        raise ConfigError(f"{place or label}: routes: expected a non-empty list of rules")
    places = [place_of(data, i) or place or label for i in range(len(data))]
    routes = tuple(_read_route(item, i, label, places[i], upstreams, strategies) for i, item in enumerate(data))
    _refuse_duplicates(routes, places)
    _refuse_shadowed(routes, places)
    _refuse_shared_caller_keys(routes, places)
    if strategies is None:
        return routes
    return _resolve_lifetimes(routes, cache, strategies, label)


def _read_route(item: Any, index: int, label: str, place: str, upstreams: Mapping[str, str],
                strategies: Mapping[str, RouteRules] | None) -> RouteConfig:
    s = Section(item, f"routes[{index}]", label, place)
    methods = s.value("methods", _methods, "a list of HTTP methods like [GET]", REQUIRED)
    path = s.string("path", REQUIRED)
    try:
        template = parse_path_template(path)
    except ValueError as exc:
        s.fail(str(exc), "path")
    upstream = s.string("upstream", REQUIRED)
    if upstream not in upstreams:
        s.fail(f'unknown upstream "{upstream}" (known: {", ".join(sorted(upstreams))})', "upstream")
    strategy = s.string("strategy", REQUIRED)
    rules = _rules_of(strategy, strategies, s) if strategies is not None else None
    route = RouteConfig(
        index=index, methods=methods, path=path, upstream=upstream, strategy=strategy,
        auth=s.choice("auth", ("required", "none"), "required"), key=s.string("key", None),
        ttl=s.duration("ttl", None), negative_ttl=s.duration("negative_ttl", None),
        grace=s.duration("grace", None), scope=s.choice("scope", ("shared", "caller"), "shared"),
        tags=s.names("tags"), invalidates=s.strings("invalidates"))
    s.done()
    _check_structure(route, s, template.params)
    if rules is not None:
        rules.check_route(route, s.fail)
    return route


def _rules_of(name: str, strategies: Mapping[str, RouteRules], s: Section) -> RouteRules:
    try:
        rules = strategies.get(name)
    except ConfigError as exc:  # a plugin that failed to load: said with the rule that asked for it
        s.fail(exc.message, "strategy")
    if rules is None:
        s.fail(f"unknown strategy {name!r}; known: {', '.join(sorted(strategies))}", "strategy")
    return rules


def _methods(v: Any) -> tuple[str, ...]:
    if not isinstance(v, list) or not v:
        raise ValueError
    out = []
    for m in v:
        if not isinstance(m, str) or m.upper() not in HTTP_METHODS or m.upper() in out:
            raise ValueError
        out.append(m.upper())
    return tuple(out)


def _check_structure(r: RouteConfig, s: Section, params: tuple[str, ...]) -> None:
    """Combinations that would make any rule unsafe or meaningless are refused, not guessed at."""
    if r.key is not None:
        try:
            used = compile_key_template(r.key, params)[1]
        except ValueError as exc:
            s.fail(str(exc), "key")
        if "caller" in used and r.scope != "caller":
            s.fail('{caller} in the key needs scope: caller', "key")
        if r.scope == "caller" and "caller" not in used:
            s.fail("scope: caller needs {caller} in the key, so one caller's entry is never served to "
                   "another", "key")
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
    if r.ttl is not None and r.ttl <= 0:
        s.fail("must be longer than 0s", "ttl")


def _resolve_lifetimes(routes: tuple[RouteConfig, ...], cache: CacheConfig,
                       strategies: Mapping[str, RouteRules], label: str) -> tuple[RouteConfig, ...]:
    """Once, at load: what each rule stores lives this long (a request never merges defaults again)."""
    readers: dict[str, RouteConfig] = {}
    for r in routes:
        rules = strategies[r.strategy]
        if r.key is not None and rules.stores and set(r.methods) <= SAFE:
            readers.setdefault(r.key, rules.lifetimes(r, cache, None))
    resolved = tuple(strategies[r.strategy].lifetimes(r, cache, readers.get(r.key or "")) for r in routes)
    for given, r in zip(routes, resolved):
        if given.grace is not None and r.ttl is not None and r.grace is not None \
                and r.grace > MAX_GRACE_RATIO * r.ttl:
            raise ConfigError(f"{label}: routes[{r.index}].grace: {r.grace:g}s exceeds the rule's ttl "
                              f"({r.ttl:g}s): an entry may be kept at most twice its ttl")
    return resolved


def default_lifetimes(route: RouteConfig, cache: CacheConfig) -> RouteConfig:
    """What a rule that stores under its key keeps, where it does not say: the cache section's defaults
    (its grace at most MAX_GRACE_RATIO x its ttl)."""
    ttl = route.ttl if route.ttl is not None else cache.default_ttl
    return replace(route, ttl=ttl,
                   negative_ttl=route.negative_ttl if route.negative_ttl is not None else cache.negative_ttl,
                   grace=route.grace if route.grace is not None else min(cache.grace, MAX_GRACE_RATIO * ttl))


def _refuse_duplicates(routes: tuple[RouteConfig, ...], places: list[str]) -> None:
    """Two rules with the same path template and a shared method: the second could never match."""
    seen: dict[tuple[str, str], int] = {}
    for r in routes:
        for m in r.methods:
            first = seen.setdefault((m, r.path), r.index)
            if first != r.index:
                raise ConfigError(f"{places[r.index]}: routes[{r.index}]: duplicates routes[{first}] "
                                  f"({m} {r.path}, {places[first]}); the second rule could never match")


def _refuse_shadowed(routes: tuple[RouteConfig, ...], places: list[str]) -> None:
    """A method of a rule that an earlier rule always takes first (the first match wins) is dead config: the
    author meant the later rule to serve something. `/users/{id}` before `/users/me` takes it (a str
    parameter matches `me`); `/users/{id:int}` does not. HEAD is routed as GET, so HEAD without GET is dead."""
    for later in routes:
        if "HEAD" in later.methods and "GET" not in later.methods:
            raise ConfigError(f"{places[later.index]}: routes[{later.index}].methods: HEAD without GET never "
                              "matches: a HEAD request is routed by the rule that takes GET; add GET")
        for earlier in routes[:later.index]:
            shared = [m for m in later.methods if m in earlier.methods and m != "HEAD"]
            if shared and covers(earlier.path, later.path):
                m = shared[0]
                raise ConfigError(
                    f"{places[later.index]}: routes[{later.index}] ({m} {later.path}) can never match: "
                    f"routes[{earlier.index}] ({m} {earlier.path}, {places[earlier.index]}) comes first and "
                    "matches every path it does; put the narrower rule first, or narrow the earlier one "
                    "(a typed parameter such as {id:int} matches only digits)")


def _refuse_shared_caller_keys(routes: tuple[RouteConfig, ...], places: list[str]) -> None:
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
                    f'{places[other.index]}: routes[{other.index}].key: "{other.key}" may name the entries of '
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
