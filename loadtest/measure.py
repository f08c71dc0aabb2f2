"""One measured point: a warm-up wrk run, then the measured run with CPU and proxy counters around it."""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from loadtest import procstat, promstats, wrk
from loadtest.progress import Bar


@dataclass(frozen=True)
class PointSpec:
    """What to measure: `group` is the series (cache-off, cache-on, bare, backend, mixed...)."""

    group: str
    url: str
    script: str
    connections: int
    script_args: dict[str, str]
    processes: tuple[str, ...]      # which of the stack's processes to account CPU for
    through_proxy: bool = True
    warmup: bool = True
    seconds: int | None = None      # measured duration, when not the plan's

    @property
    def id(self) -> str:
        return f"{self.group}-c{self.connections}"


@dataclass
class Measurer:
    """Runs points with one set of settings and collects them (and every problem) for the report."""

    results_dir: Path
    warmup_s: int
    duration_s: int
    wrk_cpu: int | None
    pids: Callable[[], dict[str, list[int]]]
    metrics_url: str
    route: str
    upstream: str = "users"
    points: list[dict[str, Any]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)  # every wrk command line, in the order they ran

    def raw_path(self, name: str) -> Path:
        return self.results_dir / "raw" / f"{name}.txt"

    def relative(self, path: Path) -> str:
        return str(path.relative_to(self.results_dir))

    def measure(self, spec: PointSpec) -> dict[str, Any]:
        seconds = spec.seconds or self.duration_s
        total = (self.warmup_s if spec.warmup else 0) + seconds
        bar = Bar(f"{spec.group} c={spec.connections}", total, "s")
        warm: dict[str, Any] | None = None
        if spec.warmup:
            result = self._run(spec, self.warmup_s, self.raw_path(spec.id + ".warmup"), bar.update)
            warm = {"command": result.command, "raw": self.relative(self.raw_path(spec.id + ".warmup")),
                    "requests": result.requests, "problems": result.problems}
            self._note(f"{spec.id} warm-up", result.problems)
        offset = self.warmup_s if spec.warmup else 0
        loadavg = list(os.getloadavg())
        started_at = time.time()
        pids = {name: group for name, group in self.pids().items() if name in spec.processes}
        cpu_before = procstat.snapshot(pids)
        counters_before = promstats.scrape(self.metrics_url) if spec.through_proxy else None
        result = self._run(spec, seconds, self.raw_path(spec.id), lambda t: bar.update(offset + t))
        cpu_after = procstat.snapshot(pids)
        counters_after = promstats.scrape(self.metrics_url) if spec.through_proxy else None
        point = self.record(spec, result, loadavg)
        point["warmup"], point["started_at"] = warm, started_at
        cpu = procstat.per_request_us(cpu_before, cpu_after, result.requests)
        cpu["wrk"] = result.client_cpu_s * 1e6 / result.requests if result.requests else 0.0
        point["cpu_us_per_request"] = cpu
        if counters_before is not None and counters_after is not None:
            point["proxy"] = promstats.delta(counters_before, counters_after, route=self.route,
                                             upstream=self.upstream).as_json()
        self.points.append(point)
        self._note(spec.id, result.problems)
        bar.finish(f"{point['rps']:.0f} req/s, p99 {point['latency_ms']['p99']:.1f} ms"
                   + (f"  INVALID: {'; '.join(result.problems)}" if result.problems else ""))
        return point

    def _run(self, spec: PointSpec, seconds: int, raw: Path, tick: Callable[[float], None]) -> wrk.WrkResult:
        argv = wrk.command(spec.url, spec.script, connections=spec.connections, duration_s=seconds,
                           script_args=spec.script_args, cpu=self.wrk_cpu)
        result = wrk.run(argv, raw, tick=tick, limit_s=seconds)
        self.commands.append(result.command)
        return result

    def record(self, spec: PointSpec, result: wrk.WrkResult, loadavg: list[float]) -> dict[str, Any]:
        summary = result.summary or {}
        latency = summary.get("latency_us", {})
        return {
            "id": spec.id, "group": spec.group, "script": spec.script, "connections": spec.connections,
            "url": spec.url, "command": result.command, "raw": self.relative(self.raw_path(spec.id)),
            "duration_s": result.duration_s, "requests": result.requests, "rps": result.rps,
            "latency_ms": {k: float(v) / 1000 for k, v in latency.items()} or {"p99": 0.0},
            "errors": summary.get("errors"), "non2xx": summary.get("non2xx"),
            "reads_sent": summary.get("reads_sent"), "writes_sent": summary.get("writes_sent"),
            "loadavg_before": loadavg, "problems": result.problems,
        }

    def _note(self, what: str, problems: list[str]) -> None:
        self.problems.extend(f"{what}: {p}" for p in problems)
