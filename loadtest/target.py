"""The stack under test: used as it runs or started for the run, its pids, the admin API's cache switch."""
from __future__ import annotations

import os
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from cachegate.config import Config
from cachegate.errors import ConfigError
from stack.admin_client import AdminError, admin_call
from stack.database import DatabaseUnit
from stack.launcher import supervisor, units, up
from stack.net import free_port, http_ok, loopback
from stack.process import group_members, log_tail, spawn, terminate, wait_until

USERS_ROUTE = ("GET", "/users/{id:int}")


class TargetError(RuntimeError):
    """The stack, or a reference server, is not in the state the load test needs."""


@dataclass
class Stack:
    config: Config
    started: list[str] = field(default_factory=list)  # the units this run started (and so stops)
    started_supervisor: bool = False                   # and their supervisor, stopped first

    @property
    def proxy_url(self) -> str:
        return f"http://{loopback(self.config.proxy.host)}:{self.config.proxy.port}"

    @property
    def users_url(self) -> str:
        return self.config.upstreams["users"].rstrip("/")

    @property
    def route(self) -> str:
        """The metrics label of the read route: the first rule that serves GET /users/{id:int}."""
        for route in self.config.routes:
            if USERS_ROUTE[0] in route.methods and route.path == USERS_ROUTE[1]:
                return route.name
        raise TargetError("config.yaml has no GET /users/{id:int} route")

    def pids(self) -> dict[str, list[int]]:
        """proxy (its master and workers), users, mariadb (every node) and redis, from the pid files."""
        found: dict[str, list[int]] = {}
        for name, _, unit in units(self.config):
            if name in ("proxy", "users", "mariadb", "redis"):
                if unit.pid is None:
                    raise TargetError(f"{name} is not running")
                found[name] = (group_members(unit.pid) if name == "proxy"
                               else unit.pids if isinstance(unit, DatabaseUnit) else [unit.pid])
        return found

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        """An admin call with the configured token (from the file `cachegate up` made, or the environment)."""
        try:
            return admin_call(self.config, method, path, body, timeout=10)
        except (AdminError, ConfigError) as exc:
            raise TargetError(str(exc)) from None

    def cache_enabled(self) -> bool:
        return bool(self.admin("GET", "/-/admin/state")["cache_enabled"])

    def set_cache(self, enabled: bool, probe: tuple[int, str]) -> str:
        """Toggle at run time (same processes), then prove it on a real request; returns its Cache-Status."""
        self.admin("POST", "/-/admin/cache", {"enabled": enabled})
        user_id, authorization = probe

        def switched() -> bool:
            status = self.cache_status(user_id, authorization)
            return ("CACHE-OFF" in status) != enabled

        # With several workers the switch travels by signal: give it a moment to reach all of them.
        if not wait_until(switched, timeout=5.0, interval=0.1):
            raise TargetError(f"the cache did not turn {'on' if enabled else 'off'} within 5 s")
        return self.cache_status(user_id, authorization)

    def cache_status(self, user_id: int, authorization: str) -> str:
        request = urllib.request.Request(f"{self.proxy_url}/users/{user_id}",
                                         headers={"Authorization": authorization})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.headers.get("Cache-Status", "")
        except (OSError, urllib.error.HTTPError) as exc:
            raise TargetError(f"GET /users/{user_id} through the proxy: {exc}") from None


def open_stack(config: Config, say: Callable[[str], None]) -> Stack:
    """Use what runs; start (and remember) what does not, through the launcher."""
    before = {name for name, _, unit in units(config) if unit.is_running()}
    supervised = supervisor(config).pid is not None
    stack = Stack(config)
    if len(before) < len(units(config)):
        try:
            up(config, seed_users=0, say=say)
        finally:
            # Also after a failed start: what this run started is this run's to stop. What a supervisor
            # that ran before brought back stays its own.
            stack.started_supervisor = not supervised and supervisor(config).pid is not None
            stack.started = [name for name, _, unit in units(config)
                             if unit.is_running() and name not in before and not supervised]
        if not all(unit.is_running() for _, _, unit in units(config)):
            close_stack(stack, say)
            raise TargetError("the stack did not come up completely (see `cachegate status` and its logs)")
    if not http_ok(loopback(config.proxy.host), config.proxy.port, "/-/health", timeout=2.0):
        close_stack(stack, say)
        raise TargetError(f"the proxy does not answer on {stack.proxy_url}/-/health")
    return stack


def close_stack(stack: Stack, say: Callable[[str], None]) -> None:
    """Stop the supervisor this run started (so nothing comes back), then, by pid file, only the units
    this run started, in reverse start order."""
    if stack.started_supervisor:
        pid = supervisor(stack.config).stop()
        _reap(pid)
        say(f"supervisor stopped (pid {pid})")
    for name, _, unit in reversed(units(stack.config)):
        if name in stack.started:
            pid = unit.pid
            unit.stop()
            _reap(pid)
            say(f"{name:<8} stopped (pid {pid})")


def _reap(pid: int | None) -> None:
    """The launcher started these as our children: collect their exit status so no zombie stays behind."""
    if pid is None:
        return
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass  # not our child (a daemon such as redis-server), or already collected


class BareServer:
    """The reference: a bare aiohttp handler on a free loopback port, started and stopped by pid."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> int:
        argv = [sys.executable, "-m", "loadtest.bare_app", "--port", str(self.port)]
        self.proc = spawn(argv, self.log_path)
        proc = self.proc
        ready = wait_until(lambda: proc.poll() is not None or http_ok("127.0.0.1", self.port, timeout=0.5),
                           timeout=15.0, interval=0.1)
        if not ready or self.proc.poll() is not None:
            self.stop()
            raise TargetError(f"the bare aiohttp reference did not start:\n{log_tail(self.log_path)}")
        return self.proc.pid

    def stop(self) -> None:
        if self.proc is not None:
            terminate(self.proc.pid, timeout=5.0, popen=self.proc)
            self.proc = None
