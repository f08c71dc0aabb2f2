"""A standalone mariadbd run as a plain process, with its datadir, socket, pid file and logs in one folder."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any, Sequence

import pymysql

from stack.net import port_open
from stack.process import (StackError, log_tail, pid_alive, pid_cmdline, read_pid_file, spawn, terminate,
                           wait_until)

INIT_TIMEOUT = 120.0
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0
# Database and user names go into SQL as identifiers, which cannot be parameters: allow only these.
_NAME = re.compile(r"[A-Za-z0-9_]{1,64}")


def _binary(name: str) -> str:
    # mariadbd lives in /usr/sbin, which a non-login PATH may lack.
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin")
    if found is None:
        raise StackError(f"{name} is not installed (apt-get install mariadb-server)")
    return found


class MariaDBServer:
    """One mariadbd on host:port; root reaches it over the unix socket, applications over TCP."""

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", port: int = 3316, *,
                 pid_path: Path | None = None, log_path: Path | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.host = host
        self.port = port
        self.cnf_path = self.data_dir / "my.cnf"
        self.datadir = self.data_dir / "data"
        self.socket_path = self.data_dir / "mysqld.sock"
        # The launcher keeps every pid file in one run/ folder and every log in one logs/ folder.
        self.pid_path = Path(pid_path) if pid_path else self.data_dir / "mysqld.pid"
        self.log_path = Path(log_path) if log_path else self.data_dir / "error.log"
        self.stdout_path = self.log_path.with_name(self.log_path.stem + ".stdout")
        self._popen: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"MariaDBServer({self.host}:{self.port}, pid={self.pid})"

    @property
    def pid(self) -> int | None:
        """The live server's pid: ours while it runs, else the pid file's (if it is a mariadbd)."""
        if self._popen is not None and self._popen.poll() is None:
            return self._popen.pid
        pid = read_pid_file(self.pid_path)
        if pid_alive(pid) and "mariadbd" in pid_cmdline(pid):
            return pid
        return None

    def is_running(self) -> bool:
        return self.pid is not None

    def is_initialized(self) -> bool:
        return (self.datadir / "mysql").is_dir()

    def init(self) -> None:
        """Create the system tables with mariadb-install-db when the datadir is still empty."""
        if self.is_initialized():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._write_cnf()
        init_log = self.log_path.with_name(self.log_path.stem + "-install-db.log")
        with open(init_log, "wb") as log:
            result = subprocess.run(
                [_binary("mariadb-install-db"), f"--defaults-file={self.cnf_path}", "--user=root",
                 "--skip-test-db", "--auth-root-authentication-method=socket"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, timeout=INIT_TIMEOUT)
        if result.returncode != 0 or not self.is_initialized():
            raise StackError(f"mariadb-install-db failed (exit {result.returncode}):\n{log_tail(init_log)}")

    def start(self) -> bool:
        """Start mariadbd (initialising it first if needed) and wait until root can connect.

        Returns False, having done nothing, when it already runs.
        """
        if self.is_running():
            return False
        if port_open(self.host, self.port):
            raise StackError(f"mariadb: {self.host}:{self.port} is already taken by another process")
        if len(str(self.socket_path).encode()) > 107:
            raise StackError(f"mariadb: socket path too long for a unix socket (max 107 bytes): "
                             f"{self.socket_path}")
        self.init()
        self._write_cnf()
        # --defaults-file must come first, or mariadbd also reads /etc/mysql.
        self._popen = spawn([_binary("mariadbd"), f"--defaults-file={self.cnf_path}"],
                            self.stdout_path, cwd=self.data_dir)
        wait_until(lambda: self._popen.poll() is not None or self.ping(), START_TIMEOUT, interval=0.05)
        if self._popen.poll() is not None:
            raise StackError(f"mariadbd exited with code {self._popen.returncode}:\n{log_tail(self.log_path)}"
                             f"\n{log_tail(self.stdout_path, 5)}")
        if not self.ping():
            self.stop()
            raise StackError(f"mariadbd was not ready within {START_TIMEOUT:.0f}s:\n"
                             f"{log_tail(self.log_path)}")
        return True

    def stop(self) -> None:
        """SIGTERM the pid, wait for a clean shutdown, SIGKILL as a last resort; returns once it is gone."""
        pid = self.pid
        if pid is not None:
            terminate(pid, timeout=STOP_TIMEOUT, popen=self._popen)
        self.pid_path.unlink(missing_ok=True)  # mariadbd removes it itself, unless SIGKILL was needed
        self._popen = None

    def kill(self) -> None:
        """SIGKILL, as a crash would; InnoDB recovers on the next start."""
        pid = self.pid
        if pid is not None:
            terminate(pid, timeout=0, popen=self._popen)
        self._popen = None

    def ping(self) -> bool:
        try:
            self._connect(connect_timeout=1).close()
            return True
        except pymysql.MySQLError:
            return False

    def root_execute(self, sql: str, params: Sequence[Any] | None = None) -> list[tuple]:
        """Run one statement as root over the unix socket; returns its rows (empty for DDL)."""
        return self.root_execute_many([(sql, params)])[-1]

    def root_execute_many(self, statements: Sequence[tuple[str, Sequence[Any] | None]]) -> list[list[tuple]]:
        """Run statements in order on one root connection; the rows of each."""
        conn = self._connect(connect_timeout=5)
        try:
            out = []
            with conn.cursor() as cur:
                for sql, params in statements:
                    cur.execute(sql, params)
                    out.append(list(cur.fetchall()))
            return out
        finally:
            conn.close()

    def ensure_database(self, database: str, user: str, password: str) -> None:
        """Create the database and an application user that may use it from 127.0.0.1 (TCP) and localhost."""
        for kind, name in (("database", database), ("user", user)):
            if not _NAME.fullmatch(name):
                raise StackError(f"mariadb: {kind} name {name!r} must match {_NAME.pattern}")
        statements: list[tuple[str, Sequence[Any] | None]] = [
            (f"CREATE DATABASE IF NOT EXISTS `{database}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci",
             None)]
        for host in ("127.0.0.1", "localhost"):
            statements += [(f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY %s", (password,)),
                           (f"ALTER USER '{user}'@'{host}' IDENTIFIED BY %s", (password,)),
                           (f"GRANT ALL PRIVILEGES ON `{database}`.* TO '{user}'@'{host}'", None)]
        self.root_execute_many(statements)

    def ensure_replication_user(self, user: str, password: str) -> None:
        """A user that may only read the binary log (REPLICATION SLAVE, BINLOG MONITOR), over TCP."""
        if not _NAME.fullmatch(user):
            raise StackError(f"mariadb: user name {user!r} must match {_NAME.pattern}")
        statements: list[tuple[str, Sequence[Any] | None]] = []
        for host in ("127.0.0.1", "localhost"):
            statements += [(f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY %s", (password,)),
                           (f"ALTER USER '{user}'@'{host}' IDENTIFIED BY %s", (password,)),
                           (f"GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'{host}'", None)]
        self.root_execute_many(statements)

    def _connect(self, connect_timeout: int) -> pymysql.connections.Connection:
        # OS root is MariaDB root over the socket (unix_socket authentication): no password anywhere.
        # ssl_disabled: PyMySQL would build a TLS context per connect (~40 ms) for a local socket.
        return pymysql.connect(unix_socket=str(self.socket_path), user="root",
                               connect_timeout=connect_timeout, autocommit=True, ssl_disabled=True)

    def _write_cnf(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        (self.data_dir / "tmp").mkdir(exist_ok=True)
        self.cnf_path.write_text(f"""\
[client]
port={self.port}
socket={self.socket_path}
user=root

[mysqld]
user=root
datadir={self.datadir}
socket={self.socket_path}
pid-file={self.pid_path}
log-error={self.log_path}
tmpdir={self.data_dir / "tmp"}
port={self.port}
bind-address={self.host}
skip-name-resolve
# A row-based binary log with GTIDs and column names: the cache invalidator reads it as a replica would.
server_id=1
log_bin=mariadb-bin
binlog_format=ROW
binlog_row_image=FULL
binlog_row_metadata=FULL
binlog_expire_logs_seconds=604800
innodb_buffer_pool_size=64M
innodb_log_file_size=16M
innodb_flush_log_at_trx_commit=2
max_connections=500
character-set-server=utf8mb4
collation-server=utf8mb4_unicode_ci
""")
