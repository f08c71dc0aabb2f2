"""Faults on the suite's own stack, each on a real process by its pid: kill, pause, locks, limits, memory.

Nothing here restarts anything on its own initiative: `heal` first gives a supervisor (if the stack has
one) the chance to bring a killed process back, and only then runs `cachegate up`; it says which happened.
"""
from __future__ import annotations

import os
import resource
import signal
import threading
import time
from dataclasses import dataclass
from typing import Callable

import pymysql

from loadtest.reliability.ownstack import OwnStack, StackFailure, alive
from stack.net import port_open

GONE_TIMEOUT_S = 10.0


def wait_for(predicate: Callable[[], bool], timeout: float, interval: float = 0.05) -> bool:
    """Poll `predicate` until true or `timeout`; never sleeps past the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        if predicate():
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        time.sleep(min(interval, left))


@dataclass
class Healed:
    """How a killed process came back: by itself (a supervisor) or by the harness, and after how long."""

    by: str              # "itself" | "harness" | "resumed" | "restored"
    after_s: float
    pid: int | None

    def as_json(self) -> dict[str, object]:
        return {"by": self.by, "after_s": round(self.after_s, 3), "pid": self.pid}


class Faults:
    """The fault actions on one stack; `start_proxy` stands in for `cachegate up` to start the proxy."""

    def __init__(self, stack: OwnStack, start_proxy: Callable[[], int] | None = None) -> None:
        self.stack = stack
        self.start_proxy = start_proxy

    def port_of(self, name: str) -> int:
        config = self.stack.config
        if name == "redis":
            return config.redis.port
        if name == "mariadb":
            return config.mariadb.port
        if name == "proxy":
            return config.proxy.port
        return config.services[name].port

    def pid(self, name: str) -> int:
        pid = self.stack.pid(name)
        if pid is None:
            raise StackFailure(f"{name} is not running (no live pid in {self.stack.pid_file(name)})")
        return pid

    def kill(self, name: str) -> int:
        """SIGKILL, as a crash; returns the dead pid once it is gone."""
        pid = self.pid(name)
        os.kill(pid, signal.SIGKILL)
        if not wait_for(lambda: not alive(pid), GONE_TIMEOUT_S):
            raise StackFailure(f"{name} (pid {pid}) survived SIGKILL")
        return pid

    def pause(self, name: str) -> int:
        pid = self.pid(name)
        os.kill(pid, signal.SIGSTOP)
        return pid

    def resume(self, pid: int) -> None:
        os.kill(pid, signal.SIGCONT)

    def heal(self, name: str, dead_pid: int, started: float, wait_s: float) -> Healed:
        """After `wait_s` seconds of outage: back by itself (another live pid on its port), else restarted."""
        def back() -> bool:
            pid = self.stack.pid(name)
            return pid is not None and pid != dead_pid and port_open("127.0.0.1", self.port_of(name), 0.2)

        left = wait_s - (time.monotonic() - started)
        if wait_for(back, max(0.0, left), interval=0.1):
            return Healed("itself", time.monotonic() - started, self.stack.pid(name))
        if back():
            return Healed("itself", time.monotonic() - started, self.stack.pid(name))
        if name == "proxy" and self.start_proxy is not None:
            pid: int | None = self.start_proxy()
        else:
            self.stack.up()
            pid = self.stack.pid(name)
        if pid is None:
            raise StackFailure(f"{name} did not come back after `cachegate up`")
        return Healed("harness", time.monotonic() - started, pid)

    # --- the database ------------------------------------------------------------------------------
    def lock_row(self, user_id: int) -> RowLock:
        return RowLock(self.stack.db(), user_id)

    # --- Redis as its admin -------------------------------------------------------------------------
    def redis_memory(self) -> dict[str, int | str]:
        """Memory used, the limit and its policy, and how many commands Redis refused as out of memory."""
        with self.stack.redis_admin() as admin:
            info = admin.info("memory")
            config = admin.config_get("maxmemory*")
            errors = admin.info("errorstats")
        oom = errors.get("errorstat_OOM", {})
        return {"used_memory": int(info["used_memory"]), "maxmemory": int(config["maxmemory"]),
                "maxmemory_policy": str(config["maxmemory-policy"]),
                "refused_oom": int(oom.get("count", 0)) if isinstance(oom, dict) else 0}

    def set_redis_maxmemory(self, limit: int, policy: str | None = None) -> None:
        with self.stack.redis_admin() as admin:
            admin.config_set("maxmemory", str(limit))
            if policy is not None:
                admin.config_set("maxmemory-policy", policy)

    # --- file descriptors ---------------------------------------------------------------------------
    def fd_limit(self, name: str) -> tuple[int, int]:
        return resource.prlimit(self.pid(name), resource.RLIMIT_NOFILE)

    def set_fd_limit(self, name: str, soft: int) -> tuple[int, int]:
        """Lower (or restore) a process's soft RLIMIT_NOFILE by pid; returns what it was."""
        pid = self.pid(name)
        was = resource.prlimit(pid, resource.RLIMIT_NOFILE)
        resource.prlimit(pid, resource.RLIMIT_NOFILE, (min(soft, was[1]), was[1]))
        return was


class RowLock:
    """A row of `users` held FOR UPDATE by a transaction of ours: writes to that user wait in MariaDB."""

    def __init__(self, conn: pymysql.connections.Connection, user_id: int) -> None:
        self.conn = conn
        self.user_id = user_id
        self._lock = threading.Lock()
        self.conn.begin()
        with self.conn.cursor() as cur:
            cur.execute("SELECT id FROM users WHERE id = %s FOR UPDATE", (user_id,))

    def release(self) -> None:
        """Roll back (we changed nothing): the waiting writes go on and commit."""
        with self._lock:
            if self.conn.open:
                try:
                    self.conn.rollback()
                finally:
                    self.conn.close()
