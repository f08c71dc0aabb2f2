"""The sections of config.yaml as frozen dataclasses; every field names its key and what a reload does to it.

A setting of the GENERATION is applied by a reload of a running proxy (a new generation is built with it);
a setting of the PROCESS is read when a process starts (a listener bound, a client connected, a secret
read, a rule shared with the services), so a reload that changes it is refused with its key named.
Derived fields are computed from other settings and are no key of their own.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cachegate.errors import ConfigError

GENERATION, PROCESS = "generation", "process"
MIN_ADMIN_TOKEN = 16  # characters; `cachegate up` makes 32
# The listen backlog of every service (backends/runner.py): each proxy process opens at most
# proxy.upstream_pool connections to one upstream, so proxy.workers x upstream_pool must fit in it (checked
# at load), and a burst of new upstream connections waits in the accept queue instead of losing SYNs.
LISTEN_BACKLOG = 1024
NO_ADMIN_TOKEN = ("proxy.admin.token_file: no admin token configured; every admin call needs one (set "
                  "proxy.admin.token_file, which `cachegate up` fills, or CACHEGATE_ADMIN_TOKEN)")


def setting(key: str, lifetime: str) -> Any:
    """A field read from `key` (dotted, from the top; relative for a service's own fields)."""
    return field(metadata={"key": key, "lifetime": lifetime})


def derived(**options: Any) -> Any:
    """A field computed from other settings, or a secret from the environment: no key of config.yaml."""
    return field(metadata={"derived": True}, **options)


@dataclass(frozen=True, slots=True)
class StackConfig:
    data_dir: Path = setting("stack.data_dir", PROCESS)


@dataclass(frozen=True, slots=True)
class ProxyConfig:
    host: str = setting("proxy.host", PROCESS)
    port: int = setting("proxy.port", PROCESS)
    workers: int = setting("proxy.workers", PROCESS)
    admin_host: str = setting("proxy.admin.host", PROCESS)
    admin_port: int = setting("proxy.admin.port", PROCESS)
    admin_token_file: Path | None = setting("proxy.admin.token_file", PROCESS)  # read as the listener starts
    max_body: int = setting("proxy.max_body", PROCESS)  # aiohttp's client_max_size is fixed per application
    upstream_connect_timeout: float = setting("proxy.upstream_connect_timeout", GENERATION)
    upstream_timeout: float = setting("proxy.upstream_timeout", GENERATION)
    access_log: bool = setting("proxy.access_log", GENERATION)
    readiness_interval: float = setting("proxy.readiness_interval", GENERATION)
    # The public listener's bounds (proxy/listener.py); a listener is bound once, at start.
    header_timeout: float = setting("proxy.header_timeout", PROCESS)
    body_timeout: float = setting("proxy.body_timeout", PROCESS)
    keepalive_timeout: float = setting("proxy.keepalive_timeout", PROCESS)
    max_connections: int = setting("proxy.max_connections", PROCESS)
    upstream_pool: int = setting("proxy.upstream_pool", PROCESS)  # the session's connector is made at start
    drain: float = setting("proxy.drain", PROCESS)
    admin_token_env: str | None = derived(default=None, repr=False)

    def admin_token(self) -> str:
        """The token every admin call must carry; the environment wins over the file (read on call)."""
        if self.admin_token_env:
            token, where = self.admin_token_env, "environment CACHEGATE_ADMIN_TOKEN"
        elif self.admin_token_file is not None:
            token = read_secret(self.admin_token_file, "proxy.admin.token_file")
            where = f"proxy.admin.token_file: {self.admin_token_file}"
        else:  # refused when the config was loaded; a config built by hand could still lack both
            raise ConfigError(NO_ADMIN_TOKEN)
        if len(token) < MIN_ADMIN_TOKEN:
            raise ConfigError(f"{where}: the admin token is too short ({len(token)} characters, "
                              f"at least {MIN_ADMIN_TOKEN})")
        return token


@dataclass(frozen=True, slots=True)
class RedisConfig:
    """The process's connection to Redis: its clients, their time-out and the breaker are made at start."""
    url: str = setting("redis.url", PROCESS)
    host: str = derived()  # from the URL, for the launcher
    port: int = derived()
    username: str | None = setting("redis.username", PROCESS)
    password_file: Path | None = setting("redis.password_file", PROCESS)
    timeout: float = setting("redis.timeout", PROCESS)
    breaker_failures: int = setting("redis.breaker.failures", PROCESS)
    breaker_reset: float = setting("redis.breaker.reset", PROCESS)
    # What the launcher's redis-server (and compose's) is started with; the gateway never reads them.
    maxmemory: int = setting("redis.maxmemory", PROCESS)
    maxmemory_policy: str = setting("redis.maxmemory_policy", PROCESS)
    # A Redis Cluster instead of the one server (none: `url`): every node (host, port), as the launcher
    # starts them and the gateway's cluster client finds the others from; `replicas` per master (the
    # launcher's create: nodes / (1 + replicas) masters), `node_timeout` (cluster-node-timeout).
    cluster_nodes: tuple[tuple[str, int], ...] = setting("redis.cluster.nodes", PROCESS)
    cluster_replicas: int = setting("redis.cluster.replicas", PROCESS)
    cluster_node_timeout: float = setting("redis.cluster.node_timeout", PROCESS)
    password_env: str | None = derived(default=None, repr=False)

    @property
    def cluster(self) -> bool:
        return bool(self.cluster_nodes)

    def password(self) -> str | None:
        """The environment wins over the file (read on call); None: Redis asks for no password."""
        if self.password_env:
            return self.password_env
        if self.password_file is None:
            return None  # a username without a password is refused when the config is loaded
        return read_secret(self.password_file, "redis.password_file")


@dataclass(frozen=True, slots=True)
class DatabaseNode:
    """One MariaDB server of `mariadb.nodes`: clients use host:port; Galera peers the other three ports
    (0 for a plain server, which has no peers)."""
    host: str
    port: int
    gcomm_port: int = 0
    ist_port: int = 0
    sst_port: int = 0

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True, slots=True)
class MariaDBConfig:
    """Read by the services (and the launcher, migrations, seeding) when they start.

    One node is a plain server; several are one Galera cluster, every node taking reads and writes. A
    service sends everything to the first node of the list that answers (`backends/common/nodes.py`)."""
    nodes: tuple[DatabaseNode, ...] = setting("mariadb.nodes", PROCESS)
    database: str = setting("mariadb.database", PROCESS)
    user: str = setting("mariadb.user", PROCESS)
    password_file: Path | None = setting("mariadb.password_file", PROCESS)
    pool_min: int = setting("mariadb.pool.min", PROCESS)
    pool_max: int = setting("mariadb.pool.max", PROCESS)
    connect_timeout: float = setting("mariadb.connect_timeout", PROCESS)
    query_timeout: float = setting("mariadb.query_timeout", PROCESS)  # one read, or one whole transaction
    sync_wait: int = setting("mariadb.sync_wait", PROCESS)  # a cluster's wsrep_sync_wait per session
    probe_interval: float = setting("mariadb.probe.interval", PROCESS)
    probe_timeout: float = setting("mariadb.probe.timeout", PROCESS)
    conflict_retries: int = setting("mariadb.conflict_retries", PROCESS)
    password_env: str | None = derived(default=None, repr=False)

    @property
    def host(self) -> str:
        """The first node's host: where tools that talk to one server (and a plain server) go."""
        return self.nodes[0].host

    @property
    def port(self) -> int:
        return self.nodes[0].port

    @property
    def cluster(self) -> bool:
        """Several nodes: a Galera cluster."""
        return len(self.nodes) > 1

    def password(self) -> str:
        """The environment wins over the file, so containers need no file at all."""
        if self.password_env is not None:
            return self.password_env
        if self.password_file is None:
            raise ConfigError("mariadb.password_file: no password given (set it or CACHEGATE_DB_PASSWORD)")
        return read_secret(self.password_file, "mariadb.password_file")


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """The one set of token rules (cachegate/tokens.py): the gateway and every service apply them alike, and
    the services read them only at start, so a reload of the proxy alone must not change them."""
    algorithm: str = setting("auth.algorithm", PROCESS)
    issuer: str = setting("auth.issuer", PROCESS)
    public_key: Path = setting("auth.public_key", PROCESS)
    private_key: Path = setting("auth.private_key", PROCESS)
    token_ttl: float = setting("auth.token_ttl", PROCESS)
    leeway: float = setting("auth.leeway", PROCESS)
    exchange_upstream: str = setting("auth.exchange_upstream", GENERATION)  # where Basic is traded for tokens
    exchange_path: str = setting("auth.exchange_path", GENERATION)

    def public_key_pem(self) -> str:
        return _read_key(self.public_key, "auth.public_key")

    def private_key_pem(self) -> str:
        return _read_key(self.private_key, "auth.private_key")


@dataclass(frozen=True, slots=True)
class CacheConfig:
    enabled: bool = setting("cache.enabled", GENERATION)
    # The Redis namespace: the revocation set and channel every process follows live under it too, and
    # entries of an earlier life of another namespace were never touched by the writes made meanwhile.
    prefix: str = setting("cache.prefix", PROCESS)
    default_ttl: float = setting("cache.default_ttl", GENERATION)
    negative_ttl: float = setting("cache.negative_ttl", GENERATION)
    jitter: float = setting("cache.jitter", GENERATION)
    grace: float = setting("cache.grace", GENERATION)
    tombstone_ttl: float = setting("cache.tombstone_ttl", GENERATION)
    fill_wait: float = setting("cache.fill_wait", GENERATION)
    write_fence: float = derived()  # proxy.upstream_timeout + 2 * redis.timeout + FENCE_MARGIN


@dataclass(frozen=True, slots=True)
class ServiceConfig:
    """Where one backend service listens, the largest request body it reads, whether it logs each request
    (services.<name>)."""
    host: str = setting("host", PROCESS)
    port: int = setting("port", PROCESS)
    max_body: int = setting("max_body", PROCESS)
    access_log: bool = setting("access_log", PROCESS)


@dataclass(frozen=True, slots=True)
class LoggingConfig:
    """How every process logs: its own log (stderr) at `level`, its access log in `access_format`, as
    `<access_dir>/<process>-access.log` (None: standard output). Files are opened at start and reopened
    on SIGUSR1."""
    level: str = setting("logging.level", PROCESS)
    access_format: str = setting("logging.access_format", PROCESS)
    access_dir: Path | None = setting("logging.access_dir", PROCESS)

    def access_file(self, process: str) -> Path | None:
        return None if self.access_dir is None else self.access_dir / f"{process}-access.log"


def read_secret(path: Path, where: str) -> str:
    try:
        secret = path.read_text().strip()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror}"
                          " (does `cachegate up` need to run first?)") from exc
    if not secret:
        raise ConfigError(f"{where}: {path} is empty")
    return secret


def _read_key(path: Path, where: str) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"{where}: cannot read {path}: {exc.strerror} "
                          "(does `cachegate up` need to run first?)") from exc
