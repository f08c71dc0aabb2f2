"""The modules mutation testing covers, each with the tests that exercise it: the one table to extend."""
from __future__ import annotations

from dataclasses import dataclass

STORE_TESTS = ("tests/store/test_store_entries.py", "tests/store/test_store_versions.py",
               "tests/store/test_store_fences.py", "tests/store/test_store_retire.py",
               "tests/store/test_store_inspect.py", "tests/store/test_store_accounting.py",
               "tests/store/test_store_faults.py", "tests/store/test_store_missed_marks.py",
               "tests/store/test_store_upstream_tags.py", "tests/store/test_store_memory.py",
               "tests/store/test_store_claims.py")
STRATEGY_TESTS = ("tests/strategies/test_contract.py", "tests/strategies/test_read_through.py",
                  "tests/strategies/test_read_through_edges.py", "tests/strategies/test_write_through.py",
                  "tests/strategies/test_write_through_edges.py", "tests/strategies/test_strategy_faults.py",
                  "tests/strategies/test_fill_lease.py")
INVALIDATOR_TESTS = ("tests/invalidator/test_plan.py",)
# The write fence's Python side: the store's calls that mark keys and tags before and after a write.
FENCE = ("CacheStore.fence", "CacheStore._fence_key", "CacheStore.write", "CacheStore.tombstone",
         "CacheStore.drop", "CacheStore._mark", "CacheStore.invalidate_tag", "CacheStore._tag",
         "CacheStore._invalidate")


@dataclass(frozen=True)
class Target:
    """One row: a file to mutate (optionally only some of its functions, or all but some), its tests, and
    how many mutants a run draws from it."""

    name: str
    path: str
    tests: tuple[str, ...]
    sample: int
    only: tuple[str, ...] = ()     # qualified names (`Class.method`); empty: the whole file
    skip: tuple[str, ...] = ()     # qualified names left to another row


# Order matters only for a run cut short by its budget: each row gets an equal share of what is left.
TARGETS: tuple[Target, ...] = (
    Target("store", "proxy/store.py", STORE_TESTS, 24, skip=FENCE),
    Target("fence", "proxy/store.py", ("tests/store/test_store_fences.py",
                                       *(t for t in STORE_TESTS if t != "tests/store/test_store_fences.py")),
           14, only=FENCE),
    Target("records", "proxy/records.py", ("tests/store/test_entry_age.py", *STORE_TESTS,
                                           "tests/store/test_lookups.py"), 14),
    Target("lookups", "proxy/lookups.py", ("tests/store/test_lookups.py",
                                           "tests/store/test_lookups_connection.py",
                                           "tests/store/test_store_entries.py"), 8),
    Target("cluster_client", "proxy/clusterclient.py", ("tests/store/test_cluster_client.py",
                                                        "tests/store/test_store_claims.py",
                                                        "tests/store/test_store_entries.py",
                                                        "tests/store/test_store_versions.py"), 10),
    Target("read_through", "strategies/read_through.py", STRATEGY_TESTS, 16),
    Target("write_through", "strategies/write_through.py", STRATEGY_TESTS, 14),
    Target("flights", "strategies/flights.py", STRATEGY_TESTS, 6),
    Target("strategy_base", "strategies/base.py", (*STRATEGY_TESTS, "tests/strategies/test_route_checks.py"),
           8),
    Target("httpcache", "strategies/httpcache.py",
           ("tests/strategies/test_httpcache.py", "tests/strategies/test_stored_headers.py", *STRATEGY_TESTS),
           10),
    Target("auth", "proxy/auth.py", ("tests/proxy/test_auth.py", "tests/proxy/test_auth_bounds.py",
                                     "tests/proxy/test_basic_exchange.py"), 14),
    Target("tokens", "cachegate/tokens.py", ("tests/proxy/test_auth.py", "tests/proxy/test_token_bounds.py",
                                             "tests/backends/test_service_tokens.py"), 12),
    Target("canonical", "proxy/canonical.py", ("tests/proxy/test_canonical.py",), 12),
    Target("key_templates", "cachegate/templates.py", ("tests/proxy/test_router.py",
                                                      "tests/cachegate/test_template_covers.py",
                                                      "tests/cachegate/test_config.py"), 12),
    Target("cdc_changes", "invalidator/changes.py", INVALIDATOR_TESTS, 10),
    Target("cdc_positions", "invalidator/positions.py", INVALIDATOR_TESTS, 8),
    Target("cdc_service", "invalidator/service.py", ("tests/invalidator/test_sql_changes.py",
                                                     "tests/invalidator/test_races.py"), 6),
)


def target(name: str) -> Target:
    for row in TARGETS:
        if row.name == name:
            return row
    raise KeyError(f"unknown module {name!r}; known: {', '.join(t.name for t in TARGETS)}")
