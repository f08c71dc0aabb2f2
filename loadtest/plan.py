"""What a run measures: the full plan, the --quick plan, and the command line that picks and adjusts them."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXED_CONNECTIONS = 64  # where the latency of the two modes is compared
# Filling the cache is bound by the miss path (proxy, backend, MariaDB), which peaks at a few dozen conns.
WARM_CONNECTIONS = 32


@dataclass(frozen=True)
class Plan:
    users: int
    sweep: tuple[int, ...]             # connections, for cache off and cache on
    reference_sweep: tuple[int, ...]   # connections, for the bare handler and the backend called directly
    variants: tuple[str, ...]          # extra cache-on scripts at FIXED_CONNECTIONS: zipf, basic, mixed
    warmup_s: int
    duration_s: int
    overhead_check: bool               # measure what counting statuses in Lua costs the client
    warm_limit_s: int                  # bound on filling the cache with every seeded id


FULL = Plan(users=100_000, sweep=(1, 8, 32, 64, 128, 256), reference_sweep=(8, 64, 256),
            variants=("zipf", "basic", "mixed"), warmup_s=2, duration_s=8, overhead_check=True,
            warm_limit_s=360)
QUICK = Plan(users=1_000, sweep=(8, 64), reference_sweep=(64,), variants=("mixed",), warmup_s=1, duration_s=1,
             overhead_check=False, warm_limit_s=60)


def _connections(text: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,8,64, got {text!r}") from None
    if not values or any(v < 1 or v > 10_000 for v in values):
        raise argparse.ArgumentTypeError(f"connections must be 1..10000, got {text!r}")
    return values


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="cachegate loadtest", description=(
        "Load test GET /users/{id} through the proxy, cache off and on (wrk), and write performance.md."))
    p.add_argument("--config", default=None, help="config file (default: $CACHEGATE_CONFIG or ./config.yaml)")
    p.add_argument("--quick", action="store_true",
                   help="about 20 s after the stack is up: a couple of 1 s points per mode, 1,000 users")
    p.add_argument("--users", type=int, default=None, help="seeded users to read (full: 100000)")
    p.add_argument("--connections", type=_connections, default=None, help="sweep, e.g. 1,8,32,64,128,256")
    p.add_argument("--duration", type=int, default=None, help="seconds measured per point (full: 8)")
    p.add_argument("--warmup", type=int, default=None, help="seconds of warm-up before each point (full: 2)")
    p.add_argument("--results", type=Path, default=None,
                   help="folder for results.json and raw wrk output (full: loadtest/results/full)")
    p.add_argument("--report", type=Path, default=None,
                   help="performance.md to write; plots go next to it (full: ./performance.md of the repo)")
    p.add_argument("--no-pin", dest="pin", action="store_false",
                   help="do not pin wrk to CPU 0 and the proxy to the other CPUs")
    p.add_argument("--status-count", choices=("lua", "wrk"), default="lua",
                   help="non-2xx counted by the scripts' response() (lua) or by wrk's status errors (wrk)")
    p.add_argument("--profile", choices=("auto", "yes", "no"), default="auto",
                   help="profile the proxy with py-spy during one extra cache-on point "
                        "(auto: full runs, when py-spy is installed)")
    p.add_argument("--keep-stack", action="store_true", help="leave running what this run started")
    p.add_argument("--section", choices=("main", "cluster"), default=None,
                   help="main: the one-node run that makes performance.md; cluster: a run on a Galera "
                        "cluster, kept in its own results and rendered into performance.md beside the main "
                        "run (default: cluster when the config's database has several nodes)")
    p.add_argument("--beside", type=Path, default=None, metavar="RESULTS.json",
                   help="the other section's results to render beside this run (default: the committed "
                        "loadtest/results/full or loadtest/results/cluster)")
    ab = p.add_argument_group("A/B", "the hit path's proxy CPU per request of this tree against an anchor, "
                                     "measured in turn in the same run")
    ab.add_argument("--vs", metavar="ANCHOR", default=None,
                    help="REF (a commit of this repository, its config.yaml), REF:CONFIG, or :CONFIG "
                         "(this tree with another config file)")
    ab.add_argument("--vs-target", metavar="RATIO", type=float, default=None,
                    help="report whether this tree's CPU per hit is at most RATIO times the anchor's")
    ab.add_argument("--vs-env", metavar="NAME=VALUE", action="append", default=[],
                    help="a CACHEGATE* setting of side B only (repeatable): e.g. "
                         "CACHEGATE__LOGGING__ACCESS_FORMAT=json against the anchor :config.yaml prices a "
                         "JSON access line")
    ab.add_argument("--vs-rounds", metavar="N", type=int, default=None,
                    help="measured points per side, taken in turn (full: 4, quick: 2)")
    ab.add_argument("--ab-only", action="store_true",
                    help="only the A/B comparison (needs --vs): no sweeps; "
                         "the report goes to the results folder")
    return p


def resolve(args: argparse.Namespace, section: str = "main") -> tuple[Plan, Path, Path]:
    """The plan after the options, the results folder and the report path (of `section`)."""
    plan = QUICK if args.quick else FULL
    if args.users is not None:
        plan = replace(plan, users=args.users)
    if args.connections is not None:
        plan = replace(plan, sweep=args.connections)
    if args.duration is not None:
        plan = replace(plan, duration_s=args.duration)
    if args.warmup is not None:
        plan = replace(plan, warmup_s=args.warmup)
    if plan.users < 1 or plan.duration_s < 1 or plan.warmup_s < 0:
        raise ValueError("--users and --duration must be at least 1, --warmup at least 0")
    if args.ab_only and not args.vs:
        raise ValueError("--ab-only needs --vs ANCHOR")
    if args.vs_env and not args.vs:
        raise ValueError("--vs-env sets side B of an A/B run: it needs --vs ANCHOR")
    if args.vs_rounds is not None and args.vs_rounds < 1:
        raise ValueError("--vs-rounds must be at least 1")
    quick_dir, full_dir = ("tmp/quick-ab", "ab") if args.ab_only else ("tmp/quick", "full")
    if section == "cluster":
        if args.ab_only or args.vs:
            raise ValueError("--vs and --ab-only compare the hit path of one proxy: "
                             "run them in the main section")
        quick_dir, full_dir = "tmp/quick-cluster", "cluster"
    default_results = REPO / "loadtest" / "results" / (quick_dir if args.quick else full_dir)
    results = (args.results or default_results).resolve()
    default_report = (results / "performance.md" if args.quick or args.ab_only else REPO / "performance.md")
    report = (args.report or default_report).resolve()
    return plan, results, report
