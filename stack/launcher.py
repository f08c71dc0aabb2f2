"""`cachegate up/down/status`: the whole stack as plain processes under a supervisor, tracked by pid files.

`up` checks every port, then starts the supervisor (stack/daemon.py), which starts the processes in order
and restarts one that dies; `up` returns once all of them run. `down` stops the supervisor first, so that
nothing is restarted, then every process by its pid file, in reverse order.
"""
from __future__ import annotations

import asyncio
import json
import sys
from collections import Counter
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import pymysql

from backends.migrate import migrate
from backends.seed import credentials_path, seed
from cachegate.config import Config
from cachegate.errors import ConfigError
from stack.cache_unit import RedisUnit, cluster_ports
from stack.database import DatabaseUnit, NodeRow
from stack.keys import ensure_jwt_keys, ensure_secret
from stack.managed import ManagedProcess
from stack.net import http_ok, loopback, port_open
from stack.ports import taken
from stack.process import StackError, wait_until
from stack.redis_acl import RedisUsers
from stack.restarts import RUNNING, Record
from stack.supervision import SupervisorFiles, SupervisorProcess
from stack.supervisor import Slot, Unit

Say = Callable[[str], None]
DEFAULT_SEED_USERS = 1000
UP_WAIT_S = 120.0   # a second `up` waits this long for the supervisor to bring back what is down
# What the launcher runs, by module: the same code the `cachegate backend` and `cachegate proxy` commands run.
SERVICE_MODULE, PROXY_MODULE, INVALIDATOR_MODULE = "backends.runner", "proxy", "invalidator"


@dataclass(frozen=True)
class Row:
    """One line of `cachegate status`: a process, its pid, address and state, and what its supervisor saw."""

    name: str
    pid: int | None
    host: str
    port: int | None
    details: str = ""

    @property
    def up(self) -> bool:
        return self.pid is not None

    def __str__(self) -> str:
        state = "up" if self.up else "down"
        address = f"{self.host}:{self.port}" if self.port is not None else "-"
        line = f"{self.name:<10} pid {self.pid or '-':>7}  {address:<21}  {state}"
        return f"{line}  ({self.details})" if self.details else line


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


def redis_server(config: Config) -> RedisUnit:
    """Redis: the one server of redis.url, or the Redis Cluster of redis.cluster.nodes."""
    _dirs(config)
    try:
        users: RedisUsers | None = redis_users(config)
    except StackError:
        users = None  # not made yet: status and down need none, and start() says it cannot
    return RedisUnit(config, users)


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
                          ready=lambda: port_open(host, svc.port, timeout=0.2), module=SERVICE_MODULE,
                          addresses=addresses(config)[name])


def proxy_process(config: Config) -> ManagedProcess:
    _, logs, run = _dirs(config)
    host, port = loopback(config.proxy.host), config.proxy.port
    argv = [sys.executable, "-m", PROXY_MODULE, "--config", _config_file(config)]
    return ManagedProcess("proxy", argv, port=port, pid_path=run / "proxy.pid", log_path=logs / "proxy.log",
                          cwd=config.base_dir, ready=lambda: http_ok(host, port, "/-/health", timeout=0.5),
                          module=PROXY_MODULE, addresses=addresses(config)["proxy"])


def invalidator_process(config: Config) -> ManagedProcess:
    """The cache invalidator: ready once it follows the binary log (its /-/health answers 200)."""
    _, logs, run = _dirs(config)
    settings = config.invalidator
    assert settings is not None
    host, port = loopback(settings.host), settings.port
    argv = [sys.executable, "-m", INVALIDATOR_MODULE, "--config", _config_file(config)]
    return ManagedProcess("invalidator", argv, port=port, pid_path=run / "invalidator.pid",
                          log_path=logs / "invalidator.log", cwd=config.base_dir,
                          ready=lambda: http_ok(host, port, "/-/health", timeout=0.5),
                          module=INVALIDATOR_MODULE, addresses=addresses(config)["invalidator"])


def runs_invalidator(config: Config) -> bool:
    return config.invalidator is not None and config.invalidator.enabled and bool(config.invalidations)


def addresses(config: Config) -> dict[str, list[tuple[str, int]]]:
    """Every (host, port) each process of the stack listens on, by name."""
    db = config.mariadb
    redis = cluster_ports(config) if config.redis.cluster else [(config.redis.host, config.redis.port)]
    found = {"redis": redis, "mariadb": [(db.host, db.port)]}
    if db.cluster:   # every node's SQL port and the ports it talks to its peers on
        found["mariadb"] = [(node.host, port) for node in db.nodes
                            for port in (node.port, node.gcomm_port, node.ist_port, node.sst_port)]
    found.update((name, [(svc.host, svc.port)]) for name, svc in config.services.items())
    proxy = config.proxy
    found["proxy"] = [(proxy.host, proxy.port), (proxy.admin_host, proxy.admin_port)]
    if runs_invalidator(config):
        found["invalidator"] = [(config.invalidator.host, config.invalidator.port)]
    return found


def units(config: Config) -> list[tuple[str, str, Unit]]:
    """Every process of the stack in start order, as (name, host, unit)."""
    found: list[tuple[str, str, Unit]] = [("redis", config.redis.host, redis_server(config)),
                                          ("mariadb", config.mariadb.host, mariadb_server(config))]
    found += [(name, svc.host, service_process(config, name)) for name, svc in config.services.items()]
    found.append(("proxy", config.proxy.host, proxy_process(config)))
    if runs_invalidator(config):  # after the proxy: its note tells the gateway to trust the cache again
        found.append(("invalidator", config.invalidator.host, invalidator_process(config)))
    return found


def slots(config: Config) -> list[Slot]:
    """The units as the supervisor runs them, each with what must follow its every start."""
    found = []
    for name, host, unit in units(config):
        hook: Callable[[Say], None] | None = None
        if isinstance(unit, RedisUnit):
            hook = partial(_check_redis_login, config, unit)
        elif isinstance(unit, DatabaseUnit):
            hook = partial(_database_started, config, unit)
        found.append(Slot(name, host, unit, hook))
    return found


def supervisor(config: Config) -> SupervisorProcess:
    """The supervisor of this stack (running or not): its files are in run/ and logs/ of stack.data_dir."""
    _, logs, run = _dirs(config)
    return SupervisorProcess(SupervisorFiles(run, logs / "supervisor.log"), config.path, cwd=config.base_dir)


def ensure_secrets(config: Config) -> None:
    """Make what is missing of .stack/secrets/ (each file 0600); a file that exists is never replaced."""
    ensure_jwt_keys(config.auth.private_key, config.auth.public_key)
    paths = [config.mariadb.password_file, config.redis.password_file, config.proxy.admin_token_file]
    if runs_invalidator(config):
        paths.append(config.invalidator.password_file)
    for path in paths:
        if path is not None:
            ensure_secret(path)
    ensure_secret(redis_admin_password_file(config))
    redis_users(config)  # a config the launcher's Redis cannot run with is refused before anything starts


def up(config: Config, *, seed_users: int = DEFAULT_SEED_USERS, say: Say = print) -> None:
    """Start what is not running yet under the supervisor, in dependency order, each waited for by a probe.

    Returns once everything runs, leaving the supervisor and the processes running. A port that is taken
    starts nothing; a process that fails to start stops again what this call started.
    """
    ensure_secrets(config)
    keeper = supervisor(config)
    if keeper.pid is not None:
        _up_supervised(config, keeper, say)
    else:
        busy = busy_ports(config)
        if busy:
            raise StackError(f"{len(busy)} port(s) the stack needs cannot be used; nothing was started:\n  "
                             + "\n  ".join(busy))
        pid = keeper.start(say)
        say(f"{'supervisor':<8} started         pid {pid}  (log {keeper.files.log_path})")
    if seed_users > 0:
        _seed_if_empty(config, seed_users, say)
    _print_try(config, say)


def busy_ports(config: Config) -> list[str]:
    """One line per port that a process which is not running needs and cannot have, naming its owner."""
    lines = []
    wanted = addresses(config)
    claimed = Counter(place for places in wanted.values() for place in places)
    for name, _, unit in units(config):
        for host, port in wanted[name]:
            if claimed[(host, port)] > 1:
                others = [n for n, places in wanted.items() if n != name and (host, port) in places]
                lines.append(f"port {port} ({name}) on {host}: also configured for {', '.join(others)}")
            elif not _listens_on(unit, port):
                why = taken(host, port)
                if why is not None:
                    lines.append(f"port {port} ({name}) on {host}: {why}")
    return lines


def _listens_on(unit: Unit, port: int) -> bool:
    """Whether the process of `unit` that owns `port` runs (a cluster: the node of that port)."""
    if isinstance(unit, DatabaseUnit) and unit.cluster is not None:
        for node in unit.cluster.nodes:
            if port in (node.port, node.address.gcomm_port, node.address.ist_port, node.address.sst_port):
                return node.is_running()
    return unit.is_running()


def _up_supervised(config: Config, keeper: SupervisorProcess, say: Say) -> None:
    """A second `up`: start nothing; have the supervisor bring back at once what is down, and wait for it."""
    found = units(config)
    down = {name for name, _, unit in found if not unit.is_running()}
    if down:
        keeper.retry()

        def back() -> bool:
            records = keeper.records()
            return all(unit.is_running() and name in records and records[name].state == RUNNING
                       for name, _, unit in found if name in down)

        if not wait_until(back, UP_WAIT_S, interval=0.1):
            records = keeper.records()
            still = [f"{name}: {_details(records, name) or 'down'}"
                     for name, _, unit in found if name in down and not unit.is_running()]
            raise StackError(f"the supervisor (pid {keeper.pid}) has not brought these back within "
                             f"{UP_WAIT_S:.0f} s:\n  " + "\n  ".join(still))
    for name, host, unit in found:
        state = "restarted" if name in down else "already running"
        say(f"{name:<8} {state:<15} pid {unit.pid}  {host}:{unit.port}")
    _prepare_database(config, say)   # as every `up`: a new migration is applied now
    say(f"{'supervisor':<8} already running pid {keeper.pid}  (log {keeper.files.log_path})")


def _details(records: dict[str, Record], name: str) -> str:
    return records[name].describe() if name in records else ""


def _check_redis_login(config: Config, unit: RedisUnit, say: Say) -> None:
    if not unit.ping():
        host = config.redis.cluster_nodes[0][0] if config.redis.cluster else config.redis.host
        raise StackError(f"redis: the redis-server on {host}:{unit.port} (pid {unit.pid}) refuses "
                         f"the credentials in {redis_admin_password_file(config).parent}; stop it "
                         "(`cachegate down`) and run `cachegate up` again")


def _database_started(config: Config, unit: DatabaseUnit, say: Say) -> None:
    """After each start of the database: how each node of a cluster came up (and how long it took), then
    the application's database."""
    for started in unit.started:
        say(f"         {started}")
    _prepare_database(config, say)


def _prepare_database(config: Config, say: Say) -> None:
    """The application's database, user and schema, after every start of MariaDB (each step idempotent)."""
    db = config.mariadb
    try:
        unit = mariadb_server(config)
        unit.ensure_database(db.database, db.user, db.password())
        if runs_invalidator(config):  # its replication user (a cluster makes its own at its first start)
            unit.ensure_replication_user(config.invalidator.user, config.invalidator.password())
        applied = asyncio.run(migrate(config))
    except (pymysql.MySQLError, ConfigError, RuntimeError) as exc:
        raise StackError(f"mariadb: the database {db.database!r} could not be prepared: {exc}") from None
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
    """Stop the supervisor (so nothing is restarted), then what up started, by pid file, in reverse order;
    each is gone when its line is printed."""
    keeper = supervisor(config)
    pid = keeper.stop()
    say(f"{'supervisor':<8} stopped (pid {pid})" if pid else f"{'supervisor':<8} was not running")
    for name, host, unit in reversed(units(config)):
        pid = unit.pid
        pids = unit.pids if isinstance(unit, (DatabaseUnit, RedisUnit)) else [pid]  # every node of a cluster
        unit.stop()
        say(f"{name:<8} stopped (pid {', '.join(map(str, pids))})" if pid else f"{name:<8} was not running")
    keeper.forget()


def status(config: Config) -> list[Row | NodeRow]:
    """Every process, then the supervisor; a process's line says what its supervisor last recorded. The
    database has a row per node, up only while the node serves (a Galera node: Synced or Donor, in the
    Primary component)."""
    keeper = supervisor(config)
    records = keeper.records()
    rows: list[Row | NodeRow] = []
    for name, host, unit in units(config):
        if isinstance(unit, (DatabaseUnit, RedisUnit)) and unit.cluster is not None:
            rows += unit.rows()
        else:
            rows.append(Row(name, unit.pid, host, unit.port, _details(records, name)))
    rows.append(Row("supervisor", keeper.pid, "-", None))
    return rows
