"""config.yaml, loaded once into frozen dataclasses; every error names its place and the reason.

`load_config` reads the whole stack's file (or a mapping, for tests) with the environment's overrides.
The proxy and `cachegate check-config` hand it the strategy registry, so that every rule is checked as
the proxy will serve it; the services, the launcher and the load test read the same file without one.
`settings(config)` lists every setting by its key with its lifetime (cachegate/settings.py), which is
what a reload checks.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, fields
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping, NamedTuple
from urllib.parse import urlsplit

import yaml

from cachegate.errors import ConfigError
from cachegate.invalidations import InvalidationRule, InvalidatorConfig, read_invalidations, read_invalidator
from cachegate.located import Located, load_located, located_copy, place_of
from cachegate.routes import RouteConfig, RouteRules, read_routes
from cachegate.logfiles import FORMATS, LEVELS
from cachegate.settings import (GENERATION, LISTEN_BACKLOG, NO_ADMIN_TOKEN, PROCESS, AuthConfig,
                                CacheConfig, DatabaseNode, LoggingConfig, MariaDBConfig, ProxyConfig,
                                RedisConfig, ServiceConfig, StackConfig)
from cachegate.values import REQUIRED, Section, parse_percent

ENV_PREFIX = "CACHEGATE__"
# A write fence must outlast its write: the fence call, the upstream call, the call that settles it (two
# Redis calls), and a second for a busy loop. write_fence = proxy.upstream_timeout + 2 * redis.timeout + 1s.
FENCE_MARGIN = 1.0
SERVICE_MAX_BODY = 1024**2
# Eviction policies the gateway's keys are safe under. The keys that must never go (the epoch, tag
# generations, indexes and writers, the revoked tokens) have no TTL, so a volatile-* policy never takes
# them; of those, LRU and LFU evict the entries nobody reads before the markers just written (fences,
# tombstones), and a fill whose marker went anyway is refused (proxy/lua/fill.lua). docs/architecture.md,
# "Redis memory".
EVICTION_POLICIES = ("volatile-lru", "volatile-lfu", "noeviction")
_POLICY_REFUSED = {
    "allkeys-lru": "could evict the epoch key, tag generations or revoked tokens",
    "allkeys-lfu": "could evict the epoch key, tag generations or revoked tokens",
    "allkeys-random": "could evict the epoch key, tag generations or revoked tokens",
    "volatile-ttl": "evicts the shortest-lived keys first: the write fences and tombstones",
    "volatile-random": "evicts write fences and tombstones as readily as idle entries",
}
# A cluster node given as host:port listens for its Galera peers on its port plus these.
GALERA_PORT_OFFSETS = {"gcomm": 10000, "ist": 20000, "sst": 30000}
STDOUT = "stdout"  # logging.access_dir: access lines to standard output (containers)


@dataclass(frozen=True, slots=True)
class Config:
    path: Path | None
    base_dir: Path
    stack: StackConfig
    proxy: ProxyConfig
    redis: RedisConfig
    mariadb: MariaDBConfig
    auth: AuthConfig
    cache: CacheConfig
    logging: LoggingConfig
    services: Mapping[str, ServiceConfig]
    upstreams: Mapping[str, str]  # name -> base URL
    routes: tuple[RouteConfig, ...]
    invalidator: InvalidatorConfig | None = None  # None only in a Config built by hand
    invalidations: tuple[InvalidationRule, ...] = ()
    # True when loaded with the strategy registry: each rule checked by its strategy, lifetimes resolved.
    strategies_checked: bool = False


class Setting(NamedTuple):
    key: str
    lifetime: str  # settings.GENERATION or settings.PROCESS
    value: Any


def settings(config: Config) -> Iterator[Setting]:
    """Every setting of `config` by its key (a service's and an upstream's under their names)."""
    for section in (config.stack, config.proxy, config.redis, config.mariadb, config.auth, config.cache,
                    config.logging, config.invalidator):
        if section is not None:
            yield from _declared(section, "")
    for name, service in config.services.items():
        yield from _declared(service, f"services.{name}.")
    for name, url in config.upstreams.items():
        yield Setting(f"upstreams.{name}", GENERATION, url)
    yield Setting("routes", GENERATION, config.routes)
    # The invalidator reads its rules at start; the gateway only which routes they cover, at start too.
    yield Setting("invalidations", PROCESS, config.invalidations)


def _declared(section: Any, prefix: str) -> Iterator[Setting]:
    for f in fields(section):
        if "key" in f.metadata:
            yield Setting(prefix + f.metadata["key"], f.metadata["lifetime"], getattr(section, f.name))
        elif not f.metadata.get("derived"):  # every field says what it is: a new key must say its lifetime
            raise TypeError(f"{type(section).__name__}.{f.name} declares neither a key nor derived()")


def changed_settings(before: Config, after: Config) -> list[tuple[Setting, Setting]]:
    """(before, after) of each setting that differs; a setting only one of them has is None in the other
    (a service or upstream added or removed)."""
    old = {s.key: s for s in settings(before)}
    new = {s.key: s for s in settings(after)}
    out = []
    for key in [*old, *(k for k in new if k not in old)]:
        a, b = old.get(key), new.get(key)
        if a is None or b is None or a.value != b.value:
            lifetime = (a or b).lifetime  # type: ignore[union-attr]
            out.append((a or Setting(key, lifetime, None), b or Setting(key, lifetime, None)))
    return out


def default_path(env: Mapping[str, str] = os.environ) -> Path:
    return Path(env.get("CACHEGATE_CONFIG", "config.yaml"))


def load_config(source: str | os.PathLike[str] | Mapping[str, Any] | None = None, *,
                env: Mapping[str, str] = os.environ, base_dir: str | os.PathLike[str] | None = None,
                strategies: Mapping[str, RouteRules] | None = None) -> Config:
    """Load from a file (default: $CACHEGATE_CONFIG or ./config.yaml) or from a mapping (tests).

    With `strategies` (the registry of strategies/registry.py) each rule is also checked by its
    strategy and its lifetimes are resolved; without, the routes are checked for structure only."""
    if isinstance(source, Mapping):
        data, path, label = located_copy(source), None, "<config>"
        root = Path(base_dir) if base_dir is not None else Path.cwd()
    else:
        path = Path(source) if source is not None else default_path(env)
        label = path.name
        data = _read_yaml(path, label)
        root = Path(base_dir) if base_dir is not None else path.resolve().parent
    _apply_env(data, env, label)
    return _Builder(data, label, root.resolve(), path, env, strategies).build()


def _read_yaml(path: Path, label: str) -> dict[str, Any]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read {path}: {exc.strerror}") from exc
    try:
        data = load_located(text, label)  # every node with its line; a key given twice is refused
        if isinstance(data, Located):
            data.place = label  # a section missing from the file is missing from all of it, not from line 1
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{label}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping of sections at the top, got {type(data).__name__}")
    return data


def _apply_env(data: dict[str, Any], env: Mapping[str, str], label: str) -> None:
    """CACHEGATE__REDIS__URL=... sets redis.url; the value is read as a YAML scalar (so `false`, `8`).

    Each value set so remembers its variable: an error about it names the variable, not the file."""
    for name, raw in sorted(env.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        origin = f"environment {name}"
        parts = [p.lower() for p in name[len(ENV_PREFIX):].split("__")]
        if not all(parts):
            raise ConfigError(f"{origin}: empty key part (expected CACHEGATE__SECTION__KEY)")
        node = data
        for depth, part in enumerate(parts[:-1]):
            if part not in node:
                _put(node, part, Located(place=origin), origin)
            node = node[part]
            if not isinstance(node, dict):
                where = ".".join(parts[:depth + 1])
                raise ConfigError(f"{origin}: {where} is not a section ({place_of(data, parts[0]) or label})")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        _put(node, parts[-1], value, origin)
    switch = env.get("CACHEGATE_CACHE")
    if switch is not None:
        if switch.lower() not in ("on", "off", "true", "false", "1", "0"):
            raise ConfigError(f"environment CACHEGATE_CACHE: expected on or off, got {switch!r}")
        if "cache" not in data:
            _put(data, "cache", Located(place="environment CACHEGATE_CACHE"), "environment CACHEGATE_CACHE")
        if isinstance(data["cache"], dict):
            _put(data["cache"], "enabled", switch.lower() in ("on", "true", "1"),
                 "environment CACHEGATE_CACHE")


def _put(node: dict[str, Any], key: str, value: Any, origin: str) -> None:
    node[key] = value
    if isinstance(node, Located):
        node.places[key] = origin


class _Builder:
    def __init__(self, data: dict[str, Any], label: str, root: Path, path: Path | None,
                 env: Mapping[str, str], strategies: Mapping[str, RouteRules] | None) -> None:
        self.top = Section(data, "", label, label)
        self.label, self.root, self.path, self.env = label, root, path, env
        self.strategies = strategies

    def build(self) -> Config:
        top = self.top
        stack = self._stack(top.section("stack"))
        proxy = self._proxy(top.section("proxy"))
        redis = self._redis(top.section("redis"))
        mariadb = self._mariadb(top.section("mariadb"))
        auth_section = top.section("auth")
        auth = self._auth(auth_section)
        cache = self._cache(top.section("cache"), proxy, redis)
        logs = self._logging(top.section("logging"), stack)
        services = self._services(top.section("services"))
        upstreams = self._upstreams(top.section("upstreams"))
        if auth.exchange_upstream not in upstreams:
            auth_section.fail(f'unknown upstream "{auth.exchange_upstream}" '
                              f'(known: {", ".join(sorted(upstreams))})', "exchange_upstream")
        top.used.add("routes")  # the largest section has a reader of its own
        routes = read_routes(top.data.get("routes"), self.label, upstreams, cache, self.strategies,
                             place=top.origin("routes"))
        invalidator_section = top.section("invalidator")
        invalidator = read_invalidator(invalidator_section, self.root, self.env)
        listeners = ((proxy.host, proxy.port), (proxy.admin_host, proxy.admin_port))
        if any(invalidator.port == port and _may_share(invalidator.host, host) for host, port in listeners):
            invalidator_section.fail(f"must differ from the proxy's ports, got {invalidator.port}", "port")
        top.used.add("invalidations")
        invalidations = read_invalidations(top.data.get("invalidations"), self.label, routes,
                                           enabled=invalidator.enabled, place=top.origin("invalidations"))
        top.done()
        return Config(path=self.path, base_dir=self.root, stack=stack, proxy=proxy, redis=redis,
                      mariadb=mariadb, auth=auth, cache=cache, logging=logs,
                      services=MappingProxyType(services),
                      upstreams=MappingProxyType(upstreams), routes=routes, invalidator=invalidator,
                      invalidations=invalidations,
                      strategies_checked=self.strategies is not None)

    def _stack(self, s: Section) -> StackConfig:
        cfg = StackConfig(data_dir=s.path("data_dir", self.root, ".stack"))
        s.done()
        return cfg

    def _proxy(self, s: Section) -> ProxyConfig:
        admin = s.section("admin")
        cfg = ProxyConfig(
            host=s.string("host", "127.0.0.1"), port=s.port("port", 8888),
            workers=s.integer("workers", 1, low=1, high=64),
            admin_host=admin.string("host", "127.0.0.1"), admin_port=admin.port("port", 8889),
            admin_token_file=admin.path("token_file", self.root, None),
            max_body=s.size("max_body", 1024**2),
            upstream_connect_timeout=s.duration("upstream_connect_timeout", 1.0),
            upstream_timeout=s.duration("upstream_timeout", 5.0),
            access_log=s.boolean("access_log", True),
            readiness_interval=s.duration("readiness_interval", 1.0),
            header_timeout=s.duration("header_timeout", 5.0), body_timeout=s.duration("body_timeout", 30.0),
            keepalive_timeout=s.duration("keepalive_timeout", 75.0),
            max_connections=s.integer("max_connections", 4096, low=16, high=1_000_000),
            upstream_pool=s.integer("upstream_pool", 64, low=1, high=LISTEN_BACKLOG),
            drain=s.duration("drain", 2.0),
            admin_token_env=self.env.get("CACHEGATE_ADMIN_TOKEN") or None)
        # Every process reads this file, so `check-config` refuses what the proxy would refuse at start:
        # a token is required wherever the admin listener binds (only its file is read later, at start).
        if cfg.admin_token_file is None and cfg.admin_token_env is None:
            raise ConfigError(f"{admin.origin('token_file')}: {NO_ADMIN_TOKEN}")
        if cfg.admin_token_env is not None:
            cfg.admin_token()  # too short a token from the environment is refused now, naming the variable
        for key in ("readiness_interval", "header_timeout", "body_timeout", "keepalive_timeout"):
            if getattr(cfg, key) < 0.1:
                s.fail(f"expected at least 100ms, got {getattr(cfg, key):g}s", key)
        if cfg.workers * cfg.upstream_pool > LISTEN_BACKLOG:
            # Every worker may open its whole pool to a service at once: the service's accept queue must
            # hold them all, or the kernel drops SYNs and the connects time out (504s on a cold cache).
            s.fail(f"{cfg.upstream_pool} connections x {cfg.workers} workers exceed the services' listen "
                   f"backlog ({LISTEN_BACKLOG}); lower upstream_pool", "upstream_pool")
        if cfg.admin_port == cfg.port and _may_share(cfg.admin_host, cfg.host):
            admin.fail(f"must differ from proxy.port ({cfg.port}): the API and the admin listener cannot "
                       "share one address", "port")
        admin.done()
        s.done()
        return cfg

    def _redis(self, s: Section) -> RedisConfig:
        cluster = s.section("cluster")
        nodes = _redis_nodes(cluster)
        replicas = cluster.integer("replicas", 1, low=0, high=5)
        node_timeout = cluster.duration("node_timeout", 1.0)
        if nodes and (len(nodes) % (1 + replicas) or len(nodes) // (1 + replicas) < 3):
            cluster.fail(f"{len(nodes)} nodes with {replicas} replica(s) per master: a Redis Cluster needs "
                         f"at least 3 masters, each with the same number of replicas", "nodes")
        cluster.done()
        if nodes and s.data.get("url") is None:
            s.used.add("url")
            url = f"redis://{nodes[0][0]}:{nodes[0][1]}/0"
        else:
            url = s.string("url", REQUIRED)
        parts = urlsplit(url)
        if parts.username or parts.password:  # the message must not repeat the URL: it holds a password
            s.fail("must not hold credentials; set redis.username and redis.password_file "
                   "(or CACHEGATE_REDIS_PASSWORD) instead", "url")
        if parts.scheme not in ("redis", "rediss", "unix"):
            s.fail(f'expected a redis:// URL, got "{url}"', "url")
        try:
            port = parts.port or 6379
            if parts.scheme != "unix":
                int(parts.path.lstrip("/") or 0)  # the database number: its client reads it from the URL
        except ValueError:
            s.fail(f'expected redis://host:port/db, got "{url}"', "url")
        breaker = s.section("breaker")
        cfg = RedisConfig(url=url, host=parts.hostname or "127.0.0.1", port=port,
                          username=s.string("username", None),
                          password_file=s.path("password_file", self.root, None),
                          timeout=s.duration("timeout", 0.05),
                          breaker_failures=breaker.integer("failures", 5, low=1, high=1000),
                          breaker_reset=breaker.duration("reset", 2.0),
                          maxmemory=s.size("maxmemory", 256 * 1024**2),
                          maxmemory_policy=s.string("maxmemory_policy", "volatile-lru"),
                          cluster_nodes=nodes, cluster_replicas=replicas, cluster_node_timeout=node_timeout,
                          password_env=self.env.get("CACHEGATE_REDIS_PASSWORD") or None)
        if nodes and (parts.scheme != "redis" or int(parts.path.lstrip("/") or 0) != 0):
            s.fail("a Redis Cluster has database 0 only, over redis://; leave url out with cluster nodes",
                   "url")
        if cfg.username is not None and cfg.password_file is None and cfg.password_env is None:
            s.fail(f"{cfg.username} needs a password (set redis.password_file or CACHEGATE_REDIS_PASSWORD)",
                   "username")
        if cfg.maxmemory < 1024**2:
            s.fail(f"expected at least 1MiB, got {cfg.maxmemory} bytes", "maxmemory")
        if cfg.maxmemory_policy in _POLICY_REFUSED:
            s.fail(f"{cfg.maxmemory_policy} {_POLICY_REFUSED[cfg.maxmemory_policy]}; use one of "
                   f"{', '.join(EVICTION_POLICIES)}", "maxmemory_policy")
        if cfg.maxmemory_policy not in EVICTION_POLICIES:
            s.fail(f'unknown policy "{cfg.maxmemory_policy}"; use one of {", ".join(EVICTION_POLICIES)}',
                   "maxmemory_policy")
        breaker.done()
        s.done()
        return cfg

    def _mariadb(self, s: Section) -> MariaDBConfig:
        pool, probe = s.section("pool"), s.section("probe")
        cfg = MariaDBConfig(
            nodes=_database_nodes(s),
            database=s.string("database", REQUIRED), user=s.string("user", REQUIRED),
            password_file=s.path("password_file", self.root, None),
            pool_min=pool.integer("min", 1, low=0, high=1000),
            pool_max=pool.integer("max", 32, low=1, high=1000),
            connect_timeout=s.duration("connect_timeout", 2.0),
            query_timeout=s.duration("query_timeout", 4.0),
            sync_wait=s.integer("sync_wait", 1, low=0, high=15),
            probe_interval=probe.duration("interval", 0.5), probe_timeout=probe.duration("timeout", 1.0),
            conflict_retries=s.integer("conflict_retries", 3, low=0, high=20),
            password_env=self.env.get("CACHEGATE_DB_PASSWORD"))
        if cfg.pool_min > cfg.pool_max:
            pool.fail(f"must not exceed max ({cfg.pool_max}), got {cfg.pool_min}", "min")
        for where, value in (("query_timeout", cfg.query_timeout), ("connect_timeout", cfg.connect_timeout)):
            if value < 0.1:
                s.fail(f"expected at least 100ms, got {value:g}s", where)
        if cfg.probe_interval < 0.05:
            probe.fail(f"expected at least 50ms, got {cfg.probe_interval:g}s", "interval")
        if not 0.05 <= cfg.probe_timeout <= cfg.query_timeout:
            probe.fail(f"expected 50ms to query_timeout ({cfg.query_timeout:g}s), got {cfg.probe_timeout:g}s",
                       "timeout")
        pool.done()
        probe.done()
        s.done()
        return cfg

    def _auth(self, s: Section) -> AuthConfig:
        cfg = AuthConfig(
            algorithm=s.choice("algorithm", ("ES256", "ES384", "RS256", "RS512", "EdDSA"), "ES256"),
            issuer=s.string("issuer", "cachegate"),
            public_key=s.path("public_key", self.root, REQUIRED),
            private_key=s.path("private_key", self.root, REQUIRED),
            token_ttl=s.duration("token_ttl", 900.0), leeway=s.duration("leeway", 10.0),
            exchange_upstream=s.string("exchange_upstream", "users"),
            exchange_path=s.string("exchange_path", "/auth/token"))
        if cfg.token_ttl < 60:
            s.fail(f"expected at least 60s, got {cfg.token_ttl:g}s", "token_ttl")
        s.done()
        return cfg

    def _cache(self, s: Section, proxy: ProxyConfig, redis: RedisConfig) -> CacheConfig:
        cfg = CacheConfig(
            enabled=s.boolean("enabled", True), prefix=s.value("prefix", _as_prefix, "a short name", "cg"),
            default_ttl=s.duration("default_ttl", 60.0), negative_ttl=s.duration("negative_ttl", 10.0),
            jitter=s.value("jitter", parse_percent, "a fraction like 10%", 0.1),
            grace=s.duration("grace", 300.0), tombstone_ttl=s.duration("tombstone_ttl", 30.0),
            fill_wait=s.duration("fill_wait", 2.0),
            write_fence=proxy.upstream_timeout + 2 * redis.timeout + FENCE_MARGIN)
        if cfg.default_ttl <= 0:
            s.fail("must be longer than 0s", "default_ttl")
        s.done()
        return cfg

    def _logging(self, s: Section, stack: StackConfig) -> LoggingConfig:
        where = s.string("access_dir", str(stack.data_dir / "logs"))
        cfg = LoggingConfig(level=s.choice("level", tuple(LEVELS), "info"),
                            access_format=s.choice("access_format", FORMATS, "text"),
                            access_dir=None if where == STDOUT else s.path("access_dir", self.root, where))
        s.done()
        return cfg

    def _services(self, s: Section) -> dict[str, ServiceConfig]:
        out = {}
        for name in list(s.data):
            sub = s.section(str(name))
            out[str(name)] = ServiceConfig(host=sub.string("host", "127.0.0.1"),
                                           port=sub.port("port", REQUIRED),
                                           max_body=sub.size("max_body", SERVICE_MAX_BODY),
                                           access_log=sub.boolean("access_log", True))
            sub.done()
        return out

    def _upstreams(self, s: Section) -> dict[str, str]:
        out = {}
        for name in list(s.data):
            url = s.string(str(name), REQUIRED)
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname or parts.path not in ("", "/"):
                s.fail(f'expected a base URL like http://127.0.0.1:8081, got "{url}"', str(name))
            out[str(name)] = url.rstrip("/")
        if not out:
            s.fail("expected at least one upstream")
        return out


def _database_nodes(s: Section) -> tuple[DatabaseNode, ...]:
    """`mariadb.nodes`: a list of host:port (or of mappings with the Galera ports too); `host` and `port`
    alone are the shorthand for one node. A cluster node's Galera ports default to its port plus the
    offsets of `galera_ports`."""
    raw = s.data.get("nodes")
    s.used.add("nodes")
    host, port = s.string("host", None), s.port("port", None)
    offsets = s.section("galera_ports")
    derive = {role: offsets.integer(role, default, low=1, high=60000)
              for role, default in GALERA_PORT_OFFSETS.items()}
    offsets.done()
    if raw is None:
        return (DatabaseNode(host or "127.0.0.1", port or 3306),)
    if host is not None or port is not None:
        s.fail("give the database as nodes or as host and port, not both", "host" if host else "port")
    if isinstance(raw, str):  # an environment override: CACHEGATE__MARIADB__NODES=a:3306,b:3306
        raw = [part.strip() for part in raw.split(",")]
    if not isinstance(raw, list) or not raw:
        s.fail("expected a list of host:port, e.g. [127.0.0.1:3316]", "nodes")
    cluster = len(raw) > 1
    nodes = [_database_node(s, f"nodes[{i}]", entry, derive if cluster else None)
             for i, entry in enumerate(raw)]
    taken: dict[tuple[str, int], str] = {}
    for i, node in enumerate(nodes):
        roles = (("port", node.port), ("gcomm_port", node.gcomm_port), ("ist_port", node.ist_port),
                 ("sst_port", node.sst_port))
        for role, number in roles if cluster else roles[:1]:
            place = f"nodes[{i}].{role}"
            other = taken.setdefault((node.host, number), place)
            if other != place:
                s.fail(f"{node.host}:{number} is also {other}; every node needs ports of its own", place)
    return tuple(nodes)


def _database_node(s: Section, where: str, entry: Any, derive: Mapping[str, int] | None) -> DatabaseNode:
    if isinstance(entry, str):
        host, _, number = entry.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not host or not number.isdigit() or not 1 <= int(number) <= 65535:
            s.fail(f'expected host:port, got "{entry}"', where)
        entry = {"host": host, "port": int(number)}
    if not isinstance(entry, dict):
        s.fail("expected host:port or a mapping {host, port, gcomm_port, ist_port, sst_port}", where)
    node = Section(entry, f"{s.where}.{where}", s.label)
    host, port = node.string("host", "127.0.0.1"), node.port("port", REQUIRED)
    ports: dict[str, int] = {}
    for role in GALERA_PORT_OFFSETS:
        given = node.port(f"{role}_port", None)
        if given is None and derive is not None:
            given = port + derive[role]
            if given > 65535:
                node.fail(f"{role} port {port} + galera_ports.{role} ({derive[role]}) is past 65535; "
                          f"give {role}_port", f"{role}_port")
        ports[role] = given or 0
    node.done()
    return DatabaseNode(host, port, ports["gcomm"], ports["ist"], ports["sst"])


def _redis_nodes(s: Section) -> tuple[tuple[str, int], ...]:
    """`redis.cluster.nodes`: host:port of every node of the Redis Cluster, each on ports of its own."""
    raw = s.data.get("nodes")
    s.used.add("nodes")
    if raw is None:
        return ()
    if isinstance(raw, str):  # an environment override: CACHEGATE__REDIS__CLUSTER__NODES=a:7001,a:7002,...
        raw = [part.strip() for part in raw.split(",")]
    if isinstance(raw, str) and not raw:
        return ()
    if not isinstance(raw, list):
        s.fail("expected a list of host:port, e.g. [127.0.0.1:7001, 127.0.0.1:7002, ...]", "nodes")
    found: list[tuple[str, int]] = []
    for i, entry in enumerate(raw):
        host, _, number = str(entry).rpartition(":")
        if not isinstance(entry, str) or not host or not number.isdigit() or not 1 <= int(number) <= 65535:
            s.fail(f"expected host:port, got {entry!r}", f"nodes[{i}]")
        node = (host, int(number))
        if node in found:
            s.fail(f"{entry} is given twice; every node needs a port of its own", f"nodes[{i}]")
        found.append(node)
    return tuple(found)


def _as_prefix(v: Any) -> str:
    if not isinstance(v, str) or not re.fullmatch(r"[A-Za-z0-9_.-]{1,32}", v):
        raise ValueError
    return v


def _may_share(a: str, b: str) -> bool:
    """Could listeners on hosts a and b collide on one port? Yes on the same host or on every interface."""
    anywhere = ("0.0.0.0", "::", "")
    return a == b or a in anywhere or b in anywhere
