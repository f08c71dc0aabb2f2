"""The Redis and MariaDB servers of the local stack: start, readiness, refusal, pause, stop by pid."""
from __future__ import annotations

import socket
from pathlib import Path
from typing import Callable, Iterator

import pymysql
import pytest

from stack.mariadb import MariaDBServer
from stack.net import free_port, port_open
from stack.process import StackError, pid_alive
from stack.redis import RedisServer


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
    assert 'save ""' in conf and "appendonly no" in conf and "maxmemory 0" in conf


def test_redis_second_start_is_a_no_op(redis_factory: Callable[..., RedisServer]) -> None:
    server = redis_factory()
    pid = server.pid
    server.start()
    assert server.pid == pid
    # Another handle on the same folder (a second `cachegate up`) sees the running server by its pid file.
    other = RedisServer(server.data_dir, server.host, server.port)
    assert other.pid == pid
    other.start()
    assert server.pid == pid and server.ping()


def test_redis_refuses_a_port_someone_listens_on(
        redis_factory: Callable[..., RedisServer], tmp_path: Path) -> None:
    server = redis_factory()
    intruder = RedisServer(tmp_path / "intruder", "127.0.0.1", server.port)
    with pytest.raises(StackError, match="already taken"):
        intruder.start()
    assert not intruder.is_running()


def test_redis_that_exits_at_start_fails_with_its_log(tmp_path: Path, bound_port: int) -> None:
    server = RedisServer(tmp_path / "r", "127.0.0.1", bound_port)
    with pytest.raises(StackError, match="exited with code") as err:
        server.start()
    assert str(bound_port) in str(err.value)  # the log tail names the port it could not bind
    assert not server.is_running()


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
