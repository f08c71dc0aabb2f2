"""Faults on the suite's own stack, each on a real process by its pid: kill, pause, locks, limits, memory.

Nothing here restarts anything on its own initiative: `heal` first gives the stack's supervisor the chance
to bring a killed process back (up to SUPERVISED_WAIT_S), and only then runs `cachegate up`; it says which
happened, with what the supervisor recorded.
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
from loadtest.reliability.scenarios import SUPERVISED_WAIT_S
from stack.net import port_open
from stack.restarts import RUNNING

GONE_TIMEOUT_S = 10.0
RECORD_WAIT_S = 30.0   # a unit's start (its readiness probe) may outlast its port opening by this much


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
    """How a killed process came back: by the supervisor, by itself, or by the harness, after how long."""

    by: str              # "supervisor" | "itself" | "harness" | "resumed" | "restored"
    after_s: float
    pid: int | None
    record: dict[str, object] | None = None   # the supervisor's: its restarts, how the dead one ended

    def as_json(self) -> dict[str, object]:
        found: dict[str, object] = {"by": self.by, "after_s": round(self.after_s, 3), "pid": self.pid}
        if self.record is not None:
            found["supervisor"] = self.record
        return found


class Faults:
    """The fault actions on one stack."""

    def __init__(self, stack: OwnStack) -> None:
        self.stack = stack

    def port_of(self, name: str) -> int:
        config = self.stack.config
        if name == "redis":
            return config.redis.port
        if name == "mariadb":
            return config.mariadb.port
        if name == "proxy":
            return config.proxy.port
        if name == "invalidator":
            return config.invalidator.port
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
        """Back by itself (another live pid on its port) within `wait_s`, or SUPERVISED_WAIT_S while the
        stack has a supervisor; else restarted by the harness with `cachegate up`."""
        def back() -> bool:
            pid = self.stack.pid(name)
            return pid is not None and pid != dead_pid and port_open("127.0.0.1", self.port_of(name), 0.2)

        if self.stack.supervisor_pid() is not None:
            wait_s = max(wait_s, SUPERVISED_WAIT_S)
        left = wait_s - (time.monotonic() - started)
        if wait_for(back, max(0.0, left), interval=0.05) or back():
            return self._came_back(name, time.monotonic() - started)
        self.stack.up()
        pid = self.stack.pid(name)
        if pid is None:
            raise StackFailure(f"{name} did not come back after `cachegate up`")
        return Healed("harness", time.monotonic() - started, pid)

    def _came_back(self, name: str, after_s: float) -> Healed:
        """Who brought it back: the supervisor when its record has restarted exactly this pid. (Its port
        opens a moment before the supervisor's readiness probe passes and the record says so.)"""
        def recorded() -> bool:
            # The pid file read again each time: a start that failed its probe (a loaded machine) is
            # started once more, under another pid, and the record names the one that runs.
            pid = self.stack.pid(name)
            record = self.stack.supervisor_records().get(name)
            return (record is not None and record.pid == pid and record.state == RUNNING
                    and record.restarts > 0)

        if self.stack.supervisor_pid() is None or not wait_for(recorded, RECORD_WAIT_S):
            return Healed("itself", after_s, self.stack.pid(name))
        record = self.stack.supervisor_records()[name]
        return Healed("supervisor", after_s, record.pid,
                      {"restarts": record.restarts, "last_exit": record.last_exit})

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
            stats = admin.info("stats")
        oom = errors.get("errorstat_OOM", {})
        return {"used_memory": int(info["used_memory"]), "maxmemory": int(config["maxmemory"]),
                "maxmemory_policy": str(config["maxmemory-policy"]),
                "evicted_keys": int(stats.get("evicted_keys", 0)),
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
