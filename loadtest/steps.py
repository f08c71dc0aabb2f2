"""Steps around the measured sweeps: the reference servers, the price of counting statuses, the fill."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from loadtest import procstat, promstats, wrk
from loadtest.measure import Measurer, PointSpec
from loadtest.plan import FIXED_CONNECTIONS, WARM_CONNECTIONS, Plan
from loadtest.progress import Bar
from loadtest.target import BareServer, Stack

OVERHEAD_S = 4  # each of the four runs that price response() in Lua


def references(measurer: Measurer, plan: Plan, run: dict[str, Any], scratch: Path, stack: Stack,
                bearer: dict[str, str], cpus: set[int] | None) -> None:
    """The bare aiohttp handler and the users backend called directly, measured in the same run."""
    bare = BareServer(scratch / "bare-server.log")
    pid = bare.start()
    try:
        if cpus is not None:
            procstat.pin([pid], cpus)
        measurer.pids = _with_bare(stack, pid)
        if plan.overhead_check:
            run["client_overhead"] = _price_status_counting(measurer, bare.url, bearer)
        for conns in plan.reference_sweep:
            measurer.measure(PointSpec("bare", bare.url, "get_uniform", conns, bearer, ("bare",),
                                       through_proxy=False))
    finally:
        measurer.pids = stack.pids
        bare.stop()
    for conns in plan.reference_sweep:
        measurer.measure(PointSpec("backend", stack.users_url, "get_uniform", conns, bearer,
                                   ("users", "mariadb"), through_proxy=False))


def _with_bare(stack: Stack, pid: int) -> Callable[[], dict[str, list[int]]]:
    return lambda: {**stack.pids(), "bare": [pid]}


def _price_status_counting(measurer: Measurer, url: str, bearer: dict[str, str]) -> dict[str, Any]:
    """The same point with and without response() in Lua, twice in turn: what counting statuses costs wrk.

    Taken in turn so that a change in the machine's load between the two does not pass for the cost.
    """
    plain = {k: v for k, v in bearer.items() if k != "count"}
    runs: dict[str, list[dict[str, Any]]] = {"lua": [], "wrk": []}
    for attempt in (1, 2):
        for name, script_args in (("lua", {**plain, "count": "1"}), ("wrk", plain)):
            runs[name].append(measurer.measure(PointSpec(
                f"overhead-{name}{attempt}", url, "get_uniform", FIXED_CONNECTIONS, script_args, ("bare",),
                through_proxy=False, warmup=False, seconds=OVERHEAD_S)))
    out: dict[str, Any] = {}
    for name, points in runs.items():
        requests = sum(p["requests"] for p in points)
        out[name] = {"rps": requests / sum(p["duration_s"] for p in points),
                     "wrk_cpu_us_per_request": sum(p["cpu_us_per_request"]["wrk"] * p["requests"]
                                                   for p in points) / max(requests, 1),
                     "ids": [p["id"] for p in points]}
    return out


def warm(measurer: Measurer, stack: Stack, plan: Plan, ids: list[int],
         bearer: dict[str, str]) -> dict[str, Any]:
    """GET every seeded id once through the proxy, in order: a miss fills it, an entry already there stays.

    Done once the proxy answered len(ids) + connections requests on the route: requests go out in id order
    with at most `connections` in flight, so by then every id of the first pass has been answered.
    """
    url, route = stack.proxy_url + "/-/metrics", stack.route
    start = promstats.scrape(url)
    base, upstream_base = promstats.route_total(start, route), promstats.upstream_total(start, "users")
    started_at = time.time()
    bar = Bar(f"warm {len(ids)} keys", len(ids))
    needed = len(ids) + WARM_CONNECTIONS
    last = {"at": 0.0, "answered": 0.0}

    def done() -> bool:
        now = time.monotonic()
        if now - last["at"] >= 0.25:
            last["at"], last["answered"] = now, promstats.route_total(promstats.scrape(url), route) - base
            bar.update(min(last["answered"], len(ids)))
        return last["answered"] >= needed

    argv = wrk.command(stack.proxy_url, "warm", connections=WARM_CONNECTIONS, duration_s=plan.warm_limit_s,
                       script_args={k: v for k, v in bearer.items() if k != "count"}, cpu=measurer.wrk_cpu)
    raw = measurer.raw_path("warm")
    result = wrk.run(argv, raw, stop_when=done, limit_s=plan.warm_limit_s)
    measurer.commands.append(result.command)
    last["at"] = 0.0
    complete = done()
    filled = promstats.upstream_total(promstats.scrape(url), "users") - upstream_base
    bar.finish(f"{result.requests} requests, {filled:.0f} upstream" + ("" if complete else "  INCOMPLETE"))
    # SIGINT is how we stop it: wrk's exit code after it is not a failure.
    problems = [p for p in result.problems if not p.startswith("wrk exited")]
    if not complete:
        problems.append(f"only {last['answered']:.0f} of {needed} requests answered "
                        f"within {plan.warm_limit_s}s")
    measurer.problems.extend(f"warm: {p}" for p in problems)
    return {"command": result.command, "raw": measurer.relative(raw), "requests": result.requests,
            "started_at": started_at, "connections": WARM_CONNECTIONS,
            "seconds": result.wall_s, "upstream_requests": filled, "problems": problems}
