"""The invalidator's Prometheus metrics, on the registry of the store's own metrics (Redis calls, epochs)."""
from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from proxy.metrics import Metrics

# Seconds from a commit to its cache actions applied: milliseconds when it keeps up, seconds when behind.
LAG_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class InvalidatorMetrics:
    def __init__(self) -> None:
        self.store = Metrics()  # what CacheStore counts (cachegate_redis_*, cachegate_epoch_bumps, ...)
        r = self.store.registry
        self.events = Counter("cachegate_invalidator_events", "Row changes read from the binary log, by "
                              "table "
                              "and kind (insert, update, delete)", ("table", "kind"), registry=r)
        self.transactions = Counter("cachegate_invalidator_transactions",
                                    "Transactions read from the binary log (each moves the position)",
                                    registry=r)
        self.actions = Counter("cachegate_invalidator_actions", "Cache actions applied, by action (key, "
                               "tag, revocation) and outcome (key: stored, current, absent, fenced)",
                               ("action", "outcome"), registry=r)
        self.lag = Histogram("cachegate_invalidator_lag_seconds", "From a transaction's commit to its cache "
                             "actions applied (the commit time known to within the probe interval)",
                             buckets=LAG_BUCKETS, registry=r)
        self.behind = Gauge("cachegate_invalidator_behind_seconds", "How long ago the invalidator was last "
                            "known to have applied every change committed before (what the gateway reads)",
                            registry=r)
        self.position_age = Gauge("cachegate_invalidator_position_age_seconds",
                                  "Seconds since the position was last saved in Redis", registry=r)
        self.reconnects = Counter("cachegate_invalidator_reconnects", "Connections to a database node lost "
                                  "or refused (then the next node is tried)", registry=r)
        self.epoch_moves = Counter("cachegate_invalidator_epoch_moves", "Cache epochs moved because changes "
                                   "could not be read (position purged, or none saved)", ("reason",),
                                   registry=r)
        self.redis_retries = Counter("cachegate_invalidator_redis_retries", "Batches of actions tried again "
                                     "because Redis did not answer (the position is held meanwhile)",
                                     registry=r)
        self.connected = Gauge("cachegate_invalidator_connected", "1 while following a node's binary log",
                               registry=r)

    def render(self) -> bytes:
        return self.store.render()
