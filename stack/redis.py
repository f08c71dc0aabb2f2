"""A redis-server run as a plain process with its own config, ACL users, data folder, pid file and log."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from stack.net import port_open
from stack.process import (StackError, log_tail, pid_alive, pid_cmdline, read_pid_file, send_signal,
                           spawn, terminate, wait_gone, wait_until)
from stack.redis_acl import ADMIN_USER, RedisUsers

START_TIMEOUT = 10.0
STOP_TIMEOUT = 5.0
DEFAULT_MAXMEMORY = 256 * 1024**2   # redis.maxmemory's default (cachegate/config.py)
DEFAULT_POLICY = "volatile-lru"     # redis.maxmemory_policy's


class RedisServer:
    """One redis-server on host:port with everything (conf, pid, log) under `data_dir`.

    It always runs with `users`: no client gets in without AUTH. Without them (a stack whose secrets were
    never made) the server can be found and stopped, not started.
    """

    def __init__(self, data_dir: Path, host: str = "127.0.0.1", port: int = 6390, *,
                 users: RedisUsers | None, pid_path: Path | None = None, log_path: Path | None = None,
                 maxmemory: int = DEFAULT_MAXMEMORY, maxmemory_policy: str = DEFAULT_POLICY,
                 appendonly: bool = False) -> None:
        self.data_dir = Path(data_dir)
        self.maxmemory = maxmemory
        self.maxmemory_policy = maxmemory_policy
        # An append-only file; the stack keeps none. It does not keep the cache through a kill: Redis 7.0
        # replays the scripts' writes as MULTI/EXEC of the default user, which the ACL disables, and drops
        # them (redis/redis#14541); tests keep data with a snapshot instead (tests/support/keptredis.py).
        self.appendonly = appendonly
        self.host = host
        self.port = port
        self.users = users
        self.conf_path = self.data_dir / "redis.conf"
        # The launcher keeps every pid file in one run/ folder and every log in one logs/ folder.
        self.pid_path = Path(pid_path) if pid_path else self.data_dir / "redis.pid"
        self.log_path = Path(log_path) if log_path else self.data_dir / "redis.log"
        self._popen: subprocess.Popen | None = None

    def __repr__(self) -> str:
        return f"RedisServer({self.host}:{self.port}, pid={self.pid})"

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        """The live server's pid: ours if we started it, else the pid file's (if it is a redis-server)."""
        if self._popen is not None and self._popen.poll() is None:
            return self._popen.pid
        pid = read_pid_file(self.pid_path)
        if pid_alive(pid) and "redis-server" in pid_cmdline(pid):
            return pid
        return None

    def is_running(self) -> bool:
        return self.pid is not None

    def ping(self, timeout: float = 0.5) -> bool:
        """True when the server answers PING to the admin user (so also False when it refuses our users)."""
        try:
            return self._command(b"PING", timeout=timeout) == b"+PONG"
        except OSError:
            return False

    def start(self) -> bool:
        """Start the server and wait until it answers PING; False (a no-op) when it already runs."""
        if self.is_running():
            return False
        if self.users is None:
            raise StackError("redis: no credentials for its users (`cachegate up` makes them)")
        if port_open(self.host, self.port):
            raise StackError(f"redis: {self.host}:{self.port} is already taken by another process")
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis-server is not installed (apt-get install redis-server)")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pid_path.parent.mkdir(parents=True, exist_ok=True)
        _write_private(self.conf_path, self._conf())
        self._popen = spawn([binary, str(self.conf_path)], self.log_path, cwd=self.data_dir)

        def ready() -> bool:
            return self._popen.poll() is not None or self.ping(timeout=0.2)

        wait_until(ready, START_TIMEOUT)
        if self._popen.poll() is not None:
            raise StackError(f"redis-server exited with code {self._popen.returncode}:\n"
                             f"{log_tail(self.log_path)}")
        if not self.ping():
            self.kill()
            raise StackError(f"redis-server did not answer PING on {self.host}:{self.port} within "
                             f"{START_TIMEOUT:.0f}s:\n{log_tail(self.log_path)}")
        return True

    def stop(self) -> None:
        """Stop by pid: SHUTDOWN NOSAVE, else SIGTERM then SIGKILL; returns once the process is gone."""
        pid = self.pid
        if pid is None:
            self._popen = None
            return
        send_signal(pid, signal.SIGCONT)  # a paused server cannot answer SHUTDOWN
        asked = False
        if self.users is not None:
            try:
                refused = self._command(b"SHUTDOWN", b"NOSAVE", timeout=1.0)  # e.g. -WRONGPASS
            except OSError:
                asked = True  # the server closes the connection as it exits: no reply is the normal case
            else:
                asked = not refused.startswith(b"-")
        # Without the admin's password, or refused: SIGTERM, on which Redis exits cleanly too.
        if not asked or not wait_gone(pid, STOP_TIMEOUT, self._popen):
            terminate(pid, timeout=STOP_TIMEOUT, popen=self._popen)
        self.pid_path.unlink(missing_ok=True)
        self._popen = None

    def kill(self) -> None:
        """SIGKILL, as a crash would: no shutdown, nothing saved."""
        pid = self.pid
        if pid is None:
            return
        send_signal(pid, signal.SIGKILL)
        if not wait_gone(pid, STOP_TIMEOUT, self._popen):
            raise StackError(f"redis-server {pid} survived SIGKILL")
        self._popen = None

    def pause(self) -> None:
        """Freeze the process (SIGSTOP): its port still accepts connections but nothing answers."""
        self._signal(signal.SIGSTOP)

    def resume(self) -> None:
        self._signal(signal.SIGCONT)

    def _signal(self, sig: signal.Signals) -> None:
        pid = self.pid
        if pid is None:
            raise StackError(f"redis on port {self.port} is not running")
        send_signal(pid, sig)

    def _command(self, *command: bytes, timeout: float) -> bytes:
        """Send one command as the admin user; its first reply line, or AUTH's error (enough for PING and
        SHUTDOWN)."""
        request = _resp(*command)
        if self.users is not None:
            request = _resp(b"AUTH", ADMIN_USER.encode(), self.users.admin_password.encode()) + request
        with socket.create_connection((self.host, self.port), timeout=timeout) as sock:
            sock.sendall(request)
            with sock.makefile("rb") as replies:
                if self.users is not None:
                    auth = replies.readline().strip()
                    if auth != b"+OK":
                        return auth or b"-ERR no reply to AUTH"
                reply = replies.readline()
        if not reply:
            raise ConnectionResetError("redis closed the connection")
        return reply.strip()

    def _conf(self) -> str:
        assert self.users is not None
        return "\n".join([
            f"bind {self.host}",
            f"port {self.port}",
            "protected-mode yes",
            "daemonize no",
            f"dir {_quote(self.data_dir)}",
            f"pidfile {_quote(self.pid_path)}",
            f"logfile {_quote(self.log_path)}",
            'save ""',
            # Every write is on disk before its reply, so a SIGKILL loses nothing (fault tests only).
            *(["appendonly yes", "appendfsync always"] if self.appendonly else ["appendonly no"]),
            # A full Redis evicts: with volatile-lru only keys with a TTL (cache records), the least
            # recently used first; the gateway's keys without one (epoch, tag generations, indexes and
            # writers, revoked tokens) stay. 10 samples: closer to true LRU than the default 5.
            f"maxmemory {self.maxmemory}",
            f"maxmemory-policy {self.maxmemory_policy}",
            "maxmemory-samples 10",
            *self.users.conf_lines(),
            "",
        ])


def _resp(*parts: bytes) -> bytes:
    """One command in RESP, so a password is sent as it is, whatever characters it holds."""
    return b"*%d\r\n" % len(parts) + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts)


def _write_private(path: Path, text: str) -> None:
    """The conf holds the users' password hashes: readable by its owner only."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)  # an older conf (written before with 0644) keeps its mode through O_TRUNC


def _quote(path: Path) -> str:
    """A path as a redis.conf string, so folders with spaces work."""
    return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'
