"""Prometheus metrics of one proxy process, on a registry of its own (tests build many apps).

Names and units follow the Prometheus conventions (`_total` counters, `_seconds` histograms). Every request
is counted exactly once in `cachegate_requests_total` (by status) and once in `cachegate_cache_requests_total`
(by what the cache did), so a route's hit ratio is hits / requests of one counter:

    sum(rate(cachegate_cache_requests_total{outcome=~"hit|stale|stale_error|revalidated"}[5m]))
      / sum(rate(cachegate_cache_requests_total[5m]))

What the store did besides (fills stored or refused, tombstones, rejected writes) has counters of its own.
The figures a request touches are plain numbers in dicts, exported by a collector at scrape time: one event
loop both counts and scrapes, so they need neither locks nor prometheus_client's child objects (about a
microsecond per increment there, several per request on the hit path).
"""
from __future__ import annotations

from bisect import bisect_left
from typing import Callable, Iterable, Iterator

from prometheus_client import (CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector,
                               ProcessCollector, generate_latest)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

BREAKER_STATES = {"closed": 0, "open": 1, "half-open": 2}
# Outcomes of requests served from the cache: the numerator of the hit ratio.
SERVED_FROM_CACHE = ("hit", "stale", "stale_error", "revalidated")
# Seconds: a hit takes well under a millisecond, an upstream call milliseconds, a timeout seconds.
REQUEST_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0)
REDIS_BUCKETS = (.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0)
UPSTREAM_BUCKETS = (.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0)
# A method label is one of these or "other": a client must not grow the label set at will.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class PlainHistograms:
    """Histograms keyed by a tuple of label values; each series is a list of per-bucket counts (the last
    bucket is +Inf) followed by the sum of the observations."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...], buckets: tuple[float, ...]):
        self.name, self.documentation, self.labels, self.bounds = name, documentation, labels, buckets
        self.series: dict[tuple[str, ...], list[float]] = {}

    def observe(self, labels: tuple[str, ...], seconds: float) -> None:
        series = self.series.get(labels)
        if series is None:
            series = self.series[labels] = [0] * (len(self.bounds) + 2)
        series[bisect_left(self.bounds, seconds)] += 1
        series[-1] += seconds

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, series in sorted(self.series.items()):
            running, buckets = 0, []
            for bound, count in zip((*self.bounds, float("inf")), series):
                running += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), running))
            family.add_metric(list(labels), buckets, series[-1])
        return family


class PlainCounter:
    """A counter keyed by a tuple of label values."""

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name, self.documentation, self.labels = name, documentation, labels
        self.counts: dict[tuple, int] = {}

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for labels, count in sorted(self.counts.items(), key=lambda item: tuple(map(str, item[0]))):
            family.add_metric([str(v) for v in labels], count)
        return family


class _Plain(Collector):
    """Exports the plain counters, histograms and gauges read by callbacks at scrape time."""

    def __init__(self, metrics: Iterable[PlainCounter | PlainHistograms],
                 gauges: list[tuple[str, str, Callable[[], float]]]) -> None:
        self.metrics, self.gauges = list(metrics), gauges

    def collect(self) -> Iterator:
        for metric in self.metrics:
            yield metric.family()
        for name, documentation, read in self.gauges:
            yield GaugeMetricFamily(name, documentation, value=read())


class Metrics:
    """Every metric the gateway exports; one instance per app, passed to whoever counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        ProcessCollector(registry=r)   # process_cpu_seconds_total, process_resident_memory_bytes, ...
        PlatformCollector(registry=r)  # python_info
        self.requests = PlainCounter("cachegate_requests", "Requests answered, by route, strategy, method "
                                     "and status", ("route", "strategy", "method", "status"))
        # outcome: hit, stale (served while one request refreshes), stale_error (served because the upstream
        # failed), revalidated (304 from the cache), coalesced (waited for another request's fill; reason
        # "lease": another process's, answered from the entry it stored), miss,
        # bypass (why in `reason`), write (a write-through; what it did to the cache in `reason`), error
        # (refused before the cache: the error code in `reason`).
        self.cache_requests = PlainCounter("cachegate_cache_requests",
                                           "Requests by what the cache did for them, one count per request",
                                           ("route", "outcome", "reason"))
        self.request_duration = PlainHistograms(
            "cachegate_request_duration_seconds", "Time from a request's arrival to its answer, by route and "
            "cache outcome", ("route", "outcome"), REQUEST_BUCKETS)
        self.redis_duration = PlainHistograms(
            "cachegate_redis_command_duration_seconds",
            "Time of one Redis call of the cache store (a batched lookup, a script), failures included",
            ("command",), REDIS_BUCKETS)
        self._gauges: list[tuple[str, str, Callable[[], float]]] = []
        r.register(_Plain((self.requests, self.cache_requests, self.request_duration, self.redis_duration),
                          self._gauges))
        self.fills = Counter("cachegate_cache_fills", "Upstream responses stored by a read-through fill",
                             ["route"], registry=r)
        self.fills_refused = Counter(
            "cachegate_cache_fills_refused",
            "Upstream responses a read-through fill did not store, by reason (not cacheable: status-N, "
            "no-store...; or the store refused: raced, fenced, older, epoch...)",
            ["route", "reason"], registry=r)
        self.store_rejected = Counter(
            "cachegate_store_rejected",
            "Cache writes refused by the store (older version, tombstone, fenced)",
            ["reason"], registry=r)
        self.tombstones = Counter("cachegate_tombstones", "Tombstones written after a DELETE", registry=r)
        self.purged = Counter("cachegate_purged_entries",
                              "Entries removed by admin purges, by what named them", ["by"], registry=r)
        self.redis_errors = Counter("cachegate_redis_errors", "Redis calls that failed or timed out",
                                    ["op"], registry=r)
        self.breaker_state = Gauge("cachegate_breaker_state",
                                   "Redis circuit breaker: 0 closed, 1 open, 2 half-open", registry=r)
        self.epoch_bumps = Counter("cachegate_epoch_bumps",
                                   "Key namespace moved to a new epoch after writes missed Redis", registry=r)
        self.upstream_latency = Histogram(
            "cachegate_upstream_duration_seconds", "Time to a complete upstream response, by upstream",
            ["upstream"], buckets=UPSTREAM_BUCKETS, registry=r)
        self.upstream_requests = Counter("cachegate_upstream_requests", "Requests sent to an upstream",
                                         ["upstream", "status"], registry=r)
        self.upstream_tags_dropped = Counter(
            "cachegate_upstream_tags_dropped", "Cache-Tag or Surrogate-Key names an entry was not indexed "
            "under (invalid, or past the limit per response)", registry=r)
        self.config_generation = Gauge("cachegate_config_generation", "Reloads applied since start",
                                       registry=r)
        self.cache_enabled = Gauge("cachegate_cache_enabled", "1 when the cache is on", registry=r)
        # The public listener (proxy/listener.py) and readiness (proxy/readiness.py).
        self.connections = Gauge("cachegate_connections", "Client connections open on the public listener",
                                 registry=r)
        # reason: header_timeout (no complete head in time), shed (idle, closed at the connection limit),
        # refused (503 at the connection limit)
        self.connections_closed = Counter("cachegate_connections_closed",
                                          "Client connections the gateway closed or refused, by why",
                                          ["reason"], registry=r)
        self.ready = Gauge("cachegate_ready", "1 when /-/ready answers 200 (started, not draining)",
                           registry=r)
        self.dependency_up = Gauge(
            "cachegate_dependency_up", "1 when the last readiness round found it up (redis, upstream:NAME)",
            ["dependency"], registry=r)
        self._fills: dict[str, object] = {}
        self._refused: dict[tuple[str, str], object] = {}

    def watch(self, name: str, documentation: str, read: Callable[[], float]) -> None:
        """A gauge whose value `read()` gives at scrape time (the epoch the store last saw)."""
        self._gauges.append((name, documentation, read))

    # -- per request: the handler (requests, durations) and the strategies' template (outcomes) -------------

    def answered(self, route: str, strategy: str, method: str, status: int, outcome: str,
                 seconds: float) -> None:
        key = (route, strategy, method if method in METHODS else "other", status)
        counts = self.requests.counts
        counts[key] = counts.get(key, 0) + 1
        self.request_duration.observe((route, outcome), seconds)

    def count_outcome(self, route: str, outcome: str, reason: str) -> None:
        key = (route, outcome, reason)
        counts = self.cache_requests.counts
        counts[key] = counts.get(key, 0) + 1

    def count_fill(self, route: str, stored: bool, reason: str) -> None:
        if stored:
            child = self._fills.get(route)
            if child is None:
                child = self._fills[route] = self.fills.labels(route)
        else:
            child = self._refused.get((route, reason))
            if child is None:
                child = self._refused[(route, reason)] = self.fills_refused.labels(route, reason)
        child.inc()  # type: ignore[attr-defined]

    def redis_call(self, command: str, seconds: float) -> None:
        self.redis_duration.observe((command,), seconds)

    # -- the status page's figures, read from the same numbers the scrape exports ---------------------------

    def summary(self, routes: Iterable[str], upstreams: Iterable[str]) -> dict:
        """Per route (in config order) and per upstream: requests, errors, hit ratio, latencies."""
        answered: dict[str, list[int]] = {}
        for (route, _, _, status), count in self.requests.counts.items():
            found = answered.setdefault(route, [0, 0])
            found[0] += count
            found[1] += count if int(status) >= 500 else 0
        outcomes: dict[str, dict[str, int]] = {}
        for (route, outcome, _), count in self.cache_requests.counts.items():
            by = outcomes.setdefault(route, {})
            by[outcome] = by.get(outcome, 0) + count
        figures = []
        for route in routes:
            requests, errors = answered.get(route, (0, 0))
            by = outcomes.get(route, {})
            hits = sum(by.get(o, 0) for o in SERVED_FROM_CACHE)
            figures.append({
                "route": route, "requests": requests, "hits": hits,
                "hit_ratio": hits / requests if requests else None,
                "stale": by.get("stale", 0) + by.get("stale_error", 0), "errors": errors,
                "cache_seconds": self._mean(route, SERVED_FROM_CACHE),
                "upstream_seconds": self._mean(route, ("miss", "coalesced", "bypass", "write"))})
        return {"routes_figures": figures, "upstreams_figures": self._upstreams(upstreams),
                "redis_figures": self._redis()}

    def _mean(self, route: str, outcomes: Iterable[str]) -> float | None:
        count = total = 0.0
        for outcome in outcomes:
            series = self.request_duration.series.get((route, outcome))
            if series is not None:
                count += sum(series[:-1])
                total += series[-1]
        return total / count if count else None

    def _upstreams(self, names: Iterable[str]) -> list[dict]:
        sent: dict[str, list[float]] = {}
        for family in self.upstream_requests.collect():
            for s in family.samples:
                if s.name.endswith("_total"):
                    found = sent.setdefault(s.labels["upstream"], [0.0, 0.0])
                    found[0] += s.value
                    failed = not s.labels["status"].isdigit() or int(s.labels["status"]) >= 500
                    found[1] += s.value if failed else 0.0
        timing: dict[str, dict[str, float]] = {}
        for family in self.upstream_latency.collect():
            for s in family.samples:
                if s.name.endswith(("_sum", "_count")):
                    timing.setdefault(s.labels["upstream"], {})[s.name.rsplit("_", 1)[1]] = s.value
        out = []
        for name in names:
            requests, errors = sent.get(name, (0.0, 0.0))
            seen = timing.get(name, {})
            mean = seen["sum"] / seen["count"] if seen.get("count") else None
            out.append({"upstream": name, "requests": int(requests), "errors": int(errors), "seconds": mean})
        return out

    def _redis(self) -> dict:
        calls = sum(sum(series[:-1]) for series in self.redis_duration.series.values())
        spent = sum(series[-1] for series in self.redis_duration.series.values())
        errors = sum(s.value for family in self.redis_errors.collect() for s in family.samples
                     if s.name.endswith("_total"))
        return {"calls": int(calls), "errors": int(errors), "seconds": spent / calls if calls else None}

    def set_breaker(self, state: str) -> None:
        self.breaker_state.set(BREAKER_STATES[state])

    def render(self) -> bytes:
        return generate_latest(self.registry)
