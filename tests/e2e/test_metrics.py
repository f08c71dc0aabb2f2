"""The proxy's metrics: Prometheus conventions (promtool), one count per request, the figures operators need."""
from __future__ import annotations

import shutil
import subprocess
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

SERVED_FROM_CACHE = ("hit", "stale", "stale_error", "revalidated")  # the outcomes of a hit

USER = "GET /users/{id:int}"
SEARCH = "GET /users/search"


async def scrape(world) -> dict[str, list]:
    """Every sample of /-/metrics by sample name: [(labels, value), ...]."""
    text = await (await world.proxy.get("/-/metrics")).text()
    samples: dict[str, list] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            samples[s.name].append((s.labels, s.value))
    return samples


def total(samples: dict[str, list], name: str, **labels: str) -> float:
    return sum(v for found, v in samples.get(name, ()) if all(found.get(k) == w for k, w in labels.items()))


async def traffic(world) -> dict[str, int]:
    """A mix of hits, misses, a refused fill, refusals before the cache; what the client saw, counted."""
    uid, auth = await world.user("mia")
    seen = {"hit": 0}
    for _ in range(4):
        resp = await world.proxy.get(f"/users/{uid}", headers={"Authorization": auth})
        seen["hit"] += resp.headers["Cache-Status"].startswith("cachegate; hit")
    for _ in range(2):  # a 400 from the service: not stored, by reason
        assert (await world.proxy.get("/users/search", headers={"Authorization": auth})).status == 400
    assert (await world.proxy.get(f"/users/{uid}", headers={"Authorization": "Bearer nope"})).status == 401
    assert (await world.proxy.get("/nowhere")).status == 404
    assert (await world.proxy.get("/users/%2f1")).status == 400
    return seen


async def test_every_request_is_counted_once_so_the_hit_ratio_is_hits_over_requests(world):
    """Regression: one counter mixed per-request outcomes with per-store events (a miss and its "stored"
    were two counts of one request), and requests refused before the cache were not counted at all."""
    seen = await traffic(world)
    samples = await scrape(world)
    routes = {labels["route"] for labels, _ in samples["cachegate_requests_total"]}
    assert {USER, SEARCH, "-", "POST /users", "POST /auth/token"} <= routes
    for route in routes:
        requests = total(samples, "cachegate_requests_total", route=route)
        assert total(samples, "cachegate_cache_requests_total", route=route) == requests, route
        assert total(samples, "cachegate_request_duration_seconds_count", route=route) == requests, route
    hits = sum(total(samples, "cachegate_cache_requests_total", route=USER, outcome=o) for o in SERVED_FROM_CACHE)
    assert hits == seen["hit"] == 3
    assert total(samples, "cachegate_requests_total", route=USER) == 5  # 4 reads and the refused token
    assert total(samples, "cachegate_cache_requests_total", route=USER, outcome="error",
                 reason="invalid_token") == 1
    assert total(samples, "cachegate_cache_requests_total", route="-", outcome="error", reason="not_found") == 1
    assert total(samples, "cachegate_cache_requests_total", route="-", outcome="error", reason="bad_path") == 1
    # The fill is counted apart from the requests: one stored, two refused by reason.
    assert total(samples, "cachegate_cache_fills_total", route=USER) == 1
    assert total(samples, "cachegate_cache_fills_refused_total", route=SEARCH, reason="status-400") == 2


async def test_latency_histograms_per_route_and_outcome_upstream_and_redis_command(world):
    await traffic(world)
    samples = await scrape(world)
    by_outcome = {labels["outcome"] for labels, _ in samples["cachegate_request_duration_seconds_count"]
                  if labels["route"] == USER}
    assert {"hit", "miss", "error"} <= by_outcome
    buckets = [(float(labels["le"]), v) for labels, v in samples["cachegate_request_duration_seconds_bucket"]
               if labels == {**labels, "route": USER, "outcome": "hit"}]
    assert buckets == sorted(buckets) and buckets[-1] == (float("inf"), 3.0)  # cumulative, +Inf is all
    assert total(samples, "cachegate_upstream_duration_seconds_count", upstream="users") == \
        total(samples, "cachegate_upstream_requests_total", upstream="users") > 0
    assert total(samples, "cachegate_redis_command_duration_seconds_count", command="mget") >= 4
    assert total(samples, "cachegate_redis_command_duration_seconds_count", command="fill") >= 1
    assert total(samples, "process_cpu_seconds_total") > 0 and total(samples, "process_resident_memory_bytes")
    assert total(samples, "cachegate_cache_epoch") >= 0 and "cachegate_breaker_state" in samples


async def test_promtool_accepts_the_metrics_page(world):
    assert shutil.which("promtool"), "promtool is missing: `./run test` installs it (Debian package prometheus)"
    await traffic(world)
    text = await (await world.proxy.get("/-/metrics")).text()
    checked = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True,
                             timeout=60)
    assert checked.returncode == 0 and not checked.stdout.strip() and not checked.stderr.strip(), \
        checked.stdout + checked.stderr
