"""`./run mutate`: draw each target's mutants, run them within a budget, merge results, write mutation.md."""
from __future__ import annotations

import argparse
import datetime
import json
import signal
import sys
import time
from pathlib import Path

from mutation.mutants import Mutant, enumerate_mutants, sample
from mutation.report import load_equivalents, write_report
from mutation.runner import NOT_RUN, SURVIVED, Copy, Outcome, Plan, run_baseline, run_mutants
from mutation.targets import TARGETS, Target, target

ROOT = Path(__file__).resolve().parents[1]
SEED = 14


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="./run mutate", description=__doc__)
    parser.add_argument("--budget", type=float, default=45.0, metavar="MINUTES",
                        help="wall time for the whole run (default 45); each module gets an equal share of "
                             "what is left, and the mutants past it are reported not run")
    parser.add_argument("--module", action="append", default=[], metavar="NAME",
                        help="only this row of mutation/targets.py (again for more); default: every row")
    parser.add_argument("--sample", type=int, default=None, metavar="N",
                        help="mutants drawn per module (default: the row's own count)")
    parser.add_argument("--seed", type=int, default=SEED, help=f"seed of the sample (default {SEED})")
    parser.add_argument("--only", action="append", default=[], metavar="KEY",
                        help="run just this mutant (its key, as the report shows it); again for more")
    parser.add_argument("--survivors", action="store_true",
                        help="run again only the mutants the results list as survived, or as not run "
                             "after they survived (after a new test)")
    parser.add_argument("--list", action="store_true",
                        help="print the drawn mutants and their diffs, run none")
    parser.add_argument("--render", action="store_true",
                        help="write the report from the results and equivalent.yaml as they are, run none")
    parser.add_argument("--results", type=Path, default=ROOT / "mutation" / "results.json")
    parser.add_argument("--report", type=Path, default=ROOT / "mutation.md")
    parser.add_argument("--equivalent", type=Path, default=ROOT / "mutation" / "equivalent.yaml")
    args = parser.parse_args(argv)
    try:
        args.targets = [target(name) for name in args.module] or list(TARGETS)
    except KeyError as exc:
        parser.error(exc.args[0])
    return args


def _choose(row: Target, args: argparse.Namespace, previous: dict) -> tuple[int, list[Mutant]]:
    every = [m for m in enumerate_mutants(ROOT, row.path)
             if (not row.only or m.definition in row.only) and m.definition not in row.skip]
    if args.only:
        return len(every), [m for m in every if m.key in args.only]
    if args.survivors:
        # Survived, or survived once and then not run (a run cut short): what a new test has to answer.
        left = {k for k, v in previous.get("mutants", {}).items()
                if v["status"] == SURVIVED or (v["status"] == NOT_RUN and v.get("first_survived"))}
        return len(every), [m for m in every if m.key in left]
    count = row.sample if args.sample is None else args.sample
    return len(every), sample(every, count, args.seed, (ROOT / row.path).read_text())


def _record(mutant: Mutant, outcome: Outcome, source: str, before: dict | None) -> dict:
    today = datetime.date.today().isoformat()
    first = (before or {}).get("first_survived")
    if outcome.status == SURVIVED and not first:
        first = today
    return {"line": mutant.line, "definition": mutant.definition, "operator": mutant.operator,
            "diff": mutant.diff(source), "status": outcome.status, "killed_by": outcome.killed_by,
            "seconds": round(outcome.seconds, 1), "first_survived": first}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    results = json.loads(args.results.read_text()) if args.results.exists() else {"modules": {}}
    plans = []
    for row in args.targets:
        previous = results["modules"].get(row.name, {})
        enumerated, chosen = _choose(row, args, previous)
        plans.append((row, enumerated, chosen))
    if args.only and not any(chosen for _, _, chosen in plans):
        print(f"mutate: no mutant has the key(s) {args.only}", file=sys.stderr)
        return 2
    if args.render:
        write_report(args.report, results, load_equivalents(args.equivalent))
        print(f"mutate: report {args.report}")
        return 0
    if args.list:
        for row, enumerated, chosen in plans:
            print(f"## {row.name}: {len(chosen)} of {enumerated} mutants of {row.path}")
            for m in chosen:
                print(f"{m.key}\n{m.diff((ROOT / m.path).read_text())}\n")
        return 0

    # SIGTERM ends a run like Ctrl-C: the mutant running is stopped, the rest is reported not run. SIGINT is
    # set too: a shell's background job starts with it ignored, and so would the test runs it starts.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    equivalents = load_equivalents(args.equivalent)
    started = time.monotonic()
    deadline = started + args.budget * 60
    copy = Copy.make(ROOT)
    print(f"mutate: tests run in a copy of the tree: {copy.root}", flush=True)
    interrupted = False
    failed_baseline = []
    later: list = []
    ran: set[str] = set()
    try:
        for index, (row, enumerated, chosen) in enumerate(plans):
            previous = results["modules"].get(row.name, {})
            partial = bool(args.only or args.survivors)
            if partial and not chosen:
                continue  # nothing of this module asked for: its results stay as they are
            module = {**previous} if partial else {}
            module.update({"path": row.path, "tests": list(row.tests), "enumerated": enumerated,
                           "seed": args.seed, "ran_at": datetime.datetime.now(datetime.timezone.utc)
                           .strftime("%Y-%m-%d %H:%M UTC")})
            if not partial:
                module["sampled"] = len(chosen)
            mutants = module["mutants"] = dict(previous.get("mutants", {})) if partial else {}
            results["modules"][row.name] = module
            source = copy.source(row.path)
            if interrupted:
                for m in chosen:
                    mutants[m.key] = _record(m, Outcome(NOT_RUN, "run interrupted"), source,
                                             previous.get("mutants", {}).get(m.key))
                continue
            share = (deadline - time.monotonic()) / (len(plans) - index)

            def report(m: Mutant, outcome: Outcome, row=row, source=source, previous=previous,
                       mutants=mutants) -> None:
                mutants[m.key] = _record(m, outcome, source, previous.get("mutants", {}).get(m.key))
                ran.add(m.key)
                _save(args.results, results)
                shown = outcome.status
                if outcome.status == SURVIVED and m.key in equivalents:
                    shown = "equivalent"
                print(f"mutate: {row.name}: {shown:9} {m.path}:{m.line} {m.operator.removeprefix('core/')}"
                      f" {outcome.killed_by}", flush=True)

            print(f"mutate: {row.name}: {len(chosen)} of {enumerated} mutants of {row.path}, "
                  f"{share / 60:.1f} min", flush=True)
            plan = Plan(row.name, row.tests, chosen)
            try:
                baseline, timeout = run_baseline(copy, plan, deadline=time.monotonic() + share)
                module["baseline_seconds"] = round(baseline.seconds, 1)
                module["timeout"] = round(timeout)
                if baseline.status != SURVIVED:
                    failed_baseline.append(row.name)
                    module["baseline_failure"] = baseline.output[-3000:]
                    print(f"mutate: {row.name}: the unmutated tests did not pass:\n{baseline.output[-3000:]}",
                          file=sys.stderr)
                    for m in chosen:
                        report(m, Outcome(NOT_RUN, "the unmutated tests did not pass"))
                    continue
                left = run_mutants(copy, plan, chosen, baseline=baseline, timeout=timeout,
                                   deadline=time.monotonic() + share, report=report)
                if left:
                    later.append((plan, left, baseline, timeout, report))
            except KeyboardInterrupt:
                interrupted = True
                for m in chosen:
                    if m.key not in ran:
                        report(m, Outcome(NOT_RUN, "run interrupted"))
        # What a module could not run in its share gets the time the others left, in the table's order.
        for plan, left, baseline, timeout, report in later:
            try:
                rest = [] if interrupted else run_mutants(copy, plan, left, baseline=baseline,
                                                          timeout=timeout, deadline=deadline, report=report)
            except KeyboardInterrupt:
                interrupted = True
                rest = [m for m in left if m.key not in ran]
            for m in rest:
                report(m, Outcome(NOT_RUN, "run interrupted" if interrupted else "budget spent"))
            _save(args.results, results)
    finally:
        copy.remove()
        results.setdefault("runs", []).append({
            "at": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "modules": [row.name for row, _, chosen in plans if chosen or not (args.only or args.survivors)],
            "what": "only " + ", ".join(args.only) if args.only else "survivors" if args.survivors
            else f"sample (seed {args.seed})", "budget": args.budget,
            "minutes": round((time.monotonic() - started) / 60, 1), "interrupted": interrupted})
        _save(args.results, results)
        write_report(args.report, results, equivalents)
    print(f"mutate: report {args.report}, results {args.results}")
    if interrupted:
        return 130
    if failed_baseline:
        return 2
    open_ = [k for row, _, _ in plans for k, v in results["modules"][row.name]["mutants"].items()
             if v["status"] == SURVIVED and k not in equivalents]
    return 1 if open_ else 0


def _save(path: Path, results: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
