"""What the clients of one scenario saw, from its history: statuses, latency, recovery, unexpected failures.

Pure functions of the operations and the fault's window, so the judgement is tested on its own.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable

from loadtest.reliability.history import DB_CLIENT, Op
from loadtest.reliability.scenarios import RECOVERY_GRACE_S, Scenario

EXAMPLES = 10
CLASSES = {"c": "keep-alive", "f": "new connection per request", "b": "burst", "s": "distinct keys",
           "v": "victim (harness)"}
SETTLED_S = 1.0   # a failure this close to the end of the traffic means the scenario never recovered


@dataclass(frozen=True)
class Window:
    fault_at: float      # seconds into the scenario
    healed_at: float     # when the component was back (restarted, resumed, restored)
    traffic_end: float


def client_ops(ops: Iterable[Op]) -> list[Op]:
    return [op for op in ops if op.client != DB_CLIENT]


def status_of(op: Op) -> str:
    return str(op.status) if op.status else f"no answer ({op.error})"


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def shape(target: str) -> str:
    """The route a target took: `/users/17?x=1` -> `/users/{id}`."""
    path = target.split("?", 1)[0]
    return "/".join("{id}" if part.isdigit() else part for part in path.split("/"))


def needs(scenario: Scenario, target: str) -> bool:
    return any(target.startswith(prefix) for prefix in scenario.needs)


def allowed(scenario: Scenario, window: Window, op: Op) -> bool:
    """May this failed operation happen in this scenario? (module docstring of scenarios.py)"""
    if op.end < window.fault_at or op.start > window.healed_at + RECOVERY_GRACE_S:
        return False
    if not needs(scenario, op.target):
        return False
    if op.status == 0:
        return "transport" in scenario.allowed
    return str(op.status) in scenario.allowed and op.error != "not-json"


def judge(scenario: Scenario, window: Window, ops: list[Op]) -> dict[str, object]:
    """Counts, latency, recovery and the unexpected failures of the clients' operations."""
    ops = client_ops(ops)
    failed = [op for op in ops if not op.ok]
    unexpected = [op for op in failed if not allowed(scenario, window, op)]
    after_fault = [op for op in failed if op.end >= window.fault_at]
    last = max((op.end for op in after_fault), default=None)
    recovered = last is None or last < window.traffic_end - SETTLED_S
    latencies = [op.latency for op in ops]
    reasons = Counter(f"{status_of(op)} on {shape(op.target)}" for op in unexpected)
    classes: dict[str, Counter] = {}
    for op in ops:
        classes.setdefault(CLASSES.get(op.client[:1], op.client), Counter())[status_of(op)] += 1
    return {
        "operations": len(ops),
        "statuses": dict(sorted(Counter(status_of(op) for op in ops).items())),
        "by_client": {name: dict(sorted(c.items())) for name, c in sorted(classes.items())},
        "server_errors": sum(1 for op in ops if op.status >= 500),
        "no_answer": sum(1 for op in ops if op.status == 0),
        "latency_s": {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99),
                      "max": max(latencies, default=None)},
        "recovered": recovered,
        "recovered_after_s": None if last is None else round(last - window.fault_at, 3),
        "unexpected": len(unexpected),
        "unexpected_by_reason": dict(reasons.most_common()),
        "unexpected_examples": [_example(op) for op in unexpected[:EXAMPLES]],
    }


def _example(op: Op) -> str:
    return (f"{op.client} {op.target} [{op.start:.3f}-{op.end:.3f}s] -> {status_of(op)}"
            + (f" {op.error}" if op.status and op.error else ""))


def hit_ratio(ops: Iterable[Op], start: float = float("-inf"), end: float = float("inf"),
              clients: str = "cf") -> float | None:
    """Share of the 2xx reads (by clients whose names start with one of `clients`) served from the cache."""
    reads = [op for op in ops if op.ok and op.op in ("read", "search") and op.client[:1] in clients
             and start <= op.start < end]
    if not reads:
        return None
    return sum(1 for op in reads if op.cache.split("/")[0] in ("hit", "stale")) / len(reads)


def cache_outcomes(ops: Iterable[Op]) -> dict[str, int]:
    return dict(Counter(op.cache or "-" for op in client_ops(ops) if op.op != "write").most_common())
