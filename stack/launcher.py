"""`cachegate up/down/status`: the whole stack as plain processes, tracked by pid files in stack.data_dir."""
from __future__ import annotations

import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

import pymysql

from backends.migrate import migrate
from backends.seed import credentials_path, seed
from cachegate.config import Config
from cachegate.errors import ConfigError
from stack.database import DatabaseUnit, NodeRow
from stack.keys import ensure_jwt_keys, ensure_secret
from stack.managed import ManagedProcess
from stack.net import http_ok, loopback, port_open
from stack.process import StackError
from stack.redis import RedisServer
from stack.redis_acl import RedisUsers

Say = Callable[[str], None]
DEFAULT_SEED_USERS = 1000
# What the launcher runs, by module: the same code the `cachegate backend` and `cachegate proxy` commands run.
SERVICE_MODULE, PROXY_MODULE = "backends.runner", "proxy"


class Unit(Protocol):
    pid: int | None
    port: int

    def start(self) -> bool: ...
    def stop(self) -> None: ...
    def is_running(self) -> bool: ...


@dataclass(frozen=True)
class Row:
    name: str
    pid: int | None
    host: str
    port: int

    @property
    def up(self) -> bool:
        return self.pid is not None

    def __str__(self) -> str:
        state = "up" if self.up else "down"
        return f"{self.name:<8} pid {self.pid or '-':>7}  {self.host}:{self.port:<5}  {state}"


def _dirs(config: Config) -> tuple[Path, Path, Path]:
    data = config.stack.data_dir
    return data, data / "logs", data / "run"


def redis_admin_password_file(config: Config) -> Path:
    """The Redis admin's password: the launcher's own (PING, SHUTDOWN), never given to the gateway."""
    return config.stack.data_dir / "secrets" / "redis-admin-password"


def redis_users(config: Config) -> RedisUsers:
    """The users of the launcher's Redis: the gateway's (redis.username) and the admin; else StackError."""
    if config.redis.username is None:
        raise StackError("redis.username: the launcher's Redis gives the gateway a user of its own; set it")
    try:
        password = config.redis.password()
        admin = redis_admin_password_file(config).read_text().strip()
    except OSError as exc:
        raise StackError(f"redis: cannot read {exc.filename}: {exc.strerror} (`cachegate up` makes it)") \
            from None
    except ConfigError as exc:
        raise StackError(exc.message) from None
    try:
        return RedisUsers(config.redis.username, password or "", admin)
    except ValueError as exc:
        raise StackError(f"redis: {exc}") from None


def redis_server(config: Config) -> RedisServer:
    data, logs, run = _dirs(config)
    try:
        users: RedisUsers | None = redis_users(config)
    except StackError:
        users = None  # not made yet: status and down need none, and start() says it cannot
    return RedisServer(data / "redis", config.redis.host, config.redis.port, users=users,
                       pid_path=run / "redis.pid", log_path=logs / "redis.log")


def mariadb_server(config: Config) -> DatabaseUnit:
    """The database: a plain server for one node of mariadb.nodes, a Galera cluster for several."""
    return DatabaseUnit(config)


def _config_file(config: Config) -> str:
    if config.path is None:
        raise StackError("the launcher needs a config loaded from a file (its processes read it again)")
    return str(config.path)


def service_process(config: Config, name: str) -> ManagedProcess:
    _, logs, run = _dirs(config)
    svc = config.services[name]
    host = loopback(svc.host)
    argv = [sys.executable, "-m", SERVICE_MODULE, name, _config_file(config)]
    return ManagedProcess(name, argv, port=svc.port, pid_path=run / f"{name}.pid",
                          log_path=logs / f"{name}.log", cwd=config.base_dir,
                          ready=lambda: port_open(host, svc.port, timeout=0.2), module=SERVICE_MODULE)


def proxy_process(config: Config) -> ManagedProcess:
    _, logs, run = _dirs(config)
    host, port = loopback(config.proxy.host), config.proxy.port
    argv = [sys.executable, "-m", PROXY_MODULE, "--config", _config_file(config)]
    return ManagedProcess("proxy", argv, port=port, pid_path=run / "proxy.pid", log_path=logs / "proxy.log",
                          cwd=config.base_dir, ready=lambda: http_ok(host, port, "/-/health", timeout=0.5),
                          module=PROXY_MODULE)


def units(config: Config) -> list[tuple[str, str, Unit]]:
    """Every process of the stack in start order, as (name, host, unit)."""
    found: list[tuple[str, str, Unit]] = [("redis", config.redis.host, redis_server(config)),
                                          ("mariadb", config.mariadb.host, mariadb_server(config))]
    found += [(name, svc.host, service_process(config, name)) for name, svc in config.services.items()]
    found.append(("proxy", config.proxy.host, proxy_process(config)))
    return found


def ensure_secrets(config: Config) -> None:
    """Make what is missing of .stack/secrets/ (each file 0600); a file that exists is never replaced."""
    ensure_jwt_keys(config.auth.private_key, config.auth.public_key)
    for path in (config.mariadb.password_file, config.redis.password_file, config.proxy.admin_token_file):
        if path is not None:
            ensure_secret(path)
    ensure_secret(redis_admin_password_file(config))
    redis_users(config)  # a config the launcher's Redis cannot run with is refused before anything starts


def up(config: Config, *, seed_users: int = DEFAULT_SEED_USERS, say: Say = print) -> None:
    """Start what is not running yet, in dependency order, each waited for by a probe."""
    ensure_secrets(config)
    for name, host, unit in units(config):
        state = "started" if unit.start() else "already running"
        if isinstance(unit, RedisServer) and not unit.ping():
            raise StackError(f"redis: the redis-server on {unit.host}:{unit.port} (pid {unit.pid}) refuses "
                             f"the credentials in {redis_admin_password_file(config).parent}; stop it "
                             "(`cachegate down`) and run `cachegate up` again")
        say(f"{name:<8} {state:<15} pid {unit.pid}  {host}:{unit.port}")
        if isinstance(unit, DatabaseUnit):
            for started in unit.started:  # a cluster: how each node came up, and how long it took
                say(f"         {started}")
            unit.ensure_database(config.mariadb.database, config.mariadb.user, config.mariadb.password())
            _migrate(config, say)
    if seed_users > 0:
        _seed_if_empty(config, seed_users, say)
    _print_try(config, say)


def _migrate(config: Config, say: Say) -> None:
    applied = asyncio.run(migrate(config))
    if applied:
        say(f"schema   applied {', '.join(applied)}")


def _users_empty(config: Config) -> bool:
    db = config.mariadb
    conn = pymysql.connect(host=loopback(db.host), port=db.port, user=db.user, password=db.password(),
                           database=db.database, connect_timeout=int(max(1, db.connect_timeout)),
                           ssl_disabled=True)  # a loopback probe; TLS setup would cost ~40 ms
    with conn, conn.cursor() as cur:
        cur.execute("SELECT EXISTS(SELECT 1 FROM users)")
        return not cur.fetchone()[0]


def _seed_if_empty(config: Config, users: int, say: Say) -> None:
    try:
        empty = _users_empty(config)
    except pymysql.MySQLError as exc:
        say(f"seed     skipped: cannot read the users table ({exc.args[-1]})")
        return
    if not empty:
        return
    say(f"seed     {users} demo users (credentials in {credentials_path(config)})")
    asyncio.run(seed(config, users=users))


def _demo_user(config: Config) -> dict[str, Any] | None:
    """The first seeded user ({"id", "login", "password"}) from seed-users.json, if there is one."""
    try:
        data = json.loads(credentials_path(config).read_text())
        first = data["users"][0]
        return {"id": int(first["id"]), "login": str(first["login"]), "password": str(first["password"])}
    except (OSError, ValueError, KeyError, IndexError, TypeError):
        return None


def _print_try(config: Config, say: Say) -> None:
    _, logs, _ = _dirs(config)
    base = f"http://{loopback(config.proxy.host)}:{config.proxy.port}"
    say(f"logs in {logs}; stop everything with: cachegate down")
    user = _demo_user(config)
    if user is None:
        return
    # The printed command reads the credentials from the file, so they never appear in a log or CI output.
    seeded = credentials_path(config)
    say("try it (the first demo user of seed-users.json):")
    say(f"  TOKEN=$(python3 -c 'import json; u = json.load(open(\"{seeded}\"))[\"users\"][0]; "
        "print(json.dumps({\"login\": u[\"login\"], \"password\": u[\"password\"]}))' |")
    say(f"    curl -s -X POST {base}/auth/token -H 'Content-Type: application/json' -d @- |")
    say("    python3 -c 'import json,sys; print(json.load(sys.stdin)[\"access_token\"])')")
    say(f'  curl -i {base}/users/{user["id"]} -H "Authorization: Bearer $TOKEN"')


def down(config: Config, *, say: Say = print) -> None:
    """Stop what up started, by pid file, in reverse order; each is gone when its line is printed."""
    for name, host, unit in reversed(units(config)):
        pid = unit.pid
        pids = unit.pids if isinstance(unit, DatabaseUnit) else [pid]  # every node of a cluster
        unit.stop()
        say(f"{name:<8} stopped (pid {', '.join(map(str, pids))})" if pid else f"{name:<8} was not running")


def status(config: Config) -> list[Row | NodeRow]:
    """One row per process; a database row per node, up only while the node serves (a Galera node:
    Synced or Donor, in the Primary component)."""
    rows: list[Row | NodeRow] = []
    for name, host, unit in units(config):
        rows += unit.rows() if isinstance(unit, DatabaseUnit) else [Row(name, unit.pid, host, unit.port)]
    return rows
