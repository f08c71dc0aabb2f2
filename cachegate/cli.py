"""The `cachegate` command: the stack (up, down, status), its parts (backend, proxy), admin calls, chores.

The composition root: the one module that may import every package of the project (docs/architecture.md).
Each command imports what it runs when it runs: `cachegate status` need not load the proxy (0.4 s).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Callable

from cachegate.config import Config, load_config
from cachegate.errors import ConfigError
from stack.process import StackError
from strategies.registry import REGISTRY


def _load(path: str | None) -> Config:
    """Every command checks the routes as the proxy does: with the strategy registry."""
    return load_config(path, strategies=REGISTRY)


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
    from backends.seed import credentials_path, seed
    config = _load(args.config)
    asyncio.run(seed(config, users=args.users, progress=ProgressBar(args.users)))
    print(f"demo credentials: {credentials_path(config)}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from backends.migrate import migrate
    applied = asyncio.run(migrate(_load(args.config)))
    print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")
    return 0


def cmd_backend(args: argparse.Namespace) -> int:
    from backends.runner import run_service
    config = _load(args.config)
    if args.name not in config.services:
        print(f"cachegate: unknown service {args.name!r}; known: {', '.join(sorted(config.services))}",
              file=sys.stderr)
        return 2
    run_service(args.name, config)
    return 0


def cmd_proxy(args: argparse.Namespace) -> int:
    from proxy.server import serve
    serve(_load(args.config), workers=args.workers)
    return 0


def cmd_invalidator(args: argparse.Namespace) -> int:
    from invalidator.__main__ import main as invalidator_main
    argv = ["--config", args.config] if args.config else []
    return invalidator_main(argv)


def cmd_check_config(args: argparse.Namespace) -> int:
    config = _load(args.file or args.config)
    print(describe(config))
    return 0


def describe(config: Config) -> str:
    """The route table as the proxy serves it, lifetimes resolved, as `cachegate check-config` prints it."""
    rows = [("#", "methods", "path", "upstream", "strategy", "auth", "key", "ttl", "tags / invalidates")]
    for r in config.routes:
        ttl = f"{r.ttl:g}s" if r.ttl is not None else ""
        extra = " ".join([*(f"tag:{t}" for t in r.tags), *(f"drops {i}" for i in r.invalidates)])
        rows.append((str(r.index), ",".join(r.methods), r.path, r.upstream, r.strategy, r.auth,
                     (r.key or "") + (" (per caller)" if r.scope == "caller" else ""), ttl, extra))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows]
    state = "on" if config.cache.enabled else "off"
    head = (f"{len(config.routes)} routes, cache {state}, default ttl {config.cache.default_ttl:g}s, "
            f"proxy {config.proxy.host}:{config.proxy.port}")
    found = [head, *lines]
    if config.invalidations:
        on = config.invalidator is not None and config.invalidator.enabled
        found.append(f"{len(config.invalidations)} invalidation rules (invalidator {'on' if on else 'off'}):")
        for rule in config.invalidations:
            what = [*rule.keys, *(f"tag:{t}" for t in rule.tags)]
            if rule.revokes is not None:
                what.append(f"revokes tokens of {rule.revokes.user} below {rule.revokes.version}")
            version = f"version {rule.version}" if rule.version else "no version"
            found.append(f"  {rule.table} ({version}): {', '.join(what)}")
    return "\n".join(found)


def cmd_admin(args: argparse.Namespace) -> int:
    """One call on the running proxy's admin listener, with the token from proxy.admin.token_file."""
    from stack.admin_client import admin_call
    config = _load(args.config)
    if args.action == "state":
        print(json.dumps(admin_call(config, "GET", "/-/admin/state"), indent=2, sort_keys=True))
    elif args.action == "cache":
        admin_call(config, "POST", "/-/admin/cache", {"enabled": args.switch == "on"})
        print(f"cache {args.switch}")
    elif args.action == "purge":
        kind = next(k for k in ("key", "url", "tag", "prefix") if getattr(args, k) is not None)
        what = {kind: getattr(args, kind), **({"caller": args.caller} if args.caller else {})}
        answer = admin_call(config, "POST", "/-/admin/purge", what)
        removed = answer.get("removed", 0)
        named = f"url {what['url']} (key {answer.get('key')})" if kind == "url" else f"{kind} {what[kind]}"
        print(f"purged {named}: {removed} {'entry' if removed == 1 else 'entries'} removed")
    else:
        answer = admin_call(config, "POST", "/-/admin/reload")
        print(f"reloaded: config generation {answer.get('generation')}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """What the running proxy would do with METHOD URL, and what its cache holds for it."""
    from urllib.parse import urlencode

    from stack.admin_client import admin_call
    config = _load(args.config)
    query = {"method": args.method, "target": args.url, **({"caller": args.caller} if args.caller else {})}
    answer = admin_call(config, "GET", "/-/admin/explain?" + urlencode(query))
    print(json.dumps(answer, indent=2) if args.json else format_explain(answer))
    return 0


def format_explain(answer: dict) -> str:
    """`cachegate explain` as a person reads it (--json prints the admin endpoint's answer as it is)."""
    request = answer["request"]
    if "refused" in answer:
        refused = answer["refused"]
        return (f"{request['method']} {request['target']}: refused before the cache with {refused['status']} "
                f"{refused['code']}: {refused['message']}")
    rule = answer["rule"]
    lines = [f"{request['method']} {request['target']}",
             f"  rule        routes[{rule['index']}] {rule['name']}: {rule['strategy']}, "
             f"upstream {rule['upstream']}, auth {rule['auth']}, scope {rule['scope']}",
             f"  upstream    {request['upstream_target']}"]
    if rule["key"]:
        lifetimes = ", ".join(f"{name} {_seconds(rule[name])}" for name in ("ttl", "negative_ttl", "grace")
                              if rule[name] is not None)
        lines.append(f"  key         {answer['key'] or rule['key'] + ' (give --caller to render it)'}"
                     + (f"   ({lifetimes})" if lifetimes else ""))
    if rule["tags"]:
        generations = answer.get("tag_generations", {})
        lines.append("  tags        " + ", ".join(f"{t} (generation {generations.get(t, '?')})"
                                                  for t in rule["tags"]))
    if rule["invalidates"]:
        lines.append("  invalidates " + ", ".join(rule["invalidates"]))
    lines.append(f"  cache       {answer['cache']}")
    entry = answer.get("entry")
    if entry is not None:
        lines.append(f"  entry       {_entry_line(entry)}")
        if "served" in entry:
            lines.append(f"  served      {entry['served']}")
    elif answer.get("note"):
        lines.append(f"  entry       ({answer['note']})")
    return "\n".join(lines)


def _entry_line(entry: dict) -> str:
    if entry["state"] == "absent":
        return "none (a miss)"
    parts = [entry["state"]]
    if "version" in entry:
        parts += [f"version {entry['version']}", f"status {entry['status']}", f"age {_seconds(entry['age'])}",
                  f"fresh for {_seconds(entry['fresh_for'])}",
                  f"then stale for {_seconds(entry['stale_for'])}",
                  f"{entry['size']} bytes (body {entry['body_size']})",
                  "tags " + (", ".join(entry["tags"]) or "none")]
    else:
        parts.append(f"version floor {entry['version_floor']}")
        if "writes_in_flight" in entry:
            parts.append(f"{entry['writes_in_flight']} write(s) in flight, fenced for "
                         f"{_seconds(entry['fenced_for'])}")
    if entry["epoch"] != entry["current_epoch"]:
        parts.append(f"epoch {entry['epoch']} (current {entry['current_epoch']})")
    if entry.get("expires_in") is not None:
        parts.append(f"Redis drops it in {_seconds(entry['expires_in'])}")
    return ", ".join(parts)


def _seconds(value: float) -> str:
    return f"{value:g}s"


def cmd_loadtest(args: argparse.Namespace) -> int:
    from loadtest.runner import main as loadtest_main
    argv = list(args.rest)
    if args.config:
        argv = ["--config", args.config, *argv]
    return int(loadtest_main(argv) or 0)


def cmd_reliability(args: argparse.Namespace) -> int:
    from loadtest.reliability.runner import main as reliability_main
    argv = list(args.rest)
    if args.config:
        argv = ["--config", args.config, *argv]
    return int(reliability_main(argv) or 0)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cachegate",
                                     description="A caching API gateway and its local stack.")
    parser.add_argument("--config", default=None,
                        help="config file (default: $CACHEGATE_CONFIG or ./config.yaml)")
    parser.add_argument("--version", action="version", version=f"cachegate {_version()}")
    # Subcommands accept --config too (`cachegate backend users --config X`),
    # without clobbering the global one.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, parents=[common], help=help, description=help)
        p.set_defaults(func=func)
        return p

    p = add("up", cmd_up, "start Redis, MariaDB, the services and the proxy (what is not running yet) under "
            "a supervisor that restarts whichever dies; returns once all run")
    p.add_argument("--seed-users", type=int, default=1000, help="demo users to create when there are none")
    add("down", cmd_down, "stop the supervisor, then everything `up` started")
    add("status", cmd_status, "one line per process and the supervisor: name, pid, address, state, restarts")
    p = add("seed", cmd_seed, "make sure the first N demo users exist (user000001..userN); the ones that "
            "exist are kept, passwords included")
    p.add_argument("--users", type=_user_count, default=10000, metavar="N",
                   help="how many seeded users there should be in all (1..999999, default 10000)")
    p = add("db", cmd_db, "database chores")
    p.add_argument("action", choices=["migrate"])
    p = add("backend", cmd_backend, "serve one backend service in the foreground")
    p.add_argument("name")
    p = add("proxy", cmd_proxy, "serve the proxy in the foreground")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: proxy.workers)")
    p = add("invalidator", cmd_invalidator,
            "serve the cache invalidator in the foreground (binary log -> cache)")
    p = add("check-config", cmd_check_config, "validate a config file and print its route table")
    p.add_argument("file", nargs="?", default=None)
    p = add("admin", cmd_admin, "call the running proxy's admin listener (token: proxy.admin.token_file)")
    verbs = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    verbs.add_parser("state", parents=[common], help="generation, cache switch, breaker, readiness checks")
    v = verbs.add_parser("cache", parents=[common], help="turn the cache on (a new key epoch) or off")
    v.add_argument("switch", choices=["on", "off"])
    v = verbs.add_parser("purge", parents=[common],
                         help="drop cache entries by key, URL, tag or key prefix; says how many it removed")
    one = v.add_mutually_exclusive_group(required=True)
    one.add_argument("--key", help='a rendered key, e.g. "user:42"')
    one.add_argument("--url", help='the entry a GET of this URL reads, e.g. "/users/42" (the rule renders '
                                   'the key)')
    one.add_argument("--tag", help='a tag of the rules or of the upstream (Cache-Tag), e.g. "user-lists"')
    one.add_argument("--prefix", help='every key that starts with it, e.g. "user-search:"')
    v.add_argument("--caller", help="with --url: the user id, for a key that names its caller")
    verbs.add_parser("reload", parents=[common], help="load config.yaml again without a restart")
    p = add("explain", cmd_explain,
            "what the running proxy does with a request, and what its cache holds for it")
    p.add_argument("method", help="GET, HEAD, POST, ...")
    p.add_argument("url", help='the request target or URL, e.g. "/users/42?x=1"')
    p.add_argument("--caller", help="the user id a token would carry, for a key that names its caller")
    p.add_argument("--json", action="store_true", help="print the admin endpoint's JSON answer")
    add("loadtest", cmd_loadtest, "run the load test (every argument after it goes to loadtest.runner)")
    add("reliability", cmd_reliability,
        "run the fault suite and write reliability.md (every argument after it goes to its runner)")
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("cachegate")
    except PackageNotFoundError:  # run from a tree that was never installed
        return "unknown (not installed)"


def _user_count(text: str) -> int:
    from backends.seed import MAX_USERS
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of users, got {text!r}") from None
    if not 1 <= count <= MAX_USERS:
        raise argparse.ArgumentTypeError(f"expected 1..{MAX_USERS} users, got {count}")
    return count


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
    argv = sys.argv[1:] if argv is None else argv
    parser = build_parser()
    at = _command_index(argv)
    rest: list[str] = []
    if argv[at:at + 1] in (["loadtest"], ["reliability"]):
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


if __name__ == "__main__":
    sys.exit(main())
