"""The cluster section of performance.md: a run on the Galera cluster beside the one-node run, and what
`wsrep_sync_wait` costs a read, measured in the cluster run.

A run of `cachegate loadtest --config config.cluster.yaml` (section `cluster`) keeps its own results.json;
the report is then rendered from the one-node run's results.json with this section in it, so neither run
overwrites the other and every number still comes from a results file.
"""
from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import pymysql

from cachegate.config import Config
from loadtest.sections import link, ms, us
from loadtest.summary import MODES, at_fixed, best, errors_of, group

REPO = Path(__file__).resolve().parents[1]
MAIN_RESULTS = REPO / "loadtest" / "results" / "full" / "results.json"
CLUSTER_RESULTS = REPO / "loadtest" / "results" / "cluster" / "results.json"
SYNC_WAIT_ROUNDS = 400  # point reads per setting, taken in turn
CPU_ROWS = ("proxy", "users", "mariadb")


def load(path: Path | None) -> dict[str, Any] | None:
    """A saved run, or None when there is none (a report without the other section)."""
    if path is None or not path.is_file():
        return None
    return json.loads(path.read_text())


def database_record(config: Config) -> dict[str, Any]:
    db = config.mariadb
    return {"nodes": [str(n) for n in db.nodes], "cluster": db.cluster,
            "sync_wait": db.sync_wait if db.cluster else None}


def sync_wait_cost(config: Config, ids: list[int]) -> dict[str, Any]:
    """Point reads on the node the services use, with wsrep_sync_wait 0 and 1 in turn (idle cluster)."""
    db, node = config.mariadb, config.mariadb.nodes[0]
    conns = {}
    try:
        for setting in (0, 1):
            conns[setting] = pymysql.connect(host=node.host, port=node.port, user=db.user,
                                             password=db.password(), database=db.database, autocommit=True,
                                             connect_timeout=5, read_timeout=30, ssl_disabled=True)
            with conns[setting].cursor() as cur:
                cur.execute("SET SESSION wsrep_sync_wait = %s", (setting,))
        took: dict[int, list[float]] = {0: [], 1: []}
        for i in range(SYNC_WAIT_ROUNDS):
            for setting in ((0, 1) if i % 2 == 0 else (1, 0)):  # in turn, so drift falls on both
                with conns[setting].cursor() as cur:
                    began = time.perf_counter()
                    cur.execute("SELECT id, version FROM users WHERE id = %s", (ids[i % len(ids)],))
                    cur.fetchall()
                    took[setting].append((time.perf_counter() - began) * 1e6)
    finally:
        for conn in conns.values():
            conn.close()
    out: dict[str, Any] = {"node": str(node), "reads": SYNC_WAIT_ROUNDS}
    for setting, values in took.items():
        cuts = statistics.quantiles(values, n=100)
        out[str(setting)] = {"p50_us": statistics.median(values), "p90_us": cuts[89], "p99_us": cuts[98]}
    out["cost_p50_us"] = out["1"]["p50_us"] - out["0"]["p50_us"]
    return out


def render(add, main: dict[str, Any], cluster: dict[str, Any], report_path: Path, cluster_dir: Path) -> None:
    """The section: both runs' cache-off and cache-on figures side by side, then the sync-wait cost."""
    nodes = len(cluster.get("database", {}).get("nodes", [])) or 3
    add(f"## On a {nodes}-node Galera cluster\n")
    state = "VALID" if cluster["valid"] else "INVALID"
    add(f"From `{cluster['command']}` on {cluster['generated_at']} ({cluster['elapsed_s']:.0f} s, run "
        f"**{state}**, [results.json]({link(cluster_dir / 'results.json', report_path)})), beside the "
        "one-node run above. The same stack but for the database: every service sends its queries to "
        "node 1 (pin and fail over), nodes 2 and 3 apply its write-sets, and each read waits for the cluster "
        "first "
        f"(`wsrep_sync_wait = {cluster.get('database', {}).get('sync_wait')}`).\n")
    for problem in cluster["problems"]:
        add(f"- {problem}")
    add("**One 2-core machine runs the proxy, the services, Redis and all three nodes**, so this shows what "
        "the cluster costs (each write certified and applied on three nodes, a group round trip per read), "
        "not how it scales: the nodes compete for the same two cores as everything else.\n")
    add("| | cache off, one node | cache off, cluster | cache on, one node | cache on, cluster |")
    add("|---|---:|---:|---:|---:|")
    runs = {"one node": main["points"], "cluster": cluster["points"]}
    tops = {(m, r): best(group(p, m)) for m in MODES for r, p in runs.items()}
    fixed = {(m, r): at_fixed(group(p, m)) for m in MODES for r, p in runs.items()}
    order = [(m, r) for m in MODES for r in runs]
    add("| max requests/s, best error-free point (connections) | " + " | ".join(
        f"{tops[k]['rps']:.0f} (c={tops[k]['connections']})" if tops[k] else "-" for k in order) + " |")
    conns = next((fixed[k]["connections"] for k in order if fixed[k]), "-")
    for key in ("p50", "p99"):
        add(f"| {key} at {conns} connections (ms) | " + " | ".join(
            ms(fixed[k]["latency_ms"].get(key)) if fixed[k] else "-" for k in order) + " |")
    for proc in CPU_ROWS:
        what = "mariadb (every node)" if proc == "mariadb" else proc
        add(f"| CPU µs per request at {conns} connections: {what} | " + " | ".join(
            us(fixed[k]["cpu_us_per_request"].get(proc)) if fixed[k] else "-" for k in order) + " |")
    add("| errors (socket + non-2xx) in the whole sweep | " + " | ".join(
        str(errors_of(group(runs[r], m))) for m, r in order) + " |")
    mixed = {r: at_fixed(group(p, "mixed")) for r, p in runs.items()}
    if all(mixed.values()):
        add("\nWith 5 % writes (PUT and PATCH of the caller's own user, cache on, "
            f"{mixed['cluster']['connections']} connections): one node {mixed['one node']['rps']:.0f} req/s, "
            f"p99 {ms(mixed['one node']['latency_ms'].get('p99'))} ms; cluster {mixed['cluster']['rps']:.0f} "
            f"req/s, p99 {ms(mixed['cluster']['latency_ms'].get('p99'))} ms.")
    cost = cluster.get("sync_wait")
    if cost:
        add(f"\nWhat `wsrep_sync_wait` costs a read: {cost['reads']} point reads (`SELECT ... WHERE id = ?`) "
            f"on {cost['node']} with it off and on, in turn, on the idle cluster after the run:\n")
        add("| wsrep_sync_wait | p50 µs | p90 µs | p99 µs |")
        add("|---|---:|---:|---:|")
        for setting in ("0", "1"):
            row = cost[setting]
            add(f"| {setting} | {row['p50_us']:.0f} | {row['p90_us']:.0f} | {row['p99_us']:.0f} |")
        add(f"\nThe median read pays {cost['cost_p50_us']:.0f} µs for seeing every write the cluster "
            "committed before it; a miss of the cache pays it once per query it makes (the row, and the "
            "token's version when the service has not read it within the last second), a hit never.")
    found = cluster.get("invalidation") or {}
    if found.get("lag_ms", {}).get("p50") is not None:
        lag, cpu = found["lag_ms"], found.get("cpu_us_per_event")
        add(f"\nThe invalidator on the cluster (one node's binary log, every node's writes): "
            f"{found['writes_per_s']:.0f} SQL writes/s, lag from COMMIT to its cache actions p50 "
            f"{lag['p50']:.1f} ms, p99 {lag['p99']:.1f} ms ({found['samples']} samples), "
            f"{'-' if cpu is None else f'{cpu:.0f}'} µs of its CPU per row event.")
    add("")
