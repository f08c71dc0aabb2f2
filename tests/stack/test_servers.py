"""The Redis and MariaDB servers of the local stack: start, readiness, refusal, pause, stop by pid."""
from __future__ import annotations

import socket
import stat
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pymysql
import redis
import pytest

from stack.mariadb import MariaDBServer
from stack.net import free_port, port_open
from stack.process import StackError, pid_alive
from stack.redis import RedisServer
from stack.redis_acl import ADMIN_USER, RedisUsers
from tests.support.redisclients import gateway_denials


@pytest.fixture
def bound_port() -> Iterator[int]:
    """A port bound but not listening: a connect is refused (looks free) yet a server cannot bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


def test_redis_start_answers_ping_and_stop_leaves_no_process(
        redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    pid = server.pid
    assert pid is not None and pid_alive(pid)
    assert server.ping()
    assert server.url == f"redis://127.0.0.1:{server.port}/0"
    server.stop()
    assert not pid_alive(pid)
    assert not server.is_running()
    assert not port_open("127.0.0.1", server.port)
    assert not server.pid_path.exists()


def test_redis_writes_its_own_conf_without_persistence(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    conf = server.conf_path.read_text().splitlines()
    assert "bind 127.0.0.1" in conf and f"port {server.port}" in conf
    assert 'save ""' in conf and "appendonly no" in conf
    # A memory limit, and a policy that never evicts the gateway's keys without a TTL (issue 9 part 3).
    assert f"maxmemory {256 * 1024**2}" in conf and "maxmemory-policy volatile-lru" in conf


def test_redis_runs_with_the_memory_limit_and_policy_of_the_config(tmp_path, test_secrets) -> None:
    server = RedisServer(tmp_path / "limited", "127.0.0.1", free_port(), users=test_secrets.redis_users,
                         maxmemory=8 * 1024**2, maxmemory_policy="noeviction")
    server.start()
    try:
        admin = redis.Redis(host="127.0.0.1", port=server.port, username=ADMIN_USER,
                            password=test_secrets.redis_users.admin_password)
        found = admin.config_get("maxmemory*")
        assert (found["maxmemory"], found["maxmemory-policy"]) == (str(8 * 1024**2), "noeviction")
        admin.close()
    finally:
        server.stop()


def test_redis_second_start_is_a_no_op(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    pid = server.pid
    server.start()
    assert server.pid == pid
    # Another handle on the same folder (a second `cachegate up`) sees the running server by its pid file.
    other = RedisServer(server.data_dir, server.host, server.port, users=server.users)
    assert other.pid == pid
    other.start()
    assert server.pid == pid and server.ping()


def test_redis_refuses_a_port_someone_listens_on(
        redis_factory: Callable[..., RedisServer], tmp_path: Path) -> None:
    server = redis_factory()
    intruder = RedisServer(tmp_path / "intruder", "127.0.0.1", server.port, users=server.users)
    with pytest.raises(StackError, match="already taken"):
        intruder.start()
    assert not intruder.is_running()


def test_redis_that_exits_at_start_fails_with_its_log(tmp_path: Path, bound_port: int, test_secrets) -> None:
    server = RedisServer(tmp_path / "r", "127.0.0.1", bound_port, users=test_secrets.redis_users)
    with pytest.raises(StackError, match="exited with code") as err:
        server.start()
    assert str(bound_port) in str(err.value)  # the log tail names the port it could not bind
    assert not server.is_running()


def redis_cli(server: RedisServer, *args: str, user: str | None = None, password: str | None = None) -> str:
    """What redis-cli prints for one command; the password goes by environment, never on a command line."""
    auth = ["--user", user] if user else []
    env = {"REDISCLI_AUTH": password} if password else {}
    done = subprocess.run(["redis-cli", "-h", server.host, "-p", str(server.port), *auth, *args],
                          capture_output=True, text=True, timeout=10, env=env)
    return (done.stdout + done.stderr).strip()


def test_redis_without_credentials_answers_nothing_but_noauth(redis_factory: Callable[..., RedisServer],
                                                               tmp_path: Path) -> None:
    """Regression (issue 7): any local process could read and write cache entries, or flush them."""
    server = redis_factory()
    users = server.users
    assert redis_cli(server, "SET", "cg:e:user:1", "forged", user=ADMIN_USER,
                     password=users.admin_password) == "OK"
    for command in (["GET", "cg:e:user:1"], ["SET", "cg:e:user:1", "x"], ["FLUSHALL"],
                    ["CONFIG", "GET", "*"]):
        assert redis_cli(server, *command).startswith("NOAUTH"), command
    wrong = redis_cli(server, "GET", "cg:e:user:1", user=users.gateway_user, password="wrong-password")
    assert "WRONGPASS" in wrong and "forged" not in wrong
    assert redis_cli(server, "GET", "cg:e:user:1", user=ADMIN_USER, password=users.admin_password) == "forged"


def test_the_gateway_user_runs_its_commands_and_nothing_else(
        redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    users = server.users
    as_gateway = {"user": users.gateway_user, "password": users.gateway_password}
    assert redis_cli(server, "SET", "cg:e:user:1", "v", **as_gateway) == "OK"
    assert redis_cli(server, "GET", "cg:e:user:1", **as_gateway) == "v"
    for command in (["FLUSHALL"], ["KEYS", "*"], ["CONFIG", "SET", "save", "1 1"], ["SHUTDOWN"],
                    ["ACL", "LIST"], ["SCRIPT", "FLUSH"]):
        assert "NOPERM" in redis_cli(server, *command, **as_gateway), command
    # Inside a script too: Redis checks what a script calls against the same ACL.
    assert "can't run this command" in redis_cli(server, "EVAL", "return redis.call('FLUSHALL')", "0",
                                                 **as_gateway)
    assert redis_cli(server, "GET", "cg:e:user:1", **as_gateway) == "v"
    assert sorted(gateway_denials(server)) == sorted(  # and the check of the fixtures sees each refusal
        ["command flushall", "command keys", "command config|set", "command shutdown", "command acl|list",
         "command script|flush", "command flushall"])


def test_redis_conf_holds_password_hashes_only_and_is_private(
        redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    conf = server.conf_path.read_text()
    assert server.users.gateway_password not in conf and server.users.admin_password not in conf
    assert "user default reset" in conf.splitlines()
    assert stat.S_IMODE(server.conf_path.stat().st_mode) == 0o600


def test_redis_without_users_is_found_and_stopped_but_never_started(
        redis_factory: Callable[..., RedisServer], tmp_path: Path) -> None:
    server = redis_factory()
    blind = RedisServer(server.data_dir, server.host, server.port, users=None, pid_path=server.pid_path)
    assert blind.pid == server.pid and not blind.ping()
    blind.stop()  # no admin password for SHUTDOWN: by SIGTERM
    assert not server.is_running()
    with pytest.raises(StackError, match="no credentials"):
        RedisServer(tmp_path / "none", "127.0.0.1", free_port(), users=None).start()


@pytest.mark.parametrize("name", ["admin", "default", "has space", ""])
def test_redis_users_refuse_names_that_would_clash(name: str) -> None:
    with pytest.raises(ValueError):
        RedisUsers(name, "gateway-password", "admin-password")


def test_redis_pause_silences_it_and_resume_brings_it_back(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    server.pause()
    assert server.is_running()
    assert not server.ping(timeout=0.2)
    server.resume()
    assert server.ping()


def test_redis_stop_works_on_a_paused_server(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    pid = server.pid
    server.pause()
    server.stop()
    assert not pid_alive(pid)


def test_redis_kill_then_start_again_on_the_same_port(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    pid = server.pid
    server.kill()
    assert not pid_alive(pid)
    assert not server.ping(timeout=0.2)
    server.start()
    assert server.pid != pid and server.ping()


def test_session_mariadb_root_runs_sql(mariadb_server: MariaDBServer) -> None:
    rows = mariadb_server.root_execute(
        "SELECT @@port, @@max_connections, @@innodb_buffer_pool_size, %s", ("x",))
    assert rows == [(mariadb_server.port, 500, 64 * 1024 * 1024, "x")]


def test_ensure_database_gives_the_user_tcp_access_to_its_database(mariadb_server: MariaDBServer) -> None:
    database, user, password = f"ensure_{free_port()}", f"u_{free_port()}", "it's a \"secret\"\\"
    mariadb_server.ensure_database(database, user, password)
    mariadb_server.ensure_database(database, user, password)  # idempotent
    conn = pymysql.connect(host="127.0.0.1", port=mariadb_server.port, user=user, password=password,
                           database=database)
    with conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE t (id INT PRIMARY KEY)")
        cur.execute("SELECT @@character_set_database")
        assert cur.fetchone() == ("utf8mb4",)
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", port=mariadb_server.port, user=user, password="wrong")


def test_ensure_database_changes_the_password_of_an_existing_user(mariadb_server: MariaDBServer) -> None:
    database, user = f"pw_{free_port()}", f"u_{free_port()}"
    mariadb_server.ensure_database(database, user, "first")
    mariadb_server.ensure_database(database, user, "second")
    pymysql.connect(host="127.0.0.1", port=mariadb_server.port, user=user, password="second").close()
    with pytest.raises(pymysql.err.OperationalError):
        pymysql.connect(host="127.0.0.1", port=mariadb_server.port, user=user, password="first")


@pytest.mark.parametrize("database, user", [("x`; DROP DATABASE mysql; --", "u"), ("ok", "u'@'%")])
def test_ensure_database_refuses_names_that_are_not_plain_identifiers(
        mariadb_server: MariaDBServer, database: str, user: str) -> None:
    with pytest.raises(StackError, match="must match"):
        mariadb_server.ensure_database(database, user, "pw")


@pytest.fixture(scope="module")
def private_mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MariaDBServer]:
    """An initialised but stopped server that the tests below start and stop themselves."""
    server = MariaDBServer(tmp_path_factory.mktemp("private-mariadb"), "127.0.0.1", free_port())
    server.init()
    yield server
    server.stop()


@pytest.mark.slow
def test_mariadb_start_stop_restart_keeps_data(private_mariadb: MariaDBServer) -> None:
    server = private_mariadb
    server.start()
    pid = server.pid
    assert pid is not None and server.ping()
    assert server.pid_path.read_text().strip() == str(pid)
    server.start()  # already running: no-op
    other = MariaDBServer(server.data_dir, server.host, server.port)
    other.start()
    assert server.pid == other.pid == pid
    server.root_execute("CREATE DATABASE IF NOT EXISTS kept")
    server.root_execute("CREATE TABLE IF NOT EXISTS kept.t (v INT)")
    server.root_execute("INSERT INTO kept.t VALUES (42)")

    other.stop()  # by pid file, from a handle that did not start it
    assert not pid_alive(pid)
    assert not server.is_running() and not server.ping()
    assert not port_open("127.0.0.1", server.port)

    server.start()
    assert server.pid != pid
    assert server.root_execute("SELECT v FROM kept.t") == [(42,)]
    server.stop()
    assert not server.is_running()


@pytest.mark.slow
def test_mariadb_that_exits_at_start_fails_with_its_log(
        private_mariadb: MariaDBServer, bound_port: int) -> None:
    server = MariaDBServer(private_mariadb.data_dir, "127.0.0.1", bound_port)
    with pytest.raises(StackError, match="exited with code"):
        server.start()
    assert not server.is_running()
