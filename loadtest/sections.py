"""The detail sections of performance.md: sweep tables, other mixes, method, profile, machine, commands."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from loadtest.summary import group, hit_ratio, upstream_per_request, wrk_core_use

PROCESSES = ("proxy", "users", "mariadb", "redis", "bare", "wrk")
STACK_PROCESSES = ("proxy", "users", "mariadb", "redis", "wrk")
TITLES = {"cache-off": "cache off", "cache-on": "cache on", "bare": "bare aiohttp handler",
          "backend": "users backend called directly (no proxy)", "zipf": "cache on, Zipf-like ids",
          "basic": "cache on, Basic credentials", "mixed": "cache on, 95 % reads / 5 % PUT+PATCH"}


def ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def link(path: Path, report_path: Path) -> str:
    return os.path.relpath(path, report_path.parent)


def sweep(add, name: str, series: list[dict[str, Any]], report_path: Path, results_dir: Path) -> None:
    if not series:
        return
    add(f"## Sweep: {TITLES[name]}\n")
    add("| conns | req/s | p50 | p75 | p90 | p99 | p99.9 | max (ms) | socket errors | non-2xx | hit ratio "
        "| upstream/req | CPU µs/req proxy | users | mariadb | redis | bare | wrk | load avg before | raw |")
    add("|" + "---:|" * 19 + "---|")
    for p in series:
        lat, cpu = p["latency_ms"], p["cpu_us_per_request"]
        errors = p.get("errors") or {}
        sockets = sum(int(v) for k, v in errors.items() if k != "status")
        non2xx = p["non2xx"] if isinstance(p.get("non2xx"), int) else errors.get("status", 0)
        upstream = upstream_per_request(p)
        add(f"| {p['connections']} | {p['rps']:.0f} | " + " | ".join(
            ms(lat.get(k)) for k in ("p50", "p75", "p90", "p99", "p99.9", "max"))
            + f" | {sockets} | {non2xx} | {pct(hit_ratio([p])) if p.get('proxy') else '-'}"
            + f" | {'-' if upstream is None else f'{upstream:.3f}'} | "
            + " | ".join(us(cpu.get(k)) for k in PROCESSES)
            + f" | {p['loadavg_before'][0]:.2f} | [txt]({link(results_dir / p['raw'], report_path)}) |")
    add("")


def variants(add, points: list[dict[str, Any]], report_path: Path, results_dir: Path) -> None:
    rows = [p for name in ("zipf", "basic", "mixed") for p in group(points, name)]
    if not rows:
        return
    add("## Other request mixes (cache on)\n")
    add("| mix | conns | req/s | p50 | p99 (ms) | writes sent | hit ratio | upstream/req | CPU µs/req proxy "
        "| raw |")
    add("|---|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for p in rows:
        upstream = upstream_per_request(p)
        lat = p["latency_ms"]
        add(f"| {TITLES[p['group']]} | {p['connections']} | {p['rps']:.0f} | {ms(lat.get('p50'))} | "
            f"{ms(lat.get('p99'))} | {p.get('writes_sent') or 0} | {pct(hit_ratio([p]))} | "
            f"{'-' if upstream is None else f'{upstream:.3f}'} | "
            f"{us(p['cpu_us_per_request'].get('proxy'))} | "
            f"[txt]({link(results_dir / p['raw'], report_path)}) |")
    add("")


def method(add, run: dict[str, Any], points: list[dict[str, Any]]) -> None:
    plan, pin = run["plan"], run.get("pinning", {})
    add("## How it was measured\n")
    add(f"- Each point: {plan['warmup_s']} s of warm-up (same script, not counted), then "
        f"{plan['duration_s']} s measured. wrk 4 with one thread; ids drawn uniformly from the seeded users "
        "unless said otherwise; every request carries a real token obtained from `POST /auth/token` before "
        "the run.")
    add(f"- Seeded users: {plan['users']}. Cache off and cache on are the same proxy processes, switched at "
        "run time through the admin API (`POST /-/admin/cache`); turning it on starts a new key epoch, then "
        "every seeded id is read once to fill the cache.")
    for toggle in run.get("cache_toggles", []):
        add(f"  - after switching the cache {'on' if toggle['enabled'] else 'off'}, a probe answered "
            f"`Cache-Status: {toggle['cache_status']}`")
    pids = run.get("proxy_pids", {})
    add(f"- Proxy pids at the start {pids.get('before')} and at the end {pids.get('after')}.")
    if pin.get("enabled"):
        add(f"- Pinned: wrk on CPU {pin['wrk_cpus']}, the proxy (and the bare reference server) on CPU "
            f"{pin['server_cpus']} (not while the cache is filled), with `taskset` / `sched_setaffinity`; "
            "the users backend, MariaDB and Redis are not pinned and share the cores with the others.")
    else:
        add("- Nothing was pinned.")
    add("- Hit ratio: from the proxy's `cachegate_cache_requests_total` for the route, (hit + stale + "
        "revalidated) over all per-request outcomes, as deltas around each measured point; upstream requests "
        "from `cachegate_upstream_requests_total{upstream=\"users\"}`.")
    add("- CPU µs per request: utime + stime deltas from `/proc/<pid>/stat` (pids from the launcher's pid "
        "files; the proxy's whole process group) divided by the requests wrk completed; wrk's own from its "
        "rusage. The clock tick is 10 ms, so short points have coarse CPU figures.")
    status = ("counted by the scripts' `response()` in Lua (every status outside 2xx), and wrk's own "
              "`summary.errors.status` (>= 400) checked as well" if run["status_count"] == "lua" else
              "wrk's own `summary.errors.status` (statuses >= 400); the scripts define no `response()`")
    add(f"- Non-2xx: {status}.")
    overhead = run.get("client_overhead")
    if overhead:
        lua, plain = overhead["lua"], overhead["wrk"]
        add(f"  - What `response()` costs, measured against the bare handler at 64 connections (with and "
            f"without, twice in turn): {lua['rps']:.0f} req/s and {lua['wrk_cpu_us_per_request']:.1f} µs of "
            f"wrk CPU per request with it, {plain['rps']:.0f} req/s and "
            f"{plain['wrk_cpu_us_per_request']:.1f} µs without.")
    measured = [p for p in points if not p["group"].startswith("overhead")]
    busiest = max(measured, key=wrk_core_use, default=None)
    if busiest:
        use = wrk_core_use(busiest)
        add(f"- wrk used at most {use * 100:.0f} % of its core (point {busiest['id']})"
            + (", so the client was never the limit." if use < 0.8 else
               ": the client may have limited that point."))
    add("")


def profile(add, run: dict[str, Any], report_path: Path, results_dir: Path) -> None:
    found = run.get("profile")
    if not found:
        return
    add("## Where the proxy spends its CPU (py-spy)\n")
    if found.get("error"):
        add(f"Profiling failed: {found['error']}\n")
        return
    add(f"py-spy sampled proxy process {found['pid']} for {found['seconds']} s during an extra cache-on "
        f"point at {found['connections']} connections, right after the fill ({found['rps']:.0f} req/s while "
        f"sampled, {found['samples']} busy samples; [collapsed stacks]"
        f"({link(results_dir / found['raw'], report_path)})). Percentages are of the samples in which the "
        "process was busy.\n")
    add(f"`{found['command']}`\n")
    # The profiled point's measured CPU per request, shared out by the samples: µs per request per package.
    per_request = found.get("proxy_cpu_us_per_request") or 0.0
    add(f"Self time by package (µs per request: the share times the {per_request:.0f} µs of proxy CPU per "
        "request measured on that point):\n")
    add("| self % | µs/request | package |")
    add("|---:|---:|---|")
    for row in found["areas"]:
        add(f"| {row['percent']:.1f} | {row['percent'] * per_request / 100:.0f} | {row['area']} |")
    add("\n<details><summary>By function: self time, and inclusive time</summary>\n")
    for title, rows in (("self %", found["top_self"]), ("inclusive %", found["top_inclusive"])):
        add(f"| {title} | function |")
        add("|---:|---|")
        for row in rows:
            add(f"| {row['percent']:.1f} | `{row['frame']}` |")
        add("")
    add("</details>\n")


def machine(add, run: dict[str, Any]) -> None:
    m, sw = run["machine"], run["software"]
    add("## Machine, software, configuration\n")
    add(f"- {m['cpu_model']}, {m['cores']} cores, {m['memory_gib']} GiB, {m['os']}, kernel {m['kernel']}; "
        f"load average at the start {', '.join(f'{v:.2f}' for v in m['load_average'])} "
        "(before each point: in the sweep tables).")
    add("- " + ", ".join(f"{k} {v}" for k, v in sw.items()))
    add(f"- Config file: `{run['config']['path']}`; CACHEGATE_* variables set: "
        f"{', '.join(run['config']['env_overrides']) or 'none'}.\n")
    add("```json")
    add(json.dumps({k: run["config"][k] for k in ("proxy", "cache", "redis")}, indent=1, sort_keys=True))
    add("```\n")


def reproduce(add, run: dict[str, Any], points: list[dict[str, Any]]) -> None:
    add("## Reproduce\n")
    add("```sh")
    add("cachegate up          # or let the load test start the stack (and stop it after)")
    add(run["command"])
    add("```\n")
    add("<details><summary>Every wrk command of this run (credential files are temporary, made by the runner)"
        "</summary>\n")
    add("```sh")
    for command in run.get("commands", []):
        add(command)
    add("```\n</details>")


CLUSTER_CPU_TARGET = 1.3  # issue 11: the hit path on Redis Cluster costs at most this much more proxy CPU


def ab(add, run: dict[str, Any], report_path: Path, results_dir: Path) -> None:
    """The A/B comparison of the hit path's proxy CPU per request: both sides, every round, the ratio."""
    record = run.get("ab")
    if not record:
        return
    a, b = record["sides"]
    add("## Hit path against an anchor (A/B in one run)\n")
    add(f"Side A is the anchor `{record['anchor']}` ({a['ref'] or 'this tree'}, config "
        f"`{a['config']}`); side B is this tree (config `{b['config']}`). Each side is its own proxy process "
        "started from its own source tree, with a private Redis, in front of the same services; after a "
        f"warm-up each side was measured {record['rounds']} times for {record['seconds']} s at "
        f"{record['connections']} connections, alternately (A B, then B A, ...), with wrk on one core and "
        "the measured proxy on the other. The figure is the proxy's utime + stime per completed request.\n")
    if b.get("env"):
        settings = ", ".join(f"`{k}={v}`" for k, v in b["env"].items())
        paired = record.get("paired_ratios") or []
        unresolved = bool(paired) and min(paired) < 1 < max(paired)
        add(f"Side B alone runs with {settings}; every request writes one access line, so B − A is what "
            f"that setting costs per request: {b['median_cpu_us'] - a['median_cpu_us']:+.1f} µs "
            "(difference of the medians)"
            + (f"; the paired rounds disagree in sign ({min(paired):.3f} to {max(paired):.3f}), so the "
               "cost is below what this run can resolve.\n" if unresolved else ".\n"))
    add("| round | A: proxy CPU µs/request | B: proxy CPU µs/request | B / A | A req/s | B req/s |")
    add("|---:|---:|---:|---:|---:|---:|")
    for i, (acpu, bcpu) in enumerate(zip(a["cpu_us_per_request"], b["cpu_us_per_request"])):
        raw_a = link(results_dir / "raw" / f"{a['points'][i]}.txt", report_path)
        raw_b = link(results_dir / "raw" / f"{b['points'][i]}.txt", report_path)
        add(f"| {i + 1} | [{acpu:.1f}]({raw_a}) | [{bcpu:.1f}]({raw_b}) | {bcpu / acpu:.3f} | "
            f"{a['rps'][i]:.0f} | {b['rps'][i]:.0f} |")
    add(f"| median | {us(a['median_cpu_us'])} | {us(b['median_cpu_us'])} | "
        f"{record['median_paired_ratio']:.3f} | {a['median_rps']:.0f} | {b['median_rps']:.0f} |\n")
    ratio = record["median_paired_ratio"]
    target = record.get("target")
    if target is not None:
        verdict = "met" if ratio <= target else "**missed**"
        add(f"Target: B's CPU per hit at most {target:g} × A's. Measured (median of the paired rounds): "
            f"{ratio:.3f} × — {verdict}. Ratio of the medians: {record['ratio_of_medians']:.3f}.\n")
    else:
        add(f"B / A (median of the paired rounds): {ratio:.3f}; ratio of the medians: "
            f"{record['ratio_of_medians']:.3f}.\n")
    kinds = [side.get("redis") for side in (a, b)]
    if sorted(map(str, kinds)) == ["cluster", "single"]:
        cluster, single = (a, b) if kinds[0] == "cluster" else (b, a)
        paired = [c / s for c, s in zip(cluster["cpu_us_per_request"], single["cpu_us_per_request"]) if s]
        measured = sorted(paired)[len(paired) // 2] if paired else None
        verdict = "met" if measured is not None and measured <= CLUSTER_CPU_TARGET else "**missed**"
        shown = f"{measured:.3f}" if measured is not None else "-"
        add(f"Redis Cluster against the single Redis: the hit path's proxy CPU on the cluster is {shown} × the "
            f"single Redis's (median of the paired rounds; target at most {CLUSTER_CPU_TARGET:g} ×) — "
            f"{verdict}. Hit ratio of each side's requests (its warm-up pass included): cluster {pct(cluster.get('hit_ratio'))}, single "
            f"{pct(single.get('hit_ratio'))}.\n")
