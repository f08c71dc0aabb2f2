"""A stack of the fault suite's own: its config (free ports, a private folder), the `cachegate` command, pids.

Everything goes through stable surfaces: the `cachegate` console script (`up`, `down`, `status`, `admin`),
the pid files under `<stack.data_dir>/run/` (the supervisor's records of its restarts among them), HTTP on
the configured ports and the secrets `cachegate up` writes. The developer's own stack (default ports,
`.stack/`) is never touched.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pymysql
import redis
import yaml

from cachegate.config import load_config
from stack.net import free_port
from stack.restarts import Record, read_records

REPO = Path(__file__).resolve().parents[2]
CLI_TIMEOUT_S = 180.0


class StackFailure(RuntimeError):
    """The suite's own stack could not be written, started, reached or stopped."""


@dataclass
class Command:
    """One `cachegate` call and what it printed (kept for the raw files)."""

    argv: list[str]
    code: int
    seconds: float
    output: str


def cachegate_argv() -> list[str]:
    """The console script of the environment we run in (the one `pip install -e` made)."""
    script = Path(sys.executable).parent / "cachegate"
    if not script.is_file():
        raise StackFailure(f"no `cachegate` command next to {sys.executable} (run stack/bootstrap.sh)")
    return [str(script)]


def _child_env(tree: Path | None = None) -> dict[str, str]:
    # A developer's CACHEGATE* overrides would point our processes at their stack.
    env = {k: v for k, v in os.environ.items() if not k.startswith("CACHEGATE")}
    if tree is not None:
        env["PYTHONPATH"] = str(tree)   # ahead of the installed tree, for every process the stack starts
    return env


def write_config(base: Path, root: Path) -> Path:
    """A copy of `base` with every port free, every host loopback and every file under `root`."""
    data = yaml.safe_load(base.read_text())
    stack_dir = root / "stack"
    secrets = stack_dir / "secrets"
    data.setdefault("stack", {})["data_dir"] = str(stack_dir)
    proxy = data.setdefault("proxy", {})
    proxy.update(host="127.0.0.1", port=free_port(), workers=1, access_log=False)
    proxy.setdefault("admin", {}).update(host="127.0.0.1", port=free_port(),
                                        token_file=str(secrets / "admin-token"))
    redis = data.setdefault("redis", {})
    redis.update(url=f"redis://127.0.0.1:{free_port()}/0", password_file=str(secrets / "redis-password"))
    mariadb = data.setdefault("mariadb", {})
    mariadb.update(nodes=[f"127.0.0.1:{free_port()}"], password_file=str(secrets / "db-password"))
    auth = data.setdefault("auth", {})
    auth.update(public_key=str(secrets / "jwt-public.pem"), private_key=str(secrets / "jwt-private.pem"))
    if "invalidator" in data:
        data["invalidator"].update(host="127.0.0.1", port=free_port(),
                                   password_file=str(secrets / "db-cdc-password"))
    for name, service in data.get("services", {}).items():
        service.update(host="127.0.0.1", port=free_port())
        data.setdefault("upstreams", {})[name] = f"http://127.0.0.1:{service['port']}"
    path = root / "config.yaml"
    path.write_text("# Written by the fault suite (loadtest/reliability) for a stack of its own.\n"
                    + yaml.safe_dump(data, sort_keys=False))
    return path


@dataclass
class OwnStack:
    """The suite's stack: its folder, config file and loaded config, and every command it ran."""

    root: Path
    config_path: Path
    config: Any
    commands: list[Command] = field(default_factory=list)
    owns_root: bool = True
    tree: Path | None = None   # (tests) another copy of the packages, which every process runs from

    @classmethod
    def create(cls, base_config: Path, parent: Path | None = None, tree: Path | None = None) -> OwnStack:
        # mkdtemp under /tmp keeps the MariaDB socket path short (a unix socket path has 107 bytes).
        root = Path(tempfile.mkdtemp(prefix="cg-faults-", dir=parent))
        path = write_config(base_config, root)
        config = load_config(path)
        written = yaml.safe_load(path.read_text())
        if config.proxy.port != written["proxy"]["port"] or config.stack.data_dir != root / "stack":
            raise StackFailure(f"{path}: the config kernel does not read what was written")
        return cls(root, path, config, owns_root=parent is None, tree=tree)

    # --- names and places -------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return Path(self.config.stack.data_dir)

    @property
    def proxy_url(self) -> str:
        return f"http://127.0.0.1:{self.config.proxy.port}"

    @property
    def names(self) -> list[str]:
        """Every process of the stack, in the launcher's start order."""
        names = ["redis", "mariadb", *self.config.services, "proxy"]
        invalidator = self.config.invalidator
        if invalidator is not None and invalidator.enabled and self.config.invalidations:
            names.append("invalidator")
        return names

    def pid_file(self, name: str) -> Path:
        return self.data_dir / "run" / f"{name}.pid"

    def pid(self, name: str) -> int | None:
        """The live pid of a process of the stack (from its pid file), or None."""
        try:
            pid = int(self.pid_file(name).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if alive(pid) else None

    def supervisor_pid(self) -> int | None:
        """The live pid of the stack's supervisor (the daemon `cachegate up` leaves running), or None."""
        return self.pid("supervisor")

    def supervisor_records(self) -> dict[str, Record]:
        """What the supervisor recorded of each process: restarts, how the last one ended."""
        return read_records(self.data_dir / "run" / "supervisor.json")

    def secret(self, name: str) -> str:
        return (self.data_dir / "secrets" / name).read_text().strip()

    def db(self) -> pymysql.connections.Connection:
        """A connection to the stack's database as its application user (autocommit, short timeouts)."""
        db = self.config.mariadb
        return pymysql.connect(host="127.0.0.1", port=db.port, user=db.user, password=db.password(),
                               database=db.database, autocommit=True, connect_timeout=2, read_timeout=10,
                               write_timeout=10, ssl_disabled=True)  # TLS setup costs ~40 ms on loopback

    def redis_admin(self) -> redis.Redis:
        """The stack's Redis as its `admin` ACL user (the launcher's; the gateway's user may not CONFIG)."""
        return redis.Redis(host="127.0.0.1", port=self.config.redis.port, username="admin",
                           password=self.secret("redis-admin-password"), socket_timeout=2,
                           socket_connect_timeout=2)

    # --- the cachegate command --------------------------------------------------------------------
    def cli(self, *args: str, timeout: float = CLI_TIMEOUT_S, check: bool = True) -> Command:
        argv = [*cachegate_argv(), *args, "--config", str(self.config_path)]
        started = time.monotonic()
        try:
            # `up` returns once the stack runs (its supervisor keeps none of its output): run() ends then.
            done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                  stderr=subprocess.STDOUT, timeout=timeout, env=_child_env(self.tree),
                                  cwd=self.tree or REPO)
            command = Command(argv[1:], done.returncode, time.monotonic() - started,
                              done.stdout.decode(errors="replace"))
        except subprocess.TimeoutExpired as exc:
            output = (exc.stdout or b"").decode(errors="replace")
            command = Command(argv[1:], -1, time.monotonic() - started,
                              output + f"\n(timed out after {timeout}s)")
        self.commands.append(command)
        if check and command.code != 0:
            raise StackFailure(f"cachegate {' '.join(args)} exited {command.code}:\n{command.output[-2000:]}")
        return command

    def up(self, seed_users: int = 0) -> Command:
        return self.cli("up", "--seed-users", str(seed_users))

    def down(self) -> Command:
        return self.cli("down", check=False)

    def running(self) -> dict[str, int | None]:
        return {name: self.pid(name) for name in self.names}

    def remove(self) -> None:
        """The folder, once everything in it has stopped (only a folder this stack made itself)."""
        if self.owns_root and not any(self.running().values()):
            shutil.rmtree(self.root, ignore_errors=True)


def alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")
