"""`python -m loadtest.reliability [--quick]`: the fault suite on a stack of its own, and reliability.md.

Order of a run: write a config (free ports, a private folder) -> `cachegate up` with seeded users ->
tokens, paths and trips -> the bad-input and token-attack suites -> each scenario with a fresh history
(the stack made whole again before each one) -> `cachegate down` -> results.json, raw histories, the report.
The run is VALID only when no scenario and no suite saw anything unexpected; otherwise INVALID, exit 1.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import resource
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import aiohttp
import pymysql
import redis

from loadtest import procstat
from loadtest.reliability import execute, population, scenarios, suites
from loadtest.reliability.faults import Faults, wait_for
from loadtest.reliability.ownstack import REPO, OwnStack, StackFailure
from stack.net import http_ok

EXIT_VALID, EXIT_INVALID, EXIT_USAGE, EXIT_FAILED = 0, 1, 2, 3
HARNESS_ERRORS = (StackFailure, OSError, asyncio.TimeoutError, aiohttp.ClientError, pymysql.MySQLError,
                  redis.RedisError)
JWT = "eyJhbGciOi"   # base64 of '{"alg":' : how every token the stack issues begins
SEED_USERS = 2000
TOKEN_REFRESH_S = 300.0       # tokens live 15 min (auth.token_ttl): new ones well before
RUN_LIMIT_S = {True: 240.0, False: 1200.0}   # a run that passes this stops after its current scenario


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest.reliability", description=(
        "Run the fault suite against a stack it starts (free ports, a private folder) and write "
        "reliability.md, results.json and the raw histories."))
    p.add_argument("--quick", action="store_true",
                   help=f"the CI subset ({', '.join(scenarios.QUICK_NAMES)}) with short phases")
    p.add_argument("--config", type=Path, default=REPO / "config.yaml",
                   help="the config the suite's own stack is made from (ports and folders replaced)")
    p.add_argument("--only", action="append", metavar="SCENARIO",
                   help=f"run only these scenarios (repeatable): {', '.join(s.name for s in scenarios.ALL)}")
    p.add_argument("--results", type=Path, default=None,
                   help="folder for results.json and raw/ (full: loadtest/results/reliability)")
    p.add_argument("--report", type=Path, default=None,
                   help="the report (full: ./reliability.md of the repo; quick: in the results folder)")
    p.add_argument("--keep-stack", action="store_true", help="leave the stack running (and its folder)")
    return p


def _paths(args: argparse.Namespace) -> tuple[Path, Path]:
    sub = "tmp/reliability-quick" if args.quick else "reliability"
    results = (args.results or REPO / "loadtest" / "results" / sub).resolve()
    default = results / "reliability.md" if args.quick else REPO / "reliability.md"
    report = (args.report or default).resolve()
    return results, report


def say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None, *, tree: Path | None = None, stack_parent: Path | None = None) -> int:
    """The command. `tree` (tests) is another copy of the packages (a planted bug, say): the stack's every
    process, its supervisor and each restart included, runs from it."""
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser().parse_args(argv)
    try:
        chosen = scenarios.select(args.quick, args.only)
    except ValueError as exc:
        say(f"reliability: {exc}")
        return EXIT_USAGE
    results_dir, report_path = _paths(args)
    _raise_fd_limit()
    run: dict[str, Any] = {
        "generated_at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "quick": args.quick,
        "command": shlex.join(["python", "-m", "loadtest.reliability", *argv]),
        "machine": procstat.machine(), "software": procstat.software("not used"),
        "scenarios": [], "problems": [], "timing": vars(scenarios.QUICK_TIMING if args.quick
                                                        else scenarios.FULL_TIMING)}
    raw = results_dir / "raw"
    _clear(results_dir)
    started = time.monotonic()
    try:
        stack = OwnStack.create(args.config, stack_parent, tree)
    except (StackFailure, OSError, ValueError) as exc:
        say(f"reliability: cannot write the suite's config: {exc}")
        return EXIT_FAILED
    if tree is not None:
        run["tree"] = str(tree)
    secrets: set[str] = set()
    try:
        asyncio.run(_execute(run, stack, chosen, args.quick, raw, started, secrets))
    except HARNESS_ERRORS as exc:
        run["problems"].append(f"the harness failed: {type(exc).__name__}: {exc}")
        run["failed"] = str(exc)
    finally:
        secrets |= _stack_secrets(stack)
        if not args.keep_stack:
            stack.down()
            left = {name: pid for name, pid in stack.running().items() if pid}
            if left:
                run["problems"].append(f"still running after `cachegate down`: {left}")
        commands = _commands(stack)
        if run["problems"]:
            # The processes' own account of what went wrong, kept before their folder goes.
            run["log_errors"] = _log_errors(stack.data_dir / "logs")
        if not args.keep_stack:
            stack.remove()
    run["elapsed_s"] = round(time.monotonic() - started, 1)
    run["stack_dir"] = str(stack.root)
    commands = _redact(run, commands, secrets)
    run["valid"] = not run["problems"]
    (raw / "commands.txt").write_text(commands)
    from loadtest.reliability import report
    report.write(run, results_dir, report_path)
    say(f"report: {report_path}\nresults: {results_dir / 'results.json'}")
    if "failed" in run:
        say(f"FAILED: {run['failed']}")
        return EXIT_FAILED
    if not run["valid"]:
        say("INVALID run:\n  " + "\n  ".join(run["problems"]))
        return EXIT_INVALID
    return EXIT_VALID


async def _execute(run: dict[str, Any], stack: OwnStack, chosen: list[scenarios.Scenario], quick: bool,
                   raw: Path, started: float, secrets: set[str]) -> None:
    say(f"stack: {stack.root} (config {stack.config_path})")
    await asyncio.to_thread(stack.up, SEED_USERS)
    faults = Faults(stack)
    run["supervisor"] = stack.supervisor_pid()
    people = await population.build(stack)
    secrets.update(c.authorization.split(" ", 1)[1] for c in people.everyone)
    run["population"] = {"writers": len(people.callers), "victim": people.victim.user_id,
                         "seeded": len(people.seeded),
                         "paths": len(people.paths), "trips": len(people.trips)}
    say("suites: bad input, token attacks")
    run["suites"] = await suites.run(stack, people)
    for name in ("bad_input", "token_attacks"):
        for finding in run["suites"][name]["findings"]:
            run["problems"].append(f"{name}: {finding['name']} ({finding['target']}): {finding['finding']}")
    timing = scenarios.QUICK_TIMING if quick else scenarios.FULL_TIMING
    tokens_at = time.monotonic()
    for scenario in chosen:
        if time.monotonic() - started > RUN_LIMIT_S[quick]:
            run["problems"].append(f"stopped before {scenario.name}: the run took over "
                                   f"{RUN_LIMIT_S[quick]:.0f} s")
            break
        before = await asyncio.to_thread(_make_whole, stack)
        if time.monotonic() - tokens_at > TOKEN_REFRESH_S:
            people = await _fresh_tokens(stack, people)
            secrets.update(c.authorization.split(" ", 1)[1] for c in people.everyone)
            tokens_at = time.monotonic()
        say(f"scenario {scenario.name}: {scenario.expect}")
        ctx = execute.Run(stack, faults, people, timing, raw)
        try:
            result = await execute.run(scenario, ctx)
        except HARNESS_ERRORS as exc:
            # The next scenario starts from a whole stack again; this one has no verdict.
            run["problems"].append(f"{scenario.name}: the harness failed: {type(exc).__name__}: {exc}")
            say(f"  the harness failed: {exc}")
            continue
        if before:
            result["restarted_before"] = before
        run["scenarios"].append(result)
        verdict = "ok" if result["valid"] else "; ".join(result["problems"])
        say(f"  {result['operations']} operations, {result['server_errors']} 5xx, "
            f"recovered after {result['recovered_after_s'] or 0:.1f} s: {verdict}")
        run["problems"] += [f"{scenario.name}: {p}" for p in result["problems"]]


async def _fresh_tokens(stack: OwnStack, people: population.Population) -> population.Population:
    callers = await population.tokens(stack, population.known_users(stack))
    return population.Population(callers[:-1], callers[-1], people.seeded, people.paths, people.trips)


def _make_whole(stack: OwnStack) -> list[str]:
    """Every process up and the proxy answering before a scenario starts; names what had to be restarted
    (`cachegate up` has the supervisor bring it back, or starts a new supervisor if that one died)."""
    down = [name for name, pid in stack.running().items() if pid is None]
    if stack.supervisor_pid() is None:
        down.append("supervisor")
    if down:
        stack.up()
    if not wait_for(lambda: http_ok("127.0.0.1", stack.config.proxy.port, "/-/health", 0.5), 30):
        raise StackFailure("the proxy does not answer /-/health")
    return down


def _stack_secrets(stack: OwnStack) -> set[str]:
    """What `cachegate up` generated (passwords, the admin token, the signing key): never in an output."""
    found = set()
    folder = stack.data_dir / "secrets"
    for path in folder.iterdir() if folder.is_dir() else ():
        try:
            found.update(line.strip() for line in path.read_text().splitlines()
                         if len(line.strip()) >= 16 and "-----" not in line)
        except OSError:
            pass
    return found


def _redact(run: dict[str, Any], commands: str, secrets: set[str]) -> str:
    """A secret of the stack (or any JWT) found in what the run writes is a problem, and is cut out."""
    text = json.dumps(run)
    leaked = sorted({where for where, body in (("results", text), ("commands", commands))
                     for secret in secrets if secret in body} | ({"results"} if JWT in text else set()))
    if leaked:
        clean = json.loads(_cut(text, secrets))
        run.clear()
        run.update(clean)
        where = ", ".join(leaked)
        run["problems"].append(f"harness: a secret of the stack was about to be written to {where}")
    return _cut(commands, secrets)


def _cut(text: str, secrets: set[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "<redacted>")
    return text.replace(JWT, "<redacted>")


def _raise_fd_limit() -> None:
    """The cold burst and the abuse need a few thousand sockets of our own."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _clear(results_dir: Path) -> None:
    """Raw files of an earlier run would be mistaken for this one's."""
    raw = results_dir / "raw"
    if raw.is_dir():
        for path in raw.iterdir():
            if path.is_file():
                path.unlink()
    (results_dir / "results.json").unlink(missing_ok=True)
    raw.mkdir(parents=True, exist_ok=True)


ERROR_MARKS = ("Traceback", " ERROR ", "unexpected error")
ERROR_LINES = 60   # per log file: a traceback or two, not the whole log


def _log_errors(logs: Path) -> dict[str, list[str]]:
    """Per log file of the stack, its error lines and the traceback lines after them (bounded)."""
    found: dict[str, list[str]] = {}
    for path in sorted(logs.glob("*.log")) if logs.is_dir() else []:
        kept: list[str] = []
        tail = 0
        for line in path.read_text(errors="replace").splitlines():
            if any(mark in line for mark in ERROR_MARKS):
                tail = 25
            if tail > 0 and len(kept) < ERROR_LINES:
                kept.append(line[:300])
                tail -= 1
        if kept:
            found[path.name] = kept
    return found


def _commands(stack: OwnStack) -> str:
    out = []
    for command in stack.commands:
        out.append(f"$ cachegate {shlex.join(command.argv)}   # exit {command.code}, {command.seconds:.1f} s")
        out.append(command.output.rstrip())
        out.append("")
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.exit(main())
