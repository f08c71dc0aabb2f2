"""The proxy's Prometheus counters around a point: hit ratio and upstream requests as deltas."""
from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from typing import Mapping

from prometheus_client.parser import text_string_to_metric_families

# cachegate_cache_requests_total counts each request once, by what the cache did (proxy/metrics.py); the
# per-request outcomes are named, so the results of runs made before fills were counted apart still add up.
SERVED_FROM_CACHE = ("hit", "stale", "stale_error", "revalidated")
PER_REQUEST = (*SERVED_FROM_CACHE, "miss", "coalesced", "bypass", "write", "error")

Labels = tuple[tuple[str, str], ...]
Counters = dict[tuple[str, Labels], float]


def scrape(url: str, timeout: float = 5.0) -> Counters:
    """Every `*_total` sample of the metrics page, keyed by (name, sorted labels)."""
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        text = resp.read().decode()
    out: Counters = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.endswith("_total"):
                out[(sample.name, tuple(sorted(sample.labels.items())))] = float(sample.value)
    return out


def _sum(counters: Counters, name: str, **want: str) -> float:
    total = 0.0
    for (metric, labels), value in counters.items():
        if metric == name and all(dict(labels).get(k) == v for k, v in want.items()):
            total += value
    return total


@dataclass(frozen=True)
class Delta:
    """What the proxy counted between two scrapes, for one route and one upstream."""

    requests: float           # answered on the route
    statuses: dict[str, float]  # the route's answers by status
    outcomes: dict[str, float]
    upstream: float           # requests sent to the upstream (every route)
    upstream_by_status: dict[str, float]

    @property
    def hit_ratio(self) -> float | None:
        counted = sum(self.outcomes.get(o, 0.0) for o in PER_REQUEST)
        if counted <= 0:
            return None
        return sum(self.outcomes.get(o, 0.0) for o in SERVED_FROM_CACHE) / counted

    def as_json(self) -> dict[str, object]:
        return {"route_requests": self.requests, "route_statuses": self.statuses, "outcomes": self.outcomes,
                "hit_ratio": self.hit_ratio,
                "upstream_requests": self.upstream, "upstream_by_status": self.upstream_by_status}


def delta(before: Counters, after: Counters, *, route: str, upstream: str) -> Delta:
    def diff(name: str, **want: str) -> float:
        return _sum(after, name, **want) - _sum(before, name, **want)

    outcomes: dict[str, float] = {}
    answered: dict[str, float] = {}
    upstream_statuses: dict[str, float] = {}
    for (metric, labels), _ in after.items():
        found = dict(labels)
        if metric == "cachegate_cache_requests_total" and found.get("route") == route:
            outcomes[found["outcome"]] = diff(metric, route=route, outcome=found["outcome"])
        elif metric == "cachegate_requests_total" and found.get("route") == route:
            answered[found["status"]] = diff(metric, route=route, status=found["status"])
        elif metric == "cachegate_upstream_requests_total" and found.get("upstream") == upstream:
            upstream_statuses[found["status"]] = diff(metric, upstream=upstream, status=found["status"])

    def nonzero(values: dict[str, float]) -> dict[str, float]:
        return {k: v for k, v in values.items() if v}

    return Delta(diff("cachegate_requests_total", route=route), nonzero(answered), nonzero(outcomes),
                 diff("cachegate_upstream_requests_total", upstream=upstream), nonzero(upstream_statuses))


def upstream_total(counters: Mapping[tuple[str, Labels], float], upstream: str) -> float:
    return _sum(dict(counters), "cachegate_upstream_requests_total", upstream=upstream)


def route_total(counters: Mapping[tuple[str, Labels], float], route: str) -> float:
    return _sum(dict(counters), "cachegate_requests_total", route=route)
