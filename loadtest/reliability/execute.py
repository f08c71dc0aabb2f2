"""One scenario from start to verdict: traffic with a fresh history, the fault, recovery, the final state.

Timeline: mixed traffic (and the database observer, and a /-/ready probe) for `baseline_s`; the fault; the
component back (by itself, or restarted, resumed or restored by the harness); `after_s` more traffic; then
every entity the history touched is read through the gateway and compared with its row in MariaDB.
"""
from __future__ import annotations

import asyncio
import time
from collections import Counter
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from loadtest.reliability import checker, history, summary, traffic
from loadtest.reliability.abuse import Abuse, Plan as AbusePlan
from loadtest.reliability.faults import Faults, Healed, wait_for
from loadtest.reliability.ownstack import OwnStack
from loadtest.reliability.scenarios import (BURST_CLIENTS, BURST_ROUNDS, FLOOD_FD_LIMIT,
                                            PROXY_KILL_IN_FLIGHT_S, REDIS_FULL_HEADROOM, Scenario, Timing)
from loadtest.reliability.history import READ, WRITE
from loadtest.reliability.traffic import Population, Recorder

READY_EVERY_S = 0.25
FINAL_CONCURRENCY = 8
IN_FLIGHT_WAIT_S = 5.0
VIOLATIONS_KEPT = 1000   # per rule in results.json (the report lists the first few; the raw history has all)
# What each abuse scenario opens, and the proxy's file limit meanwhile (None: left as it is).
ABUSE = {"slow-clients": (AbusePlan(idle=300, slow_headers=300, big_body=100), None),
         "connection-flood": (AbusePlan(idle=2300, slow_headers=0, big_body=0), FLOOD_FD_LIMIT)}
METRICS = ("cachegate_epoch_bumps_total", "cachegate_redis_errors_total", "cachegate_store_rejected_total")


@dataclass
class Run:
    """What a scenario needs: the stack, its faults, the population, the plan's knobs, where raw files go."""

    stack: OwnStack
    faults: Faults
    people: Population
    timing: Timing
    raw_dir: Path
    per_user: int = 3
    fresh: int = 3
    seed: str = "1"   # with the scenario's name: every scenario draws its own keys, the same in every run


async def run(scenario: Scenario, ctx: Run) -> dict[str, Any]:
    rec = Recorder()
    stop = asyncio.Event()
    base = ctx.stack.proxy_url
    observer = traffic.Observer(ctx.stack.db, [c.user_id for c in ctx.people.everyone])
    ready: list[tuple[float, int]] = []
    metrics_before, proxy_before = _metrics(base), ctx.stack.pid("proxy")
    tasks = [asyncio.create_task(make()) for make in traffic.clients(
        ctx.people, rec, base, stop, per_user=ctx.per_user, fresh=ctx.fresh, seed=_seed(ctx, scenario))]
    tasks += [asyncio.create_task(observer.run(rec, stop)),
              asyncio.create_task(_probe(base, rec, stop, ready))]
    extra: dict[str, Any] = {}
    try:
        await asyncio.sleep(ctx.timing.baseline_s)   # the scenario's timeline: traffic before the fault
        fault_at, healed = await FAULTS[scenario.fault](scenario, ctx, rec, extra)
        healed_at = rec.now()
        await asyncio.sleep(ctx.timing.after_s)      # the scenario's timeline: traffic after recovery
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    traffic_end = rec.now()
    final = await _final_reads(rec, ctx)
    rows = await asyncio.to_thread(_rows, ctx.stack, {op.key for op in final})
    lag = _fence_lifetime(ctx.stack.config)
    found = checker.check(rec.ops, rows, final, lag=lag)
    window = summary.Window(fault_at, healed_at, traffic_end)
    raw = ctx.raw_dir / f"{scenario.name}.history.csv.gz"
    history.write_csv([*rec.ops, *final], raw)
    result: dict[str, Any] = {
        "name": scenario.name, "fault": scenario.fault, "target": scenario.target, "expect": scenario.expect,
        "timing": vars(ctx.timing), "fault_at_s": round(fault_at, 3), "healed_at_s": round(healed_at, 3),
        "traffic_end_s": round(traffic_end, 3), "healed": healed.as_json(),
        **summary.judge(scenario, window, rec.ops),
        "writes": _writes(rec.ops),
        "hit_ratio": {"before": summary.hit_ratio(rec.ops, end=fault_at),
                      "during": summary.hit_ratio(rec.ops, fault_at, healed_at),
                      "after": summary.hit_ratio(rec.ops, healed_at + 1.0)},
        "cache": summary.cache_outcomes(rec.ops),
        "checker": {"counts": checker.counts(found),
                    "violations": {rule: [v.as_json() for v in found[rule][:VIOLATIONS_KEPT]]
                                   for rule in checker.RULES if found[rule]},
                    "reads_checked": sum(1 for op in rec.ops if op.op == "read" and op.ok),
                    "lag_s": lag, "strict_older_than_db": len(checker.older_than_db(rec.ops)),
                    "final_reads": len(final),
                    "observations": sum(1 for op in rec.ops if op.op == "observe")},
        "readiness": _readiness(ready),
        "metrics": _metric_deltas(metrics_before, _metrics(base), proxy_before == ctx.stack.pid("proxy")),
        "raw": raw.name, **extra,
    }
    result["problems"] = _problems(scenario, result)
    result["valid"] = not result["problems"]
    return result


def _seed(ctx: Run, scenario: Scenario) -> str:
    return f"{ctx.seed}/{scenario.name}"


# --- the faults ------------------------------------------------------------------------------------------
async def _kill(scenario: Scenario, ctx: Run, rec: Recorder, extra: dict[str, Any]) -> tuple[float, Healed]:
    started = time.monotonic()
    fault_at = rec.now()
    dead = await asyncio.to_thread(ctx.faults.kill, scenario.target)
    healed = await asyncio.to_thread(ctx.faults.heal, scenario.target, dead, started, ctx.timing.hold_s)
    return fault_at, healed


async def _pause(scenario: Scenario, ctx: Run, rec: Recorder, extra: dict[str, Any]) -> tuple[float, Healed]:
    fault_at = rec.now()
    pid = ctx.faults.pause(scenario.target)
    try:
        await asyncio.sleep(ctx.timing.hold_s)   # the length of the pause is the fault
    finally:
        ctx.faults.resume(pid)
    return fault_at, Healed("resumed", rec.now() - fault_at, pid)


async def _proxy_kill(scenario: Scenario, ctx: Run, rec: Recorder,
                      extra: dict[str, Any]) -> tuple[float, Healed]:
    """The victim's entry cached; its row locked; its PATCH hangs in the backend; the proxy is killed; the
    row released, so the write commits with no gateway left to settle it. Nobody else writes the victim:
    only the write fence stands between its readers and the old entry."""
    victim = ctx.people.victim
    key, target = f"user:{victim.user_id}", f"/users/{victim.user_id}"
    auth = {"Authorization": victim.authorization}
    async with traffic.session(ctx.stack.proxy_url) as http:
        for _ in range(2):
            await traffic.call(http, rec, "victim", READ, key, "GET", target, auth)
        lock = await asyncio.to_thread(ctx.faults.lock_row, victim.user_id)
        title = f"victim-{int(rec.now() * 1000)}"
        try:
            write = asyncio.create_task(traffic.call(http, rec, "victim", WRITE, key, "PATCH", target, auth,
                                                     {"title": title}, sent=title))
            def stuck() -> bool:
                started = rec.in_flight.get(("victim", key))
                return started is not None and rec.now() - started >= PROXY_KILL_IN_FLIGHT_S
            deadline = time.monotonic() + IN_FLIGHT_WAIT_S
            while not stuck() and time.monotonic() < deadline:
                await asyncio.sleep(0.02)   # polling a condition, with the deadline above
            extra["write_in_flight_at_kill"] = stuck()
            started = time.monotonic()
            fault_at = rec.now()
            dead = await asyncio.to_thread(ctx.faults.kill, "proxy")
        finally:
            await asyncio.to_thread(lock.release)
        extra["committed_after_kill"] = await asyncio.to_thread(_committed, ctx.stack, victim.user_id, title)
        await write
    healed = await asyncio.to_thread(ctx.faults.heal, "proxy", dead, started, ctx.timing.hold_s)
    return fault_at, healed


def _committed(stack: OwnStack, user_id: int, title: str) -> dict[str, Any]:
    """Wait (bounded) for the killed gateway's write to commit: the crash window really happened."""
    seen: dict[str, Any] = {"title": title, "version": None, "committed": False}

    def done() -> bool:
        conn = stack.db()
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT version, title FROM users WHERE id = %s", (user_id,))
                version, now = cur.fetchone()
        finally:
            conn.close()
        seen.update(version=int(version), committed=now == title)
        return now == title

    wait_for(done, IN_FLIGHT_WAIT_S, interval=0.05)
    return seen


async def _abuse(scenario: Scenario, ctx: Run, rec: Recorder, extra: dict[str, Any]) -> tuple[float, Healed]:
    caller = ctx.people.callers[0]
    plan, fd_limit = ABUSE[scenario.name]
    abuse = Abuse(ctx.stack.config.proxy.port, plan, caller.authorization, caller.user_id)
    fault_at = rec.now()
    was = ctx.faults.fd_limit("proxy")
    if fd_limit is not None:
        ctx.faults.set_fd_limit("proxy", fd_limit)
    try:
        await abuse.start()
        await asyncio.sleep(ctx.timing.hold_s)   # the abuse lasts this long, with the normal traffic on
    finally:
        extra["abuse"] = {"plan": vars(plan), "fd_limit": fd_limit, "fd_limit_was": list(was),
                          "connections": await abuse.stop()}
        if fd_limit is not None and ctx.stack.pid("proxy") is not None:
            ctx.faults.set_fd_limit("proxy", was[0])
    return fault_at, Healed("restored", rec.now() - fault_at, ctx.stack.pid("proxy"))


async def _burst(scenario: Scenario, ctx: Run, rec: Recorder, extra: dict[str, Any]) -> tuple[float, Healed]:
    await asyncio.to_thread(ctx.stack.cli, "admin", "cache", "off")
    await asyncio.to_thread(ctx.stack.cli, "admin", "cache", "on")   # a new key epoch: a cold cache
    fault_at = rec.now()
    await traffic.burst(ctx.people, rec, ctx.stack.proxy_url, clients=BURST_CLIENTS, rounds=BURST_ROUNDS,
                        seed=_seed(ctx, scenario))
    burst_ops = [op for op in rec.ops if op.client.startswith("b")]
    statuses = Counter(summary.status_of(op) for op in burst_ops)
    extra["burst"] = {"clients": BURST_CLIENTS, "rounds": BURST_ROUNDS, "requests": len(burst_ops),
                      "statuses": dict(sorted(statuses.items())), "seconds": round(rec.now() - fault_at, 3),
                      "latency_max_s": max((op.latency for op in burst_ops), default=None)}
    return fault_at, Healed("burst over", rec.now() - fault_at, ctx.stack.pid("proxy"))


async def _redis_full(scenario: Scenario, ctx: Run, rec: Recorder,
                      extra: dict[str, Any]) -> tuple[float, Healed]:
    before = await asyncio.to_thread(ctx.faults.redis_memory)
    limit = int(before["used_memory"]) + REDIS_FULL_HEADROOM
    fault_at = rec.now()
    await asyncio.to_thread(ctx.faults.set_redis_maxmemory, limit)
    stop = asyncio.Event()
    sprayers = asyncio.create_task(traffic.spray(ctx.people, rec, ctx.stack.proxy_url, stop, clients=6,
                                                 seed=_seed(ctx, scenario)))
    try:
        # First half under the stack's own policy (it evicts), second half under noeviction: Redis then
        # refuses the writes themselves, which the gateway must take as a store outcome, not a failure.
        await asyncio.sleep(ctx.timing.hold_s / 2)
        evicting = await asyncio.to_thread(ctx.faults.redis_memory)
        half_at = rec.now()
        await asyncio.to_thread(ctx.faults.set_redis_maxmemory, limit, "noeviction")
        await asyncio.sleep(ctx.timing.hold_s / 2)
    finally:
        stop.set()
        await sprayers
        full = await asyncio.to_thread(ctx.faults.redis_memory)
        await asyncio.to_thread(ctx.faults.set_redis_maxmemory, int(before["maxmemory"]),
                                str(before["maxmemory_policy"]))
    spray_ops = [op for op in rec.ops if op.client.startswith("s")]
    extra["redis_memory"] = {"before": before, "limit": limit, "at_end": full,
                             "evicted": int(evicting["evicted_keys"]) - int(before["evicted_keys"]),
                             "noeviction_at_s": round(half_at, 3),
                             "unavailable": {"evicting": _unavailable(rec.ops, fault_at, half_at),
                                             "noeviction": _unavailable(rec.ops, half_at, rec.now())},
                             "refused_oom": int(full["refused_oom"]) - int(evicting["refused_oom"]),
                             "spray_requests": len(spray_ops),
                             "spray_hit_ratio": summary.hit_ratio(spray_ops, clients="s")}
    return fault_at, Healed("restored", rec.now() - fault_at, ctx.stack.pid("redis"))


FAULTS = {"kill": _kill, "pause": _pause, "proxy-kill": _proxy_kill, "abuse": _abuse, "burst": _burst,
          "redis-full": _redis_full}


# --- around the traffic ----------------------------------------------------------------------------------
async def _probe(base: str, rec: Recorder, stop: asyncio.Event, seen: list[tuple[float, int]]) -> None:
    """GET /-/ready every READY_EVERY_S: what an orchestrator would have concluded during the scenario."""
    async with traffic.session(base) as http:
        while not stop.is_set():
            try:
                async with http.get("/-/ready", timeout=aiohttp.ClientTimeout(total=1.0)) as resp:
                    seen.append((rec.now(), resp.status))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError):
                seen.append((rec.now(), 0))
            await asyncio.sleep(READY_EVERY_S)   # the probe's period


def _readiness(seen: list[tuple[float, int]]) -> dict[str, Any]:
    not_ready = [(t, s) for t, s in seen if s != 200]
    return {"probes": len(seen), "not_ready": len(not_ready),
            "not_ready_s": round(len(not_ready) * READY_EVERY_S, 2),
            "statuses": {str(s): sum(1 for _, x in seen if x == s) for s in sorted({s for _, s in seen})}}


async def _final_reads(rec: Recorder, ctx: Run) -> list[history.Op]:
    """Every entity the history touched, read through the gateway (known users: both views)."""
    keys = sorted({op.key for op in rec.ops if op.op in ("read", "write") and op.key})
    by_id = {c.user_id: c for c in ctx.people.everyone}
    default = ctx.people.callers[0].authorization
    jobs: list[tuple[str, str, str]] = []
    for key in keys:
        kind, _, ident = key.partition(":")
        jobs.append((key, f"/{kind}s/{ident}", default))
        if kind == "user" and int(ident) in by_id:
            jobs.append((key, "/users/me", by_id[int(ident)].authorization))
    final = Recorder(rec.t0)   # the same clock, a history of its own
    gate = asyncio.Semaphore(FINAL_CONCURRENCY)
    async with traffic.session(ctx.stack.proxy_url, limit=FINAL_CONCURRENCY) as http:
        async def one(key: str, target: str, auth: str) -> None:
            async with gate:
                await traffic.call(http, final, "final", "read", key, "GET", target, {"Authorization": auth})
        await asyncio.gather(*(one(*job) for job in jobs))
    return final.ops


def _fence_lifetime(config: Any) -> float:
    """cache.write_fence, as the config derives it (upstream_timeout + 2 x redis.timeout + 1 s)."""
    derived = getattr(config.cache, "write_fence", None)
    if derived:
        return float(derived)
    return float(config.proxy.upstream_timeout + 2 * config.redis.timeout + 1.0)


def _rows(stack: OwnStack, keys: set[str]) -> dict[str, checker.Row | None]:
    tables = {"user": ("users", "title"), "path": ("paths", None), "trip": ("trips", None)}
    wanted: dict[str, list[int]] = {}
    for key in keys:
        kind, _, ident = key.partition(":")
        wanted.setdefault(kind, []).append(int(ident))
    rows: dict[str, checker.Row | None] = {key: None for key in keys}
    conn = stack.db()
    try:
        with conn.cursor() as cur:
            for kind, ids in wanted.items():
                table, column = tables[kind]
                value = column or "''"
                marks = ", ".join(["%s"] * len(ids))
                cur.execute(f"SELECT id, version, {value} FROM {table} WHERE id IN ({marks})", ids)
                for ident, version, text in cur.fetchall():
                    rows[f"{kind}:{ident}"] = checker.Row(int(version), str(text or ""))
    finally:
        conn.close()
    return rows


def _writes(ops: list[history.Op]) -> dict[str, int]:
    writes = [op for op in ops if op.op == "write"]
    return {"sent": len(writes), "acknowledged": sum(1 for op in writes if op.ok),
            "refused": sum(1 for op in writes if 400 <= op.status < 500),
            "unknown_outcome": sum(1 for op in writes if op.status == 0 or op.status >= 500)}


def _metrics(base: str) -> dict[str, dict[str, float]]:
    """The counters the report follows, by label set; {} when the proxy does not answer."""
    try:
        with urllib.request.urlopen(base + "/-/metrics", timeout=3) as resp:
            text = resp.read().decode()
    except OSError:
        return {}
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in METRICS:
                label = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items())) or "-"
                out.setdefault(sample.name, {})[label] = sample.value
    return out


def _metric_deltas(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]],
                   same_process: bool) -> dict[str, Any]:
    if not same_process:
        return {"note": "the proxy was restarted: counts since its restart", **after}
    return {name: {label: value - before.get(name, {}).get(label, 0.0) for label, value in labels.items()
                   if value - before.get(name, {}).get(label, 0.0)}
            for name, labels in after.items()}


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


def _unavailable(ops: list, start: float, end: float) -> int:
    """Requests begun in [start, end) that bypassed the cache because the gateway found Redis unavailable."""
    return sum(1 for op in ops if start <= op.start < end and op.cache.endswith("/CACHE-UNAVAILABLE"))


def _problems(scenario: Scenario, result: dict[str, Any]) -> list[str]:
    problems = []
    if result["unexpected"]:
        reasons = ", ".join(f"{n} x {why}" for why, n in list(result["unexpected_by_reason"].items())[:6])
        problems.append(f"{result['unexpected']} unexpected answers to the clients: {reasons}")
    if not result["recovered"]:
        problems.append("the clients' requests were still failing at the end of the traffic")
    for rule, count in result["checker"]["counts"].items():
        if count:
            problems.append(f"checker: {count} {rule} violation(s)")
    if scenario.fault == "proxy-kill" and not result.get("write_in_flight_at_kill"):
        problems.append("harness: no write was in flight when the proxy was killed (no crash window)")
    if scenario.fault == "proxy-kill" and not result.get("committed_after_kill", {}).get("committed"):
        problems.append("harness: the write in flight did not commit after the kill (no crash window)")
    if scenario.fault == "redis-full" and not result["redis_memory"]["evicted"]:
        policy = result["redis_memory"]["before"]["maxmemory_policy"]
        problems.append(f"harness: Redis evicted nothing under {policy} (it never was full)")
    if scenario.fault == "redis-full" and not result["redis_memory"]["refused_oom"]:
        problems.append("harness: Redis refused no command as out of memory under noeviction "
                        "(it never was full)")
    if scenario.fault == "redis-full":
        # Under the evicting policy nothing is refused: a request that bypasses the cache then took the full
        # Redis for a failed one. Under noeviction a refused write fence or entry (not a fill) must move the
        # key epoch before anything is served again, and Redis refuses that INCR too while it is full: the
        # gateway bypasses until it takes it (correct, and reported), docs/architecture.md "Redis memory".
        unavailable = result["redis_memory"]["unavailable"]["evicting"]
        if unavailable:
            problems.append(f"{unavailable} requests treated the full (but evicting) Redis as unavailable "
                            f"(CACHE-UNAVAILABLE); hit ratio {_pct(result['hit_ratio']['before'])} before, "
                            f"{_pct(result['hit_ratio']['during'])} while full")
    return problems
