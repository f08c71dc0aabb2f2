"""Prometheus metrics of one proxy process, on a registry of its own (tests build many apps)."""
from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BREAKER_STATES = {"closed": 0, "open": 1, "half-open": 2}


class Metrics:
    """Every metric the gateway exports; one instance per app, passed to whoever counts."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "cachegate_requests", "Requests answered, by route, strategy, method and status",
            ["route", "strategy", "method", "status"], registry=r)
        # outcome: hit, miss, stale, stale_error, revalidated (304 from cache), coalesced (waited for
        # another request's fill), bypass (detail in `reason`), stored, not_stored
        self.cache_outcomes = Counter(
            "cachegate_cache_outcomes", "What the cache did for a request",
            ["route", "outcome", "reason"], registry=r)
        self.store_rejected = Counter(
            "cachegate_store_rejected",
            "Cache writes refused by the store (older version, tombstone, fenced)",
            ["reason"], registry=r)
        self.tombstones = Counter("cachegate_tombstones", "Tombstones written after a DELETE", registry=r)
        self.redis_errors = Counter("cachegate_redis_errors", "Redis calls that failed or timed out",
                                    ["op"], registry=r)
        self.breaker_state = Gauge("cachegate_breaker_state",
                                   "Redis circuit breaker: 0 closed, 1 open, 2 half-open", registry=r)
        self.epoch_bumps = Counter("cachegate_epoch_bumps",
                                   "Key namespace moved to a new epoch after writes missed Redis", registry=r)
        self.upstream_latency = Histogram(
            "cachegate_upstream_seconds", "Time to a complete upstream response", ["upstream"],
            buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5), registry=r)
        self.upstream_requests = Counter("cachegate_upstream_requests", "Requests sent to an upstream",
                                         ["upstream", "status"], registry=r)
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
        # labels() costs a few microseconds per call on the hot path; the children are few and reusable.
        self._requests: dict[tuple[str, str, str, int], Any] = {}
        self._outcomes: dict[tuple[str, str, str], Any] = {}

    def count_request(self, route: str, strategy: str, method: str, status: int) -> None:
        labels = (route, strategy, method, status)
        child = self._requests.get(labels)
        if child is None:
            child = self._requests[labels] = self.requests.labels(route, strategy, method, str(status))
        child.inc()

    def count_outcome(self, route: str, outcome: str, reason: str) -> None:
        labels = (route, outcome, reason)
        child = self._outcomes.get(labels)
        if child is None:
            child = self._outcomes[labels] = self.cache_outcomes.labels(*labels)
        child.inc()

    def set_breaker(self, state: str) -> None:
        self.breaker_state.set(BREAKER_STATES[state])

    def render(self) -> bytes:
        return generate_latest(self.registry)
