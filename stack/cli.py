"""The `cachegate` command: run the stack (up, down, status), its parts (backend, proxy) and its chores."""
from __future__ import annotations

import argparse
import asyncio
import inspect
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from stack.process import StackError

if TYPE_CHECKING:
    from proxy.config import Config


_OURS = {"proxy", "backends", "strategies", "stack", "loadtest"}


def _run(result: Any) -> Any:
    return asyncio.run(result) if inspect.isawaitable(result) else result


def _load(path: str | None) -> Config:
    from proxy.config import load_config
    return load_config(Path(path) if path else Path(os.environ.get("CACHEGATE_CONFIG", "config.yaml")))


class ProgressBar:
    """A one-line progress bar on stderr, redrawn at most ten times a second."""

    def __init__(self, total: int, label: str = "seed") -> None:
        self.total, self.label, self._drawn = max(total, 1), label, 0.0

    def __call__(self, done: int, total: int | None = None) -> None:
        total = total or self.total
        now = time.monotonic()
        if done < total and now - self._drawn < 0.1:
            return
        self._drawn = now
        filled = int(30 * done / total)
        sys.stderr.write(f"\r{self.label} [{'#' * filled}{'.' * (30 - filled)}] {done}/{total}")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()


def cmd_up(args: argparse.Namespace) -> int:
    from stack.launcher import up
    up(_load(args.config), seed_users=args.seed_users)
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    from stack.launcher import down
    down(_load(args.config))
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from stack.launcher import status
    rows = status(_load(args.config))
    for row in rows:
        print(row)
    return 0 if all(row.up for row in rows) else 3


def cmd_seed(args: argparse.Namespace) -> int:
    from backends.seed import seed
    config = _load(args.config)
    _run(seed(config, users=args.users, progress=ProgressBar(args.users)))
    print(f"demo credentials: {config.stack.data_dir / 'seed-users.json'}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from backends.migrate import migrate
    applied = _run(migrate(_load(args.config)))
    print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    return 0


def cmd_backend(args: argparse.Namespace) -> int:
    from backends.runner import run_service
    config = _load(args.config)
    if args.name not in config.services:
        print(f"cachegate: unknown service {args.name!r}; known: {', '.join(sorted(config.services))}",
              file=sys.stderr)
        return 2
    _run(run_service(args.name, config))
    return 0


def cmd_proxy(args: argparse.Namespace) -> int:
    from proxy.server import serve
    _run(serve(_load(args.config), workers=args.workers))
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    from proxy.router import describe
    config = _load(args.file or args.config)
    print(describe(config))
    return 0


def cmd_loadtest(args: argparse.Namespace) -> int:
    from loadtest.runner import main as loadtest_main
    argv = list(args.rest)
    if args.config:
        argv = ["--config", args.config, *argv]
    return int(loadtest_main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cachegate",
                                     description="A caching API gateway and its local stack.")
    parser.add_argument("--config", default=None,
                        help="config file (default: $CACHEGATE_CONFIG or ./config.yaml)")
    # Subcommands accept --config too (`cachegate backend users --config X`),
    # without clobbering the global one.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("up", cmd_up, "start Redis, MariaDB, the services and the proxy (what is not running yet)")
    p.add_argument("--seed-users", type=int, default=1000, help="demo users to create when there are none")
    add("down", cmd_down, "stop everything `up` started")
    add("status", cmd_status, "one line per process: name, pid, address, up/down")
    p = add("seed", cmd_seed, "create demo users and their known credentials")
    p.add_argument("--users", type=int, default=10000)
    p = add("db", cmd_db, "database chores")
    p.add_argument("action", choices=["migrate"])
    p = add("backend", cmd_backend, "serve one backend service in the foreground")
    p.add_argument("name")
    p = add("proxy", cmd_proxy, "serve the proxy in the foreground")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: proxy.workers)")
    p = add("check-config", cmd_check_config, "validate a config file and print its route table")
    p.add_argument("file", nargs="?", default=None)
    add("loadtest", cmd_loadtest, "run the load test (every argument after it goes to loadtest.runner)")
    return parser


def _command_index(argv: list[str]) -> int:
    """Where the subcommand is: the first word that is neither a global option nor its value."""
    i = 0
    while i < len(argv):
        if argv[i] == "--config":
            i += 2
        elif argv[i].startswith("-"):
            i += 1
        else:
            return i
    return len(argv)


def main(argv: list[str] | None = None) -> int:
    from proxy.errors import ConfigError
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    at = _command_index(argv)
    rest: list[str] = []
    if argv[at:at + 1] == ["loadtest"]:
        # Everything after `loadtest` belongs to its runner, options included: argparse must not see it.
        argv, rest = argv[:at + 1], argv[at + 1:]
    args = parser.parse_args(argv)
    args.rest = rest
    try:
        return args.func(args)
    except ConfigError as exc:
        print(f"cachegate: {exc}", file=sys.stderr)
        return 2
    except StackError as exc:
        print(f"cachegate: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `cachegate status | head`: the reader left, nothing more to say
        sys.stderr.close()
        return 141
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in _OURS:
            raise
        print(f"cachegate: {args.command}: {exc.name} is not available in this build", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
