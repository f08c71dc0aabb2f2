"""Figures derived from a run's points: the best point, the fixed-concurrency point, hit ratios, targets."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from loadtest.plan import FIXED_CONNECTIONS
from loadtest.promstats import PER_REQUEST, SERVED_FROM_CACHE

Point = dict[str, Any]
MODES = ("cache-off", "cache-on")
THROUGHPUT_TARGET = 5.0       # cache-on max req/s at least 5x cache-off
P99_TARGET = 0.2              # cache-on p99 at 64 connections at most 1/5 of cache-off
PROXY_CPU_TARGET_US = 60.0    # proxy CPU per hit request


def group(points: list[Point], name: str) -> list[Point]:
    return sorted((p for p in points if p["group"] == name), key=lambda p: p["connections"])


def best(points: list[Point]) -> Point | None:
    """The point of highest throughput among those without errors: a fast point full of errors is no best."""
    clean = [p for p in points if errors_of([p]) == 0]
    return max(clean, key=lambda p: p["rps"], default=None)


def at_fixed(points: list[Point]) -> Point | None:
    """The point at FIXED_CONNECTIONS, or the nearest one when the sweep skipped it."""
    return min(points, key=lambda p: abs(p["connections"] - FIXED_CONNECTIONS), default=None)


def hit_ratio(points: list[Point]) -> float | None:
    served = counted = 0.0
    for p in points:
        outcomes = (p.get("proxy") or {}).get("outcomes", {})
        served += sum(outcomes.get(o, 0.0) for o in SERVED_FROM_CACHE)
        counted += sum(outcomes.get(o, 0.0) for o in PER_REQUEST)
    return served / counted if counted else None


def errors_of(points: list[Point]) -> int:
    """Socket errors plus bad statuses; the script's non-2xx count, when taken, includes wrk's (>= 400)."""
    total = 0
    for p in points:
        errors = dict(p.get("errors") or {})
        status = errors.pop("status", 0)
        non2xx = p.get("non2xx")
        total += sum(int(v) for v in errors.values()) + (non2xx if isinstance(non2xx, int) else int(status))
    return total


def upstream_per_request(point: Point) -> float | None:
    """Both counted by the proxy: wrk's own count leaves out what was in flight when it stopped."""
    proxy = point.get("proxy")
    if not proxy or not proxy["route_requests"]:
        return None
    return proxy["upstream_requests"] / proxy["route_requests"]


def wrk_core_use(point: Point) -> float:
    """Share of its one core that wrk used: the client must stay far from being the limit."""
    return point["cpu_us_per_request"].get("wrk", 0.0) * point["rps"] / 1e6


@dataclass(frozen=True)
class Target:
    name: str
    anchor: str
    measured: str
    met: bool | None
    verdict: str


def targets(points: list[Point]) -> list[Target]:
    off, on = group(points, "cache-off"), group(points, "cache-on")
    out: list[Target] = []
    best_off, best_on = best(off), best(on)
    if best_off and best_on and best_off["rps"] > 0:
        ratio = best_on["rps"] / best_off["rps"]
        met = ratio >= THROUGHPUT_TARGET
        out.append(Target(
            "max throughput, cache on / cache off", f">= {THROUGHPUT_TARGET:g}x",
            f"{ratio:.2f}x ({best_on['rps']:.0f} / {best_off['rps']:.0f} req/s)", met,
            "met" if met else f"MISSED: {ratio:.2f}x instead of {THROUGHPUT_TARGET:g}x, "
                              f"{(1 - ratio / THROUGHPUT_TARGET) * 100:.0f}% short"))
    fix_off, fix_on = at_fixed(off), at_fixed(on)
    if fix_off and fix_on and fix_off["latency_ms"].get("p99"):
        ratio = fix_on["latency_ms"]["p99"] / fix_off["latency_ms"]["p99"]
        met = ratio <= P99_TARGET
        out.append(Target(
            f"p99 at {fix_on['connections']} connections, cache on / cache off", f"<= {P99_TARGET:g} (1/5)",
            f"{ratio:.3f} ({fix_on['latency_ms']['p99']:.2f} / {fix_off['latency_ms']['p99']:.2f} ms)", met,
            "met" if met else f"MISSED: {ratio:.3f} instead of at most {P99_TARGET:g}, "
                              f"{ratio / P99_TARGET:.1f}x too high"))
    if fix_on:
        cpu = fix_on["cpu_us_per_request"].get("proxy", 0.0)
        hits = hit_ratio([fix_on])
        met = cpu <= PROXY_CPU_TARGET_US
        share = f", {hits * 100:.1f} % served from the cache" if hits is not None else ""
        out.append(Target(
            f"proxy CPU per request on the hit path (cache on, {fix_on['connections']} connections{share})",
            f"<= {PROXY_CPU_TARGET_US:g} µs", f"{cpu:.1f} µs", met,
            "met" if met else f"MISSED by {cpu - PROXY_CPU_TARGET_US:.1f} µs "
                              f"({cpu / PROXY_CPU_TARGET_US:.2f}x the budget)"))
    errors = errors_of(off + on)
    out.append(Target("errors in both modes (socket errors and non-2xx)", "0", str(errors), errors == 0,
                      "met" if errors == 0 else f"MISSED: {errors} errors"))
    return out
